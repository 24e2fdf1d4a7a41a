/**
 * What async page faults save, per workload: each workload of
 * examples/async-faults/ simulated in post-copy and hybrid with async faults
 * on and off (same link, seed and policy), and the vCPU blocktime and guest
 * work lost that switching to another task hides.
 *
 *   npm run build && node dist/bench/async-faults.js [--link 1Gbit,0.1ms] [--seed N]
 *
 * Simulated time only: the figures do not depend on this machine.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { benchArgs } from "./args.js";
import { parseLink } from "../src/sim/link.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import type { Workload } from "../src/workload/types.js";
import { printBench, type Row } from "./table.js";

const DIR = "examples/async-faults";

function main(): void {
  const { values } = benchArgs({ options: { link: { type: "string" }, seed: { type: "string" } } });
  const linkText = values.link ?? "1Gbit,0.1ms";
  const link = parseLink(linkText);
  const seed = Number(values.seed ?? 1);
  const rows: Row[] = [];
  for (const f of readdirSync(DIR).filter((x) => x.endsWith(".json")).sort()) {
    const w = loadWorkload(join(DIR, f));
    const tasks = w.tasks as NonNullable<Workload["tasks"]>;
    for (const mode of ["postcopy", "hybrid"] as const) {
      const run = (asyncFaults: boolean) => simulate({ workload: { ...w, tasks: { ...tasks, asyncFaults } }, options: { mode }, link, seed });
      const on = run(true);
      const off = run(false);
      const lostOn = on.guest?.work_lost_vcpu_s ?? NaN;
      const lostOff = off.guest?.work_lost_vcpu_s ?? NaN;
      const saved = (a: number, b: number) => (b > 0 ? `${Math.round((1 - a / b) * 1000) / 10}%` : "–");
      rows.push({
        workload: w.name,
        tasks_per_vcpu: 1 + tasks.extra.length,
        mode,
        verified: on.verified === true && off.verified === true,
        "blocktime s (off)": Math.round(off.blocktime_ms) / 1000,
        "blocktime s (on)": Math.round(on.blocktime_ms) / 1000,
        "blocktime saved": saved(on.blocktime_ms, off.blocktime_ms),
        "work lost vCPU-s (off)": lostOff,
        "work lost vCPU-s (on)": lostOn,
        "work lost saved": saved(lostOn, lostOff),
        "demand faults (off; on)": `${off.demand_faults}; ${on.demand_faults}`,
        "total s (off; on)": `${(off.total_ms / 1000).toFixed(3)}; ${(on.total_ms / 1000).toFixed(3)}`,
      });
    }
  }
  printBench("async-faults", `node dist/bench/async-faults.js --link ${linkText} --seed ${seed}`, { link: linkText, seed }, rows);
}

main();
