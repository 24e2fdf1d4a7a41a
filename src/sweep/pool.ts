/**
 * Runs simulations on every core through a worker-thread pool (tinypool), and
 * hands their reports back in the order given, whatever order they finish in.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import Tinypool from "tinypool";
import type { Report } from "../engine/report.js";
import { simulate, type SimConfig } from "../sim/simulation.js";

/**
 * The threads run compiled JavaScript: from dist/ that is this file's
 * sibling; from the TypeScript sources (under vitest) the built copy in dist/,
 * which `npm test` builds first.
 */
const WORKER = import.meta.url.endsWith(".ts") ? new URL("../../dist/src/sweep/worker.js", import.meta.url) : new URL("./worker.js", import.meta.url);

export const DEFAULT_WORKERS = availableParallelism();

export interface PoolOptions {
  /** Worker threads; 0 runs every simulation on this thread (no pool). */
  workers: number;
  /** Called once per config, in the configs' order, as soon as it and all before it are done. */
  onReport: (position: number, report: Report) => void;
}

export async function runAll(configs: readonly SimConfig[], { workers, onReport }: PoolOptions): Promise<void> {
  if (workers === 0) {
    configs.forEach((c, i) => onReport(i, simulate(c)));
    return;
  }
  if (!existsSync(WORKER)) throw new Error(`the sweep's worker thread ${WORKER.pathname} is not built: run npm run build first`);
  const pool = new Tinypool({ filename: WORKER.href, minThreads: workers, maxThreads: workers, idleTimeout: 1000 });
  const done = new Map<number, Report>();
  let next = 0;
  const flush = () => {
    for (let r = done.get(next); r !== undefined; r = done.get(next)) {
      done.delete(next);
      onReport(next++, r);
    }
  };
  try {
    // Queue at most a few tasks per thread: a million-run grid must not clone a million configs up front.
    const window = workers * 4;
    let issued = 0;
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const issue = () => {
        while (!failed && issued < configs.length && issued - next < window) {
          const i = issued++;
          pool.run(configs[i]).then(
            (report: Report) => {
              done.set(i, report);
              flush();
              if (next === configs.length) resolve();
              else issue();
            },
            (e: unknown) => {
              failed = true;
              reject(Object.assign(e instanceof Error ? e : new Error(String(e)), { position: i }));
            },
          );
        }
      };
      if (configs.length === 0) resolve();
      else issue();
    });
  } finally {
    await pool.destroy();
  }
}
