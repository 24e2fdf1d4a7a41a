/**
 * `ppsim calibrate [--out FILE] [--reps N] [--json]`: measures this machine's
 * host costs (src/real/calibrate.ts) and writes the profile the simulator
 * charges with `--host FILE` (docs/host-profile.md).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { calibrate } from "../real/calibrate.js";
import { checkHostProfile } from "../sim/host.js";
import { UsageError } from "./errors.js";

export const CALIBRATE_USAGE = `usage: ppsim calibrate [--out FILE] [--reps N] [--cpu-only] [--json]

  measures what the simulator's --host profile charges, on this machine, through the real
  back end's own calls: per page sent and installed (data and zero pages), per message, a
  fault's delivery to the agent, a guest's pause, and the cores as a migration finds them
  (the native stream's CPU, the cores available, a vCPU's share while pages stream; see
  docs/host-profile.md); ~10–30 s
  --out FILE   write the profile (JSON) there; then: ppsim --trace W.json --host FILE
  --reps N     repetitions of each figure, median kept (default 5)
  --cpu-only   only the cores' figures (~2 s a repetition), the shipped profile's others
  --json       print the profile, each figure's spread and the host as one JSON object`;

export async function runCalibrateCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { values: f } = parseArgs({
    args: argv,
    options: { out: { type: "string" }, reps: { type: "string" }, "cpu-only": { type: "boolean" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: false,
  });
  if (f.help === true) {
    out(CALIBRATE_USAGE);
    return 0;
  }
  const reps = f.reps === undefined ? 5 : Number(f.reps);
  if (!(Number.isSafeInteger(reps) && reps >= 1 && reps <= 100)) throw new UsageError(`--reps must be an integer in 1..100, got "${f.reps}"`);
  const c = await calibrate({ reps, cpuOnly: f["cpu-only"] === true, log: (l) => process.stderr.write(`· ${l}\n`) });
  checkHostProfile(c.profile, "the measured profile"); // what --host will read back
  if (f.out !== undefined) writeFileSync(f.out, JSON.stringify(c.profile, null, 2) + "\n");
  if (f.json === true) {
    out(JSON.stringify(c));
    return 0;
  }
  out(`host: ${c.profile.measured_on}`);
  out("| figure | median | min | max |");
  out("| --- | --- | --- | --- |");
  for (const [k, s] of Object.entries(c.spread)) out(`| ${k} | ${s.median} | ${s.min} | ${s.max} |`);
  if (f.out !== undefined) out(`profile written to ${f.out}; use it with --host ${f.out}`);
  return 0;
}
