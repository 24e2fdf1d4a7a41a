/**
 * Where the demand faults' time goes (issue 9): joins the fault traces that
 * `PPSIM_FAULT_TRACE=DIR` made both agents write (src/real/fault-trace.ts)
 * and prints, per session, each leg's p50 / p99 / max and the slowest
 * faults leg by leg with the loop stalls and GC pauses that overlap them.
 *
 *   PPSIM_FAULT_TRACE=/tmp/ft node dist/bench/real-postcopy.js …
 *   node dist/bench/fault-trace.js /tmp/ft [--slowest 8] [--json FILE]
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchArgs } from "./args.js";
import type { DestFaultStamps, LoopTrace, SourceFaultStamps, TraceFile } from "../src/real/fault-trace.js";
import { joinTraces, LEGS, type JoinedTrace } from "../src/real/fault-trace-join.js";

function main(): void {
  const { values, positionals } = benchArgs({ allowPositionals: true, options: { slowest: { type: "string" }, json: { type: "string" } } });
  const dir = positionals[0];
  if (dir === undefined) throw new Error("usage: fault-trace DIR [--slowest N] [--json FILE]");
  const n = Number(values.slowest ?? 8);
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  const read = <F>(f: string): TraceFile<F> => JSON.parse(readFileSync(join(dir, f), "utf8")) as TraceFile<F>;
  const joined: JoinedTrace[] = [];
  const loops: string[] = [];
  for (const f of files.filter((x) => x.startsWith("destination-"))) {
    const dest = read<DestFaultStamps>(f);
    const src = files.includes(`source-${dest.session}.json`) ? read<SourceFaultStamps>(`source-${dest.session}.json`) : null;
    joined.push(joinTraces(dest, src));
    for (const t of [dest, src]) if (t !== null) loops.push(`${t.role} ${t.session.slice(0, 8)}: ${summarise(t.loop)}`);
  }
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(joined, null, 2) + "\n");
  const lines: string[] = [];
  for (const j of joined) {
    const src = j.loops.source;
    lines.push(`## session ${j.session.slice(0, 8)}: ${j.faults.length} faults (${j.faults.filter((f) => f.channel === "bulk").length} brought by bulk first)`);
    lines.push(`event loop delay p50 / p99 / max µs: destination ${j.loops.destination.p50} / ${j.loops.destination.p99} / ${j.loops.destination.max}; source ${src === null ? "-" : `${src.p50} / ${src.p99} / ${src.max}`}`);
    lines.push("", `| leg | count | p50 µs | p99 µs | max µs |`, "| --- | --- | --- | --- | --- |");
    for (const k of LEGS) lines.push(`| ${k} | ${j.legs[k].count} | ${j.legs[k].p50} | ${j.legs[k].p99} | ${j.legs[k].max} |`);
    lines.push("", `slowest ${n}: ${LEGS.join(" / ")} µs; overlapping stalls and GC (who what at+µs for µs)`);
    const slow = [...j.faults].sort((a, b) => (b.legs.total ?? 0) - (a.legs.total ?? 0)).slice(0, n);
    for (const f of slow) {
      const legs = LEGS.map((k) => f.legs[k] ?? "-").join(" / ");
      const ov = f.overlaps.map(([who, what, at, us]) => `${who[0]} ${what} +${at} for ${us}`).join(", ");
      lines.push(`- page ${f.page} (${f.channel}): ${legs}${ov === "" ? "" : `; ${ov}`}`);
    }
    lines.push("");
  }
  lines.push("## the loops over each run (stalls over 2 ms; GC; callbacks over 1 ms by resource type: count, total µs, max µs)", ...loops.map((l) => `- ${l}`));
  console.log(lines.join("\n"));
}

function summarise(l: LoopTrace): string {
  const sum = (xs: number[]): string => `${xs.length}, ${xs.reduce((a, b) => a + b, 0)}, ${Math.max(0, ...xs)}`;
  const byType = new Map<string, number[]>();
  for (const [, us, type] of l.long ?? []) byType.set(type, [...(byType.get(type) ?? []), us]);
  const types = [...byType].sort((a, b) => b[1].length - a[1].length).map(([t, xs]) => `${t} ${sum(xs)}`);
  const busy = (l.threads ?? []).filter((t) => t.runMs + t.waitMs >= 5).map((t) => `${t.name} ${t.runMs}/${t.waitMs}`).join(", ");
  return `loop utilisation ${l.utilisation}; threads on CPU / waiting for one ms: ${busy}; stalls ${sum(l.stalls.map((x) => x[1]))} (of them waiting for a CPU ${l.stalls.reduce((a, x) => a + (x[2] ?? 0), 0)} µs, loop busy ${l.stalls.reduce((a, x) => a + (x[3] ?? 0), 0)} µs); gc ${sum(l.gc.map((x) => x[1]))}; long callbacks: ${types.join("; ") || "none"}`;
}

main();
