/**
 * The ppsim command line.
 *
 *   ppsim --trace workload.json [flags]          simulate one migration
 *   ppsim compare --trace workload.json [flags]  the three modes side by side
 *   ppsim rerun report.json                      run a saved report's simulation again
 *   ppsim sweep grid.json                        many simulations, one row each
 *   ppsim advise --trace FILE --slo …            the mode and policy that meet the objectives
 *   ppsim real --listen HOST:PORT                receive a migration (destination)
 *   ppsim real --peer HOST:PORT --trace FILE     run a guest and migrate it (source)
 *   ppsim real --demo --trace FILE               both ends on this machine
 */
import { parseArgs } from "node:util";
import { OptionError } from "../engine/options.js";
import { VERSION } from "../version.js";
import { WorkloadError } from "../workload/parse.js";
import { runCompare } from "./compare.js";
import { COMPARE_REAL_FLAGS } from "./compare-real-flags.js";
import { COMPARE_VARIANT_FLAGS } from "./compare-variants.js";
import { UsageError } from "./errors.js";
import { joinNegativeValues } from "./negative-values.js";
import { SIM_FLAGS } from "./sim-args.js";
import { runSimCommand } from "./sim-command.js";

export const USAGE = `usage:
  ppsim --trace FILE [--mode precopy|postcopy|hybrid] [--link BANDWIDTH,LATENCY[,shared]] [--seed N] [--json]
  ppsim compare --trace FILE [--mode MODE,…] [--link …] [--json]
  ppsim compare --trace FILE --real (--demo | --peer HOST:PORT) [--mode …] [--link …] [--steps N]
                          the simulator beside a real run (same workload, options, seed): each figure
                          simulated, real and the relative error; give --link as the real link is
  ppsim rerun REPORT.json [--json]
  ppsim sweep GRID.json [--out DIR] [--workers N] [--shard I/N]   (ppsim sweep --help)
  ppsim sweep merge DIR… --out DIR                                  join sharded sweeps
  ppsim advise --trace FILE --link SPEC --slo "OBJECTIVES"          (ppsim advise --help)
  ppsim --version
  ppsim real --listen HOST:PORT
  ppsim real --peer HOST:PORT --trace FILE [--mode …]
  ppsim real --demo --trace FILE [--mode …]
  ppsim record [--out FILE] -- CMD ARGS…     record a program's page accesses (ppsim record --help)
  ppsim calibrate [--out FILE]               measure this host's costs for --host (ppsim calibrate --help)

simulation flags:
  --trace FILE            workload file (see examples/ and docs/workload.md)
  --mode MODE             precopy (default), postcopy or hybrid
  --link SPEC             bandwidth and one-way latency, default 1Gbit,0.1ms; ",shared" puts
                          demand requests in the same queue as bulk pages
  --seed N                random seed (default 1); same inputs and seed, same report
  --json                  print the report as one JSON object
  --plain                 progress lines instead of the live view
  --speed S|max           live view: S ms of virtual time per wall ms, or max (as fast as
                          possible); default: a pace from the run's predicted length (f: faster,
                          e: to the end)
  --memory SIZE           override the workload's memory size (e.g. 16GiB)
  --outage AT:DURATION    break the link AT after the migration starts, for DURATION (repeatable)
  --standby-storage RATE[,LATENCY]  keep a standby copy on storage this fast (e.g. 500MB/s,0.5ms):
                          the report gives its unprotected window (docs/standby.md)
  --source-dies-at TIME   the source host dies this long after the migration starts
  --reconnect-wait TIME   after switchover, how long a broken link may stay down (default 60s)
  --shared-channel        demand requests and replies queue behind bulk pages
  --background-order linear|neighbourhood   post-copy background order (default neighbourhood)
  --prefetch-pages N      pages pushed after each fault (default 32)
  --downtime-limit MS     pre-copy switches over when the rest fits this (default 300ms)
  --downtime-margin F     share of the limit kept back for the estimate's error: the switch waits
                          for an estimate within (1 - F) x the limit (default 0.1; docs/protocol.md)
  --max-rounds N          pre-copy round cap (default 30)
  --hybrid-rounds N       hybrid: pre-copy rounds before post-copy (default 2)
  --bandwidth-cap RATE    cap on background page traffic, e.g. 500Mbit
  --no-auto-converge      never throttle the guest
  --max-time DURATION     give up after this much virtual time (default 10 min)
  --report FILE.html      also write an HTML report with charts (one file, opens offline; compare: modes overlaid)
  --host FILE|default|none  charge the hosts' CPU costs measured by \`ppsim calibrate\` (docs/host-profile.md):
                          default is the profile shipped with ppsim; without --host the hosts are free,
                          except in compare --real, which uses default (with --demo: plus the cores'
                          figures, measured just before the real run: ppsim calibrate --cpu-only)
  --prealloc              the destination's memory populated before the migration (ppsim real --prealloc):
                          with --host, its pages stream at the profile's populated figures

what the guest felt (report key "guest", docs/disruption.md), per vCPU and overall, from the start of
the migration to its end, against an unmigrated run of the same guest:
  work_lost_vcpu_s        vCPU-seconds of work the guest did not do
  utilization             work done as a share of the unmigrated run's (the live view shows it so far)
  longest_stall_ms, stalls   a stall: a vCPU below 10 % of its speed (resolution: slot_us)
  mmu                     minimum utilization over any window of 1 ms … 10 s
  time_to_responsive_ms   until every later 100 ms window runs at ≥ 90 % of the speed
  faults                  QEMU 10.1's postcopy-latency, postcopy-vcpu-latency, postcopy-latency-dist`;

async function main(argv: string[], out: (line: string) => void): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--help" || first === "-h" || first === "help") {
    out(USAGE);
    return 0;
  }
  if (first === "--version" || first === "-V") {
    out(`ppsim ${VERSION}`);
    return 0;
  }
  if (first === "real") {
    const { runRealCommand } = await import("./real-command.js");
    return runRealCommand(rest, out);
  }
  if (first === "rerun") {
    const { runRerun } = await import("./rerun.js");
    return runRerun(rest, out);
  }
  if (first === "sweep") return (await import("./sweep-command.js")).runSweepCommand(rest, out);
  if (first === "advise") return (await import("./advise-command.js")).runAdviseCommand(rest, out);
  if (first === "record") return (await import("./record-command.js")).runRecordCommand(rest, out);
  if (first === "calibrate") return (await import("./calibrate-command.js")).runCalibrateCommand(rest, out);
  if (first === "compare") {
    const options = { ...SIM_FLAGS, ...COMPARE_REAL_FLAGS, ...COMPARE_VARIANT_FLAGS, help: { type: "boolean", short: "h" } } as const;
    const { values } = parseArgs({ args: joinNegativeValues(rest, options), options, strict: true, allowPositionals: false });
    if (values.real === true) {
      const { runCompareReal } = await import("./compare-real.js");
      return runCompareReal(values, out);
    }
    if (values.peer !== undefined || values.demo === true || values.steps !== undefined) throw new UsageError("--peer, --demo and --steps go with compare --real");
    return runCompare(values, out);
  }
  if (argv.length === 0) throw new UsageError("nothing to do: give --trace FILE (try examples/web-server.json)");
  const options = { ...SIM_FLAGS, speed: { type: "string" }, plain: { type: "boolean" }, help: { type: "boolean", short: "h" } } as const;
  const { values } = parseArgs({
    args: joinNegativeValues(argv, options),
    options,
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  return runSimCommand(values, out);
}

/** Errors a user can act on get one line; anything else is a bug and keeps its stack. */
export function describeFailure(e: unknown): { message: string; usage: boolean } {
  if (e instanceof UsageError) return { message: e.message, usage: true };
  if (e instanceof WorkloadError) return { message: e.message, usage: false };
  if (e instanceof OptionError) return { message: e.message, usage: false };
  const code = (e as { code?: string }).code;
  if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) return { message: (e as Error).message, usage: true };
  if (e instanceof Error && (e as { userFacing?: boolean }).userFacing) return { message: e.message, usage: false };
  return { message: e instanceof Error ? (e.stack ?? e.message) : String(e), usage: false };
}

/** Runs ppsim with these arguments and exits with its code. */
export function run(argv: string[]): void {
  main(argv, (line) => process.stdout.write(line + "\n")).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const { message, usage } = describeFailure(e);
      process.stderr.write(`ppsim: ${message}\n${usage ? "run ppsim --help for the flags\n" : ""}`);
      process.exit(2);
    },
  );
}

export { main };
