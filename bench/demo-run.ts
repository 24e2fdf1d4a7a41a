/** One real migration over loopback for a bench: a `--once` destination child, the source agent in this process. */
import type { Mode } from "../src/engine/messages.js";
import type { Report } from "../src/engine/report.js";
import { spawnDemoDestination } from "../src/real/demo.js";
import { SourceAgent, type SourceAgentOptions } from "../src/real/source-agent.js";
import type { Workload } from "../src/workload/types.js";

/** Runs `use` on a started source agent, then ends both agents (the destination given `finishMs` to report). */
export async function withDemoMigration<T>(
  bin: string,
  workload: Workload,
  mode: Mode,
  use: (agent: SourceAgent) => Promise<T>,
  finishMs = 120_000,
  more: Partial<SourceAgentOptions> = {},
  /** The destination's flags (default --insecure) and who hears its log lines. */
  dest0: { args?: string[]; log?: (line: string) => void } = {},
): Promise<T> {
  const dest = await spawnDemoDestination(bin, dest0.log ?? (() => undefined), dest0.args);
  const agent = await SourceAgent.start({ ...more, workload, mode, seed: 1, peer: { host: "127.0.0.1", port: dest.port } });
  try {
    return await use(agent);
  } finally {
    await agent.close();
    await dest.finish(finishMs);
  }
}

/** The report of one post-copy migration of `workload`. */
export function demoPostcopy(bin: string, workload: Workload): Promise<Report> {
  return withDemoMigration(bin, workload, "postcopy", (a) => a.migrate());
}
