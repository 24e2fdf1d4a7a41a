/**
 * `ppsim sweep`: run a grid (or one deterministic slice of it) and write its
 * rows, and join the slices of a grid into the files one whole run writes.
 *
 * An output folder holds rows.jsonl (one run per line, with its whole
 * report), rows.csv (the same rows, without the report), summary.md and
 * sweep.json (what was run: grid id, slice, wall time — the only file that
 * differs between two runs of the same grid).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Report } from "../engine/report.js";
import type { Grid } from "./grid.js";
import { runAll } from "./pool.js";
import type { PolicyKey } from "./policy.js";
import { Progress } from "./progress.js";
import { csvHeader, csvLine, jsonLine, rowOf, summaryTable, type Row } from "./rows.js";

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

/** What sweep.json records. */
export interface SweepMeta {
  ppsim_sweep_result: 1;
  grid: string;
  grid_id: string;
  grid_runs: number;
  shard: Shard | null;
  runs: number;
  policy_keys: PolicyKey[];
  workers: number;
  wall_s: number;
  node: string;
}

export class SweepError extends Error {
  override name = "SweepError";
  readonly userFacing = true;
}

/** "3/8": the 3rd of 8 slices. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1 && count <= 1_000_000) || !(index >= 1 && index <= count)) {
    throw new SweepError(`--shard must be I/N with 1 ≤ I ≤ N (e.g. 3/8), got "${text}"`);
  }
  return { index, count };
}

/** Run i belongs to slice (i mod N) + 1: neighbours in the grid (alike in cost) spread over the slices. */
export function inShard(runIndex: number, shard: Shard | null): boolean {
  return shard === null || runIndex % shard.count === shard.index - 1;
}

/** Writes an output folder's files incrementally, rows in order. */
class OutputWriter {
  private readonly jsonl: number;
  private readonly csv: number;
  readonly rows: Row[] = [];

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.jsonl = openSync(join(dir, "rows.jsonl"), "w");
    this.csv = openSync(join(dir, "rows.csv"), "w");
  }

  add(row: Row, report: Report | unknown): void {
    if (this.rows.length === 0) writeSync(this.csv, csvHeader(row) + "\n");
    this.rows.push(row);
    writeSync(this.jsonl, jsonLine(row, report as Report) + "\n");
    writeSync(this.csv, csvLine(row) + "\n");
  }

  finish(meta: SweepMeta): string {
    closeSync(this.jsonl);
    closeSync(this.csv);
    const summary = summaryTable({ policyKeys: meta.policy_keys }, this.rows);
    writeFileSync(join(this.dir, "summary.md"), `# ${meta.grid}\n\n${summary}\n`);
    writeFileSync(join(this.dir, "sweep.json"), JSON.stringify(meta, null, 2) + "\n");
    return summary;
  }
}

export interface SweepOptions {
  workers: number;
  shard: Shard | null;
  out: string;
  /** Progress lines go here (stderr). */
  progress: ((text: string) => void) | null;
  tty?: boolean;
}

/** Runs the grid's runs (of this slice) and writes the folder; returns the summary table and meta. */
export async function runSweep(grid: Grid, opts: SweepOptions): Promise<{ summary: string; meta: SweepMeta; rows: Row[] }> {
  const runs = grid.runs.filter((r) => inShard(r.key.index, opts.shard));
  const out = new OutputWriter(opts.out);
  const label = `sweep ${grid.name}${opts.shard ? ` shard ${opts.shard.index}/${opts.shard.count}` : ""}`;
  const progress = opts.progress ? new Progress(runs.length, opts.progress, opts.tty === true, label) : null;
  const started = Date.now();
  try {
    await runAll(runs.map((r) => r.config), {
      workers: opts.workers,
      onReport: (i, report) => {
        out.add(rowOf(runs[i].key, grid.policyKeys, report), report);
        progress?.update(i + 1);
      },
    });
  } catch (e) {
    const position = (e as { position?: number }).position;
    if (position === undefined) throw e;
    const k = runs[position].key;
    throw new Error(`run ${k.index} (${k.trace} ${k.mode} ${k.link} seed ${k.seed}) failed: ${(e as Error).stack ?? String(e)}`);
  }
  const meta: SweepMeta = {
    ppsim_sweep_result: 1,
    grid: grid.name,
    grid_id: grid.id,
    grid_runs: grid.runs.length,
    shard: opts.shard,
    runs: runs.length,
    policy_keys: grid.policyKeys,
    workers: opts.workers,
    wall_s: Math.round((Date.now() - started) / 10) / 100,
    node: process.version,
  };
  return { summary: out.finish(meta), meta, rows: out.rows };
}

function readMeta(dir: string): SweepMeta {
  const path = join(dir, "sweep.json");
  if (!existsSync(path)) throw new SweepError(`${dir}: no sweep.json here (not the output folder of ppsim sweep, or its run did not finish)`);
  let meta: SweepMeta;
  try {
    meta = JSON.parse(readFileSync(path, "utf8")) as SweepMeta;
  } catch (e) {
    throw new SweepError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (meta.ppsim_sweep_result !== 1) throw new SweepError(`${path}: not a ppsim sweep result (ppsim_sweep_result must be 1)`);
  return meta;
}

/** Joins the output folders of the N slices of one grid into `out`, as one unsliced run writes it. */
export function mergeShards(dirs: string[], out: string): { summary: string; meta: SweepMeta } {
  if (dirs.length === 0) throw new SweepError("sweep merge: give the output folders of the shards to join");
  const metas = dirs.map(readMeta);
  const first = metas[0];
  const seen = new Set<number>();
  for (const [i, m] of metas.entries()) {
    if (m.grid_id !== first.grid_id) throw new SweepError(`${dirs[i]}: grid ${m.grid_id}, but ${dirs[0]} ran grid ${first.grid_id} (another grid, or its workload files changed)`);
    const count = m.shard?.count ?? 1;
    if (count !== (first.shard?.count ?? 1)) throw new SweepError(`${dirs[i]}: a slice of ${count}, but ${dirs[0]} is a slice of ${first.shard?.count ?? 1}`);
    const index = m.shard?.index ?? 1;
    if (seen.has(index)) throw new SweepError(`${dirs[i]}: slice ${index} given twice`);
    seen.add(index);
  }
  const count = first.shard?.count ?? 1;
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !seen.has(i));
  if (missing.length) throw new SweepError(`sweep merge: slice(s) ${missing.join(", ")} of ${count} missing`);

  const lines: { run: number; line: string }[] = [];
  for (const [i, dir] of dirs.entries()) {
    const text = readFileSync(join(dir, "rows.jsonl"), "utf8");
    const got = text.split("\n").filter((l) => l !== "");
    if (got.length !== metas[i].runs) throw new SweepError(`${dir}: rows.jsonl has ${got.length} rows, sweep.json says ${metas[i].runs}`);
    for (const line of got) lines.push({ run: (JSON.parse(line) as { run: number }).run, line });
  }
  lines.sort((a, b) => a.run - b.run);
  if (lines.length !== first.grid_runs || lines.some((l, i) => l.run !== i)) {
    throw new SweepError(`sweep merge: the shards hold ${lines.length} rows, not runs 0…${first.grid_runs - 1} of the grid once each`);
  }
  const writer = new OutputWriter(out);
  for (const { line } of lines) {
    const { report, ...row } = JSON.parse(line) as Row & { report: unknown };
    writer.add(row as Row, report);
  }
  const meta: SweepMeta = { ...first, shard: null, runs: lines.length, workers: Math.max(...metas.map((m) => m.workers)), wall_s: metas.reduce((s, m) => s + m.wall_s, 0) };
  return { summary: writer.finish(meta), meta };
}
