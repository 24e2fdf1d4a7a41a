/**
 * The unmigrated run a real migration is verified against: a second source
 * guest of the same workload, seed and steps, run to the end here, whose RAM
 * hash the destination's must equal.
 */
import { toGuestConfig } from "../workload/guest-config.js";
import type { Workload } from "../workload/types.js";
import { sleep } from "./clock.js";
import { GuestProcess } from "./guest-process.js";
import { startingVcpus } from "./guest-spawn.js";

/** The RAM hash of `workload` (seed, steps per vCPU) run to its end without migrating. */
export async function unmigratedHash(workload: Workload, seed: number, steps: number): Promise<string> {
  return withUnmigrated(workload, seed, steps, (g) => g.hash());
}

/** `workload` (seed, steps per vCPU) run to its end without migrating; `use` sees the finished guest before it quits (its RAM, e.g. for a page-by-page diff). */
export async function withUnmigrated<T>(workload: Workload, seed: number, steps: number, use: (g: GuestProcess) => Promise<T>): Promise<T> {
  const g = await GuestProcess.spawn({ role: "source", config: toGuestConfig(workload, seed), steps, noWp: true });
  try {
    await startingVcpus(g, () => g.run());
    for (;;) {
      const p = await g.progress();
      if (p.vcpus.every((v) => v.finished)) break;
      await sleep(20);
    }
    return await use(g);
  } finally {
    await g.quit();
  }
}
