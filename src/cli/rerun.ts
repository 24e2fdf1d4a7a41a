/**
 * `ppsim rerun report.json`: runs a saved simulation report's migration again
 * — the same workload file, memory size, options, link, outages, seed, time
 * limit, standby storage and source death — and says whether the new report is the same. Exit status 0
 * when it is (and the run completed and verified), 1 when not, 2 when the
 * file cannot be rerun.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { reportLines } from "../../tui/plain.js";
import type { MigrationOptions } from "../engine/options.js";
import type { Report } from "../engine/report.js";
import { checkHostProfile } from "../sim/host.js";
import { simulate, type SimConfig } from "../sim/simulation.js";
import { VERSION } from "../version.js";
import { parseWorkload } from "../workload/parse.js";
import { withMemory } from "../workload/types.js";
import { UsageError } from "./errors.js";

export const RERUN_USAGE = `usage: ppsim rerun REPORT.json [--json]

Runs the simulation a report (ppsim --json, or compare --json: each of its
reports) describes, and compares the new report with the saved one.`;

/** Keys that may differ between two runs of the same migration. */
const VOLATILE = new Set(["version"]);

type Saved = Partial<Report> & Record<string, unknown>;

function need<T>(r: Saved, key: string, ok: (v: unknown) => boolean, origin: string): T {
  const v = r[key];
  if (!ok(v)) throw new UsageError(`${origin}: cannot rerun: the report has no valid "${key}" (made by ppsim ${String(r.version ?? "before 0.1.0")}?)`);
  return v as T;
}

const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);

/** The simulation a saved report describes. */
export function configOf(r: Saved, origin = "report"): SimConfig {
  if (r.backend !== "sim") throw new UsageError(`${origin}: cannot rerun a ${String(r.backend)} migration: only simulated ones are reproducible`);
  const spec = need<unknown>(r, "workload_spec", isObj, origin);
  const memBytes = need<number>(r, "mem_bytes", (v) => typeof v === "number", origin);
  const saved = need<MigrationOptions>(r, "options", isObj, origin);
  // A report saved before downtimeMargin existed ran with none: rerun it so, not with today's default.
  const options: MigrationOptions = { ...saved, downtimeMargin: saved.downtimeMargin ?? 0 };
  const link = need<{ bandwidth_bytes_s: number; latency_us: number; shared_channel: boolean }>(r, "link", isObj, origin);
  const outages = need<{ atMs: number; durationMs: number }[]>(r, "outages", Array.isArray, origin);
  const seed = need<number>(r, "seed", Number.isSafeInteger, origin);
  let workload = parseWorkload(spec, `${origin} workload_spec`);
  if (workload.memBytes !== memBytes) workload = withMemory(workload, memBytes);
  return {
    workload,
    options,
    link: { bandwidthBytesPerSec: link.bandwidth_bytes_s, latencyUs: link.latency_us, sharedChannel: link.shared_channel },
    seed,
    outages,
    maxVirtualMs: typeof r.max_virtual_ms === "number" ? r.max_virtual_ms : undefined,
    host: r.host === undefined ? null : checkHostProfile(r.host, `${origin} host`),
    ...standbyOf(r, origin),
  };
}

const positive = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;

/** The standby copy's storage and the source's death, as the report recorded them (issue 16). */
function standbyOf(r: Saved, origin: string): Pick<SimConfig, "standby" | "sourceDiesAtMs"> {
  const out: Pick<SimConfig, "standby" | "sourceDiesAtMs"> = {};
  const s = r.standby?.storage;
  if (s !== undefined) {
    const ok = isObj(s) && positive(s.write_bytes_s) && (s.read_bytes_s === null || positive(s.read_bytes_s)) && typeof s.latency_us === "number" && s.latency_us >= 0 && Number.isFinite(s.latency_us);
    if (!ok) throw new UsageError(`${origin}: cannot rerun: the report's standby.storage is not valid`);
    out.standby = { writeBytesPerSec: s.write_bytes_s, latencyUs: s.latency_us, ...(s.read_bytes_s === null ? {} : { readBytesPerSec: s.read_bytes_s }) };
  } else if (r.standby !== undefined) {
    throw new UsageError(`${origin}: cannot rerun: the report kept a standby copy but does not say on what storage (made by ppsim ${String(r.version ?? "before 0.1.0")}?)`);
  }
  if (r.source_dies_at_ms !== undefined) {
    if (!(typeof r.source_dies_at_ms === "number" && Number.isFinite(r.source_dies_at_ms) && r.source_dies_at_ms >= 0)) throw new UsageError(`${origin}: cannot rerun: the report's source_dies_at_ms is not valid`);
    out.sourceDiesAtMs = r.source_dies_at_ms;
  }
  return out;
}

/** The keys whose values differ (VOLATILE ones aside). */
export function differences(a: Saved, b: Saved): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !VOLATILE.has(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

export function runRerun(argv: string[], out: (line: string) => void): number {
  const { values, positionals } = parseArgs({ args: argv, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  if (values.help) {
    out(RERUN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("ppsim rerun takes one report file: ppsim rerun REPORT.json");
  const file = positionals[0];
  let saved: unknown;
  try {
    saved = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`${file}: cannot read the report: ${(e as Error).message}`);
  }
  const list = (Array.isArray(saved) ? saved : [saved]) as Saved[];
  if (list.length === 0 || !list.every(isObj)) throw new UsageError(`${file}: not a ppsim report (an object, or an array of them)`);
  let code = 0;
  const fresh: Report[] = [];
  for (const [i, old] of list.entries()) {
    const origin = list.length > 1 ? `${file}[${i}]` : file;
    const r: Report = { ...simulate(configOf(old, origin)), workload_spec: old.workload_spec };
    fresh.push(r);
    const diff = differences(old, r as unknown as Saved);
    const version = old.version === VERSION ? "" : ` (saved by ppsim ${String(old.version)}, rerun by ${VERSION})`;
    const verdict = diff.length === 0 ? `${origin}: the same report${version}` : `${origin}: differs in ${diff.join(", ")}${version}`;
    if (values.json) process.stderr.write(`${verdict}\n`);
    else {
      for (const l of reportLines(r)) out(l);
      out(verdict);
    }
    if (diff.length > 0 || r.outcome !== "completed" || r.verified !== true) code = 1;
  }
  if (values.json) out(JSON.stringify(Array.isArray(saved) ? fresh : fresh[0], null, 2));
  return code;
}
