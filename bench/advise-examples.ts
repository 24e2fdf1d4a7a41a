/**
 * The advisor's answer for each example workload on a 1, 10 and 25 Gbit/s
 * link (0.2 ms one way), for one set of objectives.
 *
 *   npm run build && node dist/bench/advise-examples.js ["SLO"] [COST]
 */
import { fileURLToPath } from "node:url";
import { advise, COSTS, realCommands, type CostKey } from "../src/advise/advise.js";
import { formatValue, parseSlo } from "../src/advise/slo.js";
import { parseLink } from "../src/sim/link.js";
import { DEFAULT_WORKERS } from "../src/sweep/pool.js";
import { describePolicy } from "../src/sweep/policy.js";
import { loadWorkload } from "../src/workload/parse.js";
import { printBench, type Row } from "./table.js";

const slo = process.argv[2] ?? "max_stall<=50ms, total<=30s, downtime<=300ms";
const objectives = parseSlo(slo);
const cost = (process.argv[3] ?? "bytes") as CostKey;
if (!(cost in COSTS)) throw new Error(`COST must be one of ${Object.keys(COSTS).join(", ")}`);
const rows: Row[] = [];
for (const name of ["idle", "web-server", "memory-scan", "database"]) {
  const trace = `examples/${name}.json`;
  const workload = loadWorkload(fileURLToPath(new URL(`../../${trace}`, import.meta.url)));
  for (const linkText of ["1Gbit,0.2ms", "10Gbit,0.2ms", "25Gbit,0.2ms"]) {
    const t0 = Date.now();
    const advice = await advise({ trace, workload, memory: null, link: parseLink(linkText), objectives, cost, seed: 1, workers: DEFAULT_WORKERS });
    const pick = advice.chosen ?? advice.closest;
    const fig = (k: string, kind: "duration" | "size") => (pick ? formatValue(kind, pick.figures.get(k)!.value) : "");
    rows.push({
      workload: name,
      link: linkText,
      met: advice.chosen !== null,
      meeting: `${advice.table.filter((a) => a.ok).length}/${advice.table.length}`,
      choice: pick ? `${pick.candidate.mode} ${describePolicy(pick.candidate.policy)}` : "",
      misses: pick ? pick.misses.map((m) => m.objective.text).join(" ") || "–" : "",
      max_stall_standin: fig("max_stall", "duration"),
      downtime: fig("downtime", "duration"),
      total: fig("total", "duration"),
      sent: fig("bytes", "size"),
      lost_work_vcpu_s: pick ? Number((pick.figures.get("lost_work")!.value / 1000).toFixed(2)) : null,
      real: pick ? realCommands(advice, pick)[1].replace(/\s+# on the source host$/, "") : "",
      wall_s: Number(((Date.now() - t0) / 1000).toFixed(1)),
    });
    process.stderr.write(JSON.stringify(rows[rows.length - 1]) + "\n");
  }
}
printBench("advise-examples", `node dist/bench/advise-examples.js "${slo}" ${cost}`, { slo, cost, workers: DEFAULT_WORKERS, node: process.version }, rows);
