/**
 * The long fuzz run of what a peer reaches first (bench/fuzz-inputs.ts): the
 * frame decoder, the preamble parser and the agent's framing, each with
 * `--inputs` seeded inputs (default 1 M).
 *
 *   npm run build && node dist/bench/fuzz.js [--inputs 1000000] [--seed S]
 *
 * Prints a JSON report and a markdown table; exits 1 if any input ended in
 * anything but messages or a ProtocolError, or a decoder held more than its
 * layout allows.
 */
import { cpus } from "node:os";
import { benchArgs } from "./args.js";
import { fuzzDecoder, fuzzFraming, fuzzPreamble, type FuzzReport } from "./fuzz-inputs.js";
import { printBench } from "./table.js";

const { values } = benchArgs({ options: { inputs: { type: "string" }, seed: { type: "string" } } });
const inputs = Number(values.inputs ?? 1_000_000);
if (!Number.isSafeInteger(inputs) || inputs < 1) throw new Error(`--inputs must be a positive integer, got ${values.inputs}`);
const seed = values.seed ?? "long";
const reports: FuzzReport[] = [];
for (const [name, f] of [["decoder", fuzzDecoder], ["preamble", fuzzPreamble], ["framing", fuzzFraming]] as const) {
  const t0 = performance.now();
  const rep = f(inputs, `${seed}-${name}`);
  reports.push({ ...rep, failures: rep.failures });
  process.stderr.write(`${rep.target}: ${rep.inputs} inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
const rows = reports.map((r) => ({
  target: r.target,
  inputs: r.inputs,
  MiB: Math.round(r.bytes / 2 ** 20),
  refused: r.refused,
  messages: r.messages,
  failures: r.failures.length,
  "p50 µs": r.p50_us,
  "p99 µs": r.p99_us,
  "max µs": r.max_us,
  "max buffered B": r.max_buffered,
  "bound violations": r.buffered_bound_violations,
}));
printBench("fuzz", `node dist/bench/fuzz.js --inputs ${inputs} --seed ${seed}`, { node: process.version, cpu: cpus()[0]?.model ?? "?", failures: reports.flatMap((r) => r.failures) }, rows);
process.exitCode = reports.some((r) => r.failures.length > 0 || r.buffered_bound_violations > 0) ? 1 : 0;
