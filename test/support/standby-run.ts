/**
 * A post-copy migration whose source agent is a process of its own, with a
 * standby copy, so that a test or a benchmark can kill it (SIGKILL) at a
 * moment of its choosing; the destination agent runs in this process and
 * fills from the copy. Also the unmigrated reference hash to verify against.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DestinationAgent } from "../../src/real/dest-agent.js";
import { chooseSteps, scaleWorkload } from "../../src/real/plan.js";
import { unmigratedHash } from "../../src/real/reference-run.js";
import { RECORD_BYTES } from "../../src/real/standby-store.js";
import { loadWorkload } from "../../src/workload/parse.js";
import type { Workload } from "../../src/workload/types.js";
import { BIN, ensureBuilt } from "./agent-process.js";

export interface StandbyRun {
  source: ChildProcess;
  dest: DestinationAgent;
  destLog: string[];
  sourceOut: () => string;
  workload: Workload;
  steps: number;
  /** The copy's folder, once the source made it. */
  folder(): string | null;
  /** Pages whose record says written (the copy's progress), and whether the switchover mark is there. */
  copyState(): { written: number; marked: boolean; protecting: boolean };
}

export async function startStandbyRun(o: { file: string; memBytes: number; standbyDir: string; reconnectWaitMs: number; extra?: string[]; seed?: number; steps?: number }): Promise<StandbyRun> {
  ensureBuilt();
  const destLog: string[] = [];
  const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, standbyDir: o.standbyDir, reconnectWaitMs: o.reconnectWaitMs, log: (l) => destLog.push(l) });
  const workload = scaleWorkload(loadWorkload(o.file), o.memBytes);
  // A third of what a source would choose: the guest still outlives the kill, and the run after it is short.
  const steps = o.steps ?? Math.ceil(chooseSteps(workload) / 3);
  const args = [BIN, "real", "--peer", `127.0.0.1:${dest.port}`, "--trace", o.file, "--memory", String(o.memBytes), "--mode", "postcopy", "--steps", String(steps), "--seed", String(o.seed ?? 1)];
  args.push("--standby", o.standbyDir, "--reconnect-wait", `${o.reconnectWaitMs}ms`, "--plain", "--insecure", ...(o.extra ?? []));
  const source = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  source.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  source.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const pageCount = workload.memBytes / workload.pageSize;
  const folder = (): string | null => {
    if (!existsSync(o.standbyDir)) return null;
    const f = readdirSync(o.standbyDir).find((n) => /^[0-9a-f]{32}$/.test(n));
    return f === undefined ? null : join(o.standbyDir, f);
  };
  return {
    source,
    dest,
    destLog,
    sourceOut: () => out,
    workload,
    steps,
    folder,
    copyState: () => {
      const f = folder();
      if (f === null) return { written: 0, marked: false, protecting: false };
      let recs: Buffer;
      try {
        recs = readFileSync(join(f, "records"));
      } catch {
        return { written: 0, marked: false, protecting: false };
      }
      let written = 0;
      for (let p = 0; p < pageCount && (p + 1) * RECORD_BYTES <= recs.length; p++) if (recs[p * RECORD_BYTES + 12] & 1) written++;
      // The source's word that its copy, with what the destination holds, covers every page (standby-source.ts markProtected).
      return { written, marked: existsSync(join(f, "mark")), protecting: existsSync(join(f, "protected")) };
    },
  };
}

/** The memory hash of an unmigrated run of the same workload, seed and steps (the source agent's own, reference-run.ts). */
export const referenceHash: (w: Workload, seed: number, steps: number) => Promise<string> = unmigratedHash;

/** The destination's final hash from its log, if it got that far. */
export function destHash(log: string[]): string | null {
  for (const l of log) {
    const m = /guest RAM hash ([0-9a-f]{16})/.exec(l);
    if (m !== null) return m[1];
  }
  return null;
}
