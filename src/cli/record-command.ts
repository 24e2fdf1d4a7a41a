/**
 * `ppsim record [--out FILE] [--window N] [--time-native] -- CMD ARGS…`: record a program's page accesses.
 * `ppsim record --summary FILE`: what an existing trace holds.
 * While recording, messages go to stderr (the recorded program owns stdout);
 * --help and --summary print to `out`.
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { record } from "../record/record.js";
import { loadTrace, summarizeTrace, type TraceSummary } from "../workload/trace-format.js";
import { UsageError } from "./errors.js";

export const RECORD_USAGE = `usage:
  ppsim record [--out FILE] [--window N] [--page-size BYTES] [--time-native] -- CMD [ARGS…]
  ppsim record --summary FILE

  --out FILE        the trace (gzip text, docs/trace-format.md); default CMD.trace.gz
  --window N        instructions per window (default 1000000)
  --page-size B     page size the accesses are counted in (default 4096)
  --time-native     first run CMD once without valgrind and keep its wall time
                    (lets a workload replay the trace at "speed": "recorded")
  --summary FILE    print the summary of a trace instead of recording`;

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

export function summaryLines(s: TraceSummary): string[] {
  const mib = (pages: number) => `${((pages * s.page_size) / 1048576).toFixed(1)} MiB`;
  return [
    `windows: ${s.windows} of ${s.window_instructions} instructions (${s.instructions} in all)`,
    `footprint: ${s.footprint_pages} pages (${mib(s.footprint_pages)}), of which code: ${s.code_pages}`,
    `pages written: ${s.written_pages}`,
    `write working set per window: mean ${s.write_set_per_window.mean}, median ${s.write_set_per_window.p50}, max ${s.write_set_per_window.max} pages`,
    `share of written pages rewritten (in more than one window): ${(s.rewritten_share * 100).toFixed(1)} %`,
  ];
}

export async function runRecordCommand(
  argv: string[],
  out: (line: string) => void = (l) => process.stdout.write(l + "\n"),
  err: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  const { values } = parseArgs({
    args: own,
    options: {
      out: { type: "string" },
      window: { type: "string" },
      "page-size": { type: "string" },
      "time-native": { type: "boolean" },
      summary: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    out(RECORD_USAGE);
    return 0;
  }
  if (values.summary !== undefined) {
    if (command.length > 0) throw new UsageError("--summary reads an existing trace: give no command");
    for (const l of summaryLines(summarizeTrace(loadTrace(values.summary)))) out(l);
    return 0;
  }
  if (command.length === 0) throw new UsageError("nothing to record: put the command after --, e.g. ppsim record --out gz.trace.gz -- gzip -c FILE");
  const pageSize = positiveInt(values["page-size"], "--page-size", 4096);
  if ((pageSize & (pageSize - 1)) !== 0 || pageSize < 512) throw new UsageError(`--page-size must be a power of two ≥ 512, got ${pageSize}`);
  const file = values.out ?? `${basename(command[0])}.trace.gz`;
  const result = await record({
    command,
    out: file,
    window: positiveInt(values.window, "--window", 1_000_000),
    pageSize,
    timeNative: values["time-native"] === true,
    log: err,
  });
  err(`ppsim record: wrote ${file}`);
  for (const l of summaryLines(summarizeTrace(loadTrace(file)))) err(`  ${l}`);
  if (result.exitCode !== 0) {
    err(`ppsim record: note: ${command[0]} exited with ${result.signal ?? String(result.exitCode)}; the trace covers what it ran`);
    return 1;
  }
  return 0;
}
