/**
 * The source engine's switchover alone, at large page counts (issue 9): no
 * guest, no link, no second process. What the real run's "engine" leg holds
 * (the PAUSE reply handed to `handle(guestPaused)` until the switchover
 * message is pulled) is timed here step by step, so that a step whose cost
 * grows with the guest's size shows as such, apart from the noise of a real
 * migration.
 *
 *   node dist/bench/switchover-engine.js [--sizes 1,4,8,64] [--modes postcopy,hybrid,precopy]
 *     [--runs 7] [--dirty 4096] [--standby] [--against /path/to/other/dist]
 *
 * --sizes: guest sizes in GiB of 4 KiB pages. --dirty: pages the fake guest
 * reports written at each dirty-log collection after the first (spread evenly:
 * scattered, one per run, as a random rewrite leaves them). --standby: the
 * source keeps a standby copy (its plan's switchover step is then in the
 * path). --against: time that build's engine instead (its dist directory),
 * for A/B against this one; the step names it lacks show as null.
 *
 * Per size and mode, after a warm-up at a small page count (as the real
 * agents rehearse, src/real/switchover-rehearsal.ts): `runs` fresh engines
 * each brought to the pause (pre-copy rounds sent as zero pages), then timed:
 *  - paused_us: handle(guestPaused), with its steps (each a wrapper round a
 *    ledger / standby method; the wrappers cost ~1 µs each);
 *  - to_link_us: from there until pollTransmit yields the switchover message
 *    (stop-and-copy: the last dirty pages go first, `before_msgs` messages);
 *  - after_us: the first background pull after the switchover and the first
 *    standby poll — work that should come after the frame, not before it;
 *    standby_first_poll_us: that poll alone (with --standby, the mark).
 * Figures are medians (max beside) of wall µs (hrtime). One JSON object and a
 * markdown table on stdout. A benchmark: run it inside the bench lock.
 */
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { loadavg } from "node:os";
import { benchArgs, refuse } from "./args.js";
import { median, printBench, type Row } from "./table.js";
import type * as SourceModule from "../src/engine/source.js";
import type * as LedgerModule from "../src/engine/ledger.js";
import type * as StandbyModule from "../src/engine/standby.js";
import type * as OptionsModule from "../src/engine/options.js";
import type { Message } from "../src/engine/messages.js";

const { values } = benchArgs({
  options: {
    sizes: { type: "string", default: "1,4,8,64" },
    modes: { type: "string", default: "postcopy,hybrid,precopy" },
    runs: { type: "string", default: "7" },
    dirty: { type: "string", default: "4096" },
    standby: { type: "boolean", default: false },
    against: { type: "string" },
  },
});

type Mode = "postcopy" | "hybrid" | "precopy";
const sizes = values.sizes.split(",").map(Number);
const modes = values.modes.split(",") as Mode[];
const runs = Number(values.runs);
const dirtyPages = Number(values.dirty);
if (sizes.some((s) => !(s > 0))) refuse(`--sizes must be GiB counts, got ${values.sizes}`);
if (modes.some((m) => !["postcopy", "hybrid", "precopy"].includes(m))) refuse(`--modes: postcopy, hybrid, precopy; got ${values.modes}`);
if (!(Number.isInteger(runs) && runs >= 1)) refuse(`--runs must be a positive integer, got ${values.runs}`);
if (!(Number.isInteger(dirtyPages) && dirtyPages >= 0)) refuse(`--dirty must be a page count, got ${values.dirty}`);

const PAGE = 4096;
const distDir = values.against === undefined ? resolve(import.meta.dirname, "..") : resolve(values.against);
const load = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(resolve(distDir, rel)).href)) as T;
const { Source } = await load<typeof SourceModule>("src/engine/source.js");
const { PageLedger } = await load<typeof LedgerModule>("src/engine/ledger.js");
const { StandbyPlan, DEFAULT_STANDBY } = await load<typeof StandbyModule>("src/engine/standby.js");
const { resolveOptions } = await load<typeof OptionsModule>("src/engine/options.js");

/** The steps timed inside handle(guestPaused) and after: class, method, and the name in the table. */
const STEPS: [object, string, string][] = [
  [PageLedger.prototype, "dirtied", "dirtied"],
  [PageLedger.prototype, "stale", "stale"],
  [PageLedger.prototype, "pendAllUnsent", "pend_all"],
  [StandbyPlan.prototype, "atSwitchover", "standby_at_switchover"],
];
let spent: Record<string, number> = {};
let timing = false;
for (const [proto, method, name] of STEPS) {
  const p = proto as Record<string, unknown>;
  const f = p[method];
  if (typeof f !== "function") continue;
  p[method] = function (this: unknown, ...args: unknown[]) {
    if (!timing) return (f as (...a: unknown[]) => unknown).apply(this, args);
    const t = process.hrtime.bigint();
    const r = (f as (...a: unknown[]) => unknown).apply(this, args);
    spent[name] = (spent[name] ?? 0) + Number(process.hrtime.bigint() - t) / 1000;
    return r;
  };
}
const stepNames = STEPS.map(([, , n]) => n);

interface Timed {
  paused: number;
  toLink: number;
  beforeMsgs: number;
  stale: number;
  after: number;
  /** The first standby poll alone (with a copy, the mark: its bytes may be made here). */
  standbyPoll: number;
  steps: Record<string, number>;
}

/** One engine from start to its switchover message, the pause and the send timed. */
function once(mode: Mode, pageCount: number): Timed {
  const opts = resolveOptions({
    mode,
    batchPages: 256,
    autoConverge: false,
    // Hybrid must not converge (it would stop-and-copy); pre-copy must.
    downtimeLimitMs: mode === "precopy" ? 1e9 : 1e-6,
    hybridRounds: 2,
  });
  let collected = 0;
  const stride = dirtyPages > 0 ? Math.max(1, Math.floor(pageCount / dirtyPages)) : 1;
  // Made before anything is timed: the fake guest's own work is not the engine's.
  const logs = [1, 2, 3, 4, 5].map((c) => {
    const n = Math.min(dirtyPages, pageCount);
    const log = new Uint32Array(n);
    for (let i = 0; i < n; i++) log[i] = Math.min(pageCount - 1, i * stride + (c % stride));
    return log;
  });
  const guest = {
    readPage: () => null,
    collectDirty: (): Uint32Array => {
      // The first call arms tracking (nothing yet); each later one a different scattered set, in page order (as a dirty log comes).
      if (collected++ === 0 || mode === "postcopy") return new Uint32Array(0);
      return logs[collected % logs.length];
    },
  };
  const src = new Source<null>(opts, { pageSize: PAGE, pageCount }, guest, values.standby ? DEFAULT_STANDBY : null);
  let now = 1;
  src.start(now);
  // The destination answers with what the engine offered in its hello.
  const hello = src.pollTransmit("bulk", now) as Extract<Message<null>, { type: "hello" }>;
  src.handle({ kind: "message", msg: { type: "helloAck", version: hello.version, capabilities: hello.capabilities } }, now);
  let paused = false;
  const drain = () => {
    for (let a = src.pollAction(); a !== null; a = src.pollAction()) if (a.kind === "pauseGuest") paused = true;
  };
  drain();
  if (src.finished) throw new Error("the engine refused the handshake");
  while (!paused) {
    now += 1;
    const m = src.pollTransmit("bulk", now);
    if (m === null) src.pollTransmit("urgent", now);
    drain();
    if (src.finished) throw new Error("the engine ended before its pause");
  }
  const cpuState = new Uint8Array(72);
  spent = {};
  timing = true;
  const t0 = process.hrtime.bigint();
  src.handle({ kind: "guestPaused", cpuState }, now);
  const t1 = process.hrtime.bigint();
  timing = false;
  const steps = spent;
  let msg: Message<null> | null = null;
  let before = 0;
  for (;;) {
    msg = src.pollTransmit("bulk", now);
    if (msg === null) throw new Error("no switchover message");
    if (msg.type === "switchover") break;
    before++;
  }
  const t2 = process.hrtime.bigint();
  // What comes after the frame: the first push batch (post-copy, hybrid) and the first standby poll.
  src.pollTransmit("bulk", now);
  const t3a = process.hrtime.bigint();
  src.pollStandby();
  const t3 = process.hrtime.bigint();
  const us = (a: bigint, b: bigint) => Number(b - a) / 1000;
  return { paused: us(t0, t1), toLink: us(t1, t2), beforeMsgs: before, stale: msg.stale.length, after: us(t2, t3), standbyPoll: us(t3a, t3), steps };
}

const loadBefore = loadavg()[0];
const startedAt = new Date().toISOString();
// Warm: every mode's path compiled and tiered up at a small size first.
for (let i = 0; i < 30; i++) for (const m of modes) once(m, 4096);
const rows: Row[] = [];
for (const gib of sizes) {
  const pageCount = gib * 262144;
  for (const mode of modes) {
    const got: Timed[] = [];
    for (let r = 0; r < runs; r++) got.push(once(mode, pageCount));
    const med = (f: (t: Timed) => number) => Math.round(median(got.map(f)) * 10) / 10;
    const max = (f: (t: Timed) => number) => Math.round(Math.max(...got.map(f)) * 10) / 10;
    const row: Row = {
      gib,
      mode,
      standby: values.standby,
      paused_us: med((t) => t.paused),
      paused_max_us: max((t) => t.paused),
    };
    for (const n of stepNames) row[`${n}_us`] = got[0].steps[n] === undefined ? null : med((t) => t.steps[n] ?? 0);
    row.to_link_us = med((t) => t.toLink);
    row.to_link_max_us = max((t) => t.toLink);
    row.before_msgs = got[0].beforeMsgs;
    row.stale_pages = got[0].stale;
    row.after_us = med((t) => t.after);
    row.standby_first_poll_us = med((t) => t.standbyPoll);
    rows.push(row);
  }
}
printBench("switchover-engine", process.argv.slice(1).join(" "), { dist: distDir, startedAt, endedAt: new Date().toISOString(), loadBefore, loadAfter: loadavg()[0], runs, dirtyPages }, rows);
