/**
 * The access generator alone (pre-copy's largest cost: docs/sim-scaling.md):
 * CPU ms for the web-server example's four vCPUs to draw `--draws` accesses
 * (64 GiB guest), this build and another one alternately in one process, with
 * a checksum of the pages and writes drawn so that both are seen to draw the
 * same stream, and the reference loop (ref-loop.ts) beside each run.
 *
 *   npm run build && node dist/bench/sim-generator.js --against /path/to/other/dist [--runs 3] [--draws 30000000]
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { referenceLoopMs } from "./ref-loop.js";
import { median, printBench, type Row } from "./table.js";

type GeneratorModule = typeof import("../src/workload/generator.js");
type ParseModule = typeof import("../src/workload/parse.js");
type TypesModule = typeof import("../src/workload/types.js");

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
const against = flag("--against");
const runs = Number(flag("--runs") ?? 3);
const draws = Number(flag("--draws") ?? 30_000_000);
if (against === undefined || !(runs >= 1) || !(draws >= 1)) throw new Error("usage: sim-generator.js --against OTHER_DIST [--runs N] [--draws N]");

async function load(dist: string) {
  const at = (p: string) => pathToFileURL(`${dist}/${p}`).href;
  const gen = (await import(at("src/workload/generator.js"))) as GeneratorModule;
  const parse = (await import(at("src/workload/parse.js"))) as ParseModule;
  const types = (await import(at("src/workload/types.js"))) as TypesModule;
  const file = fileURLToPath(new URL("../../examples/web-server.json", import.meta.url));
  const w = types.withMemory(parse.loadWorkload(file), 64 * 1024 ** 3);
  return () => {
    const phases = gen.compilePhases(w);
    const gens = Array.from({ length: w.vcpus }, (_, v) => new gen.AccessGenerator(phases, w.vcpus, v, 1));
    const cpu0 = process.cpuUsage();
    // Integer arithmetic only: a floating-point remainder per draw cost as much as the draw.
    let sum = 0;
    for (let i = 0, v = 0; i < draws; i++) {
      const g = gens[v];
      if (++v === gens.length) v = 0;
      sum = (Math.imul(sum, 31) + g.next() + (g.isWrite ? 1 : 0)) | 0;
    }
    const cpu = process.cpuUsage(cpu0);
    return { ms: (cpu.user + cpu.system) / 1e3, sum };
  };
}

const builds = { before: await load(against), after: await load(fileURLToPath(new URL("..", import.meta.url))) };
const ms: Record<"before" | "after", number[]> = { before: [], after: [] };
const refs: number[] = [];
const sums = new Set<number>();
for (let r = 0; r < runs; r++) {
  for (const which of r % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const)) {
    refs.push(referenceLoopMs());
    const out = builds[which]();
    ms[which].push(out.ms);
    sums.add(out.sum);
  }
}
const spread = (xs: number[]) => `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
const rows: Row[] = [
  {
    draws,
    cpu_ms_before: spread(ms.before),
    cpu_ms_after: spread(ms.after),
    ns_per_draw_after: Number(((median(ms.after) * 1e6) / draws).toFixed(1)),
    speedup: Number((median(ms.before) / median(ms.after)).toFixed(3)),
    ref_loop_ms: `${Math.round(Math.min(...refs))}–${Math.round(Math.max(...refs))}`,
    same_stream: sums.size === 1,
    runs,
  },
];
printBench("sim-generator", `node dist/bench/sim-generator.js --against ${against} --runs ${runs} --draws ${draws}`, { workload: "web-server, 64 GiB, 4 vCPUs", node: process.version }, rows);
