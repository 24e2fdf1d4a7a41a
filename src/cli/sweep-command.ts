/**
 * `ppsim sweep GRID.json [--out DIR] [--workers N] [--shard I/N]` and
 * `ppsim sweep merge DIR… --out DIR` (docs/sweep.md).
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { loadGrid } from "../sweep/grid.js";
import { DEFAULT_WORKERS } from "../sweep/pool.js";
import { mergeShards, parseShard, runSweep } from "../sweep/sweep.js";
import { UsageError } from "./errors.js";

export const SWEEP_USAGE = `ppsim sweep:
  ppsim sweep GRID.json [--out DIR] [--workers N] [--shard I/N] [--quiet]
  ppsim sweep merge DIR… --out DIR

  GRID.json      the lists to cross: workloads, memory, links, modes, policy, seeds (docs/sweep.md)
  --out DIR      output folder: rows.jsonl, rows.csv, summary.md, sweep.json
                 (default GRID-out, or GRID-shard-I-of-N for a slice)
  --workers N    worker threads (default: one per core, here ${DEFAULT_WORKERS}); 0 runs on the main thread
  --shard I/N    run only the I-th of N deterministic slices (a Slurm array task, a Kubernetes Job index)
  --quiet        no progress on stderr
  merge          join the folders of all N slices into the files one unsliced run writes`;

const FLAGS = {
  out: { type: "string" },
  workers: { type: "string" },
  shard: { type: "string" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Out = (line: string) => void;

function workersFlag(text: string | undefined): number {
  if (text === undefined) return DEFAULT_WORKERS;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !(n >= 0 && n <= 256)) throw new UsageError(`--workers must be an integer in [0, 256], got "${text}"`);
  return n;
}

export async function runSweepCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: true });
  if (values.help) {
    out(SWEEP_USAGE);
    return 0;
  }
  if (positionals[0] === "merge") {
    if (values.out === undefined) throw new UsageError("sweep merge needs --out DIR: where the joined rows go");
    const { summary, meta } = mergeShards(positionals.slice(1), values.out);
    out(summary);
    out(`\n${meta.runs} runs of ${meta.grid} from ${positionals.length - 1} slices → ${values.out}/rows.jsonl, rows.csv, summary.md`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`sweep takes one grid file, got ${positionals.length === 0 ? "none" : positionals.join(" ")} (see docs/sweep.md)`);
  const shard = values.shard === undefined ? null : parseShard(values.shard);
  const workers = workersFlag(values.workers);
  const grid = loadGrid(positionals[0]);
  const stem = basename(positionals[0]).replace(/\.json$/, "");
  const dir = values.out ?? (shard ? `${stem}-shard-${shard.index}-of-${shard.count}` : `${stem}-out`);
  const { summary, meta, rows } = await runSweep(grid, {
    workers,
    shard,
    out: dir,
    progress: values.quiet ? null : (t) => process.stderr.write(t),
    tty: process.stderr.isTTY,
  });
  out(summary);
  out(`\n${meta.runs} runs in ${meta.wall_s} s on ${workers} worker(s) → ${dir}/rows.jsonl, rows.csv, summary.md`);
  const bad = rows.filter((r) => r.verified === false).length;
  if (bad) out(`! ${bad} run(s) ended with memory NOT verified`);
  return bad ? 1 : 0;
}
