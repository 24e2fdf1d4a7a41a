/**
 * What the hosts' CPUs cost, for the simulator to charge: the real back end
 * spends time per page and per message at both ends (reading guest memory,
 * checking for zeros, framing, installing with userfaultfd), hands each
 * fault to its agent through the kernel, and pauses its guest through a
 * control socket. Without a profile the simulator's hosts are free, which
 * at loopback speed predicts a fraction of the real time.
 *
 * A profile is measured on a machine by `ppsim calibrate` (src/real/calibrate.ts)
 * and given with `--host FILE`; `--host default` is the profile shipped below.
 *
 * How the simulator charges it (src/sim/link.ts, simulation.ts):
 * - a message occupies its direction's serialiser for the longest of its wire
 *   time, the sender's work and the receiver's work: the three run as a
 *   pipeline, so the slowest stage sets the throughput;
 * - it reaches the receiver's engine the link's latency plus the receiver's
 *   work after its last byte left (installed before the engine hears of it);
 * - a vCPU's fault reaches the destination engine `faultDeliveryUs` after
 *   the vCPU stopped;
 * - the source guest's pause completes `pause_us` after it was asked;
 * - the destination engine hears of the hello `guest_start_us` late (it
 *   starts its guest first) and of the switchover `resume_us` late (its guest
 *   runs once the resume returned, which is when the real agent reports it);
 * - with the optional CPU keys, the cores' contention: src/sim/host-cpu.ts;
 * - with the optional switchover keys, the legs of the guest's downtime
 *   (the pause of vCPUs that must run to park, the switchover frame's hop
 *   through the data plane's threads, the destination's first vCPU step):
 *   src/sim/host-switchover.ts;
 * - with the optional run keys, a pages message's stream time per install
 *   call beside per page, the calls split as the native receiver splits
 *   them: src/sim/host-runs.ts;
 * - with `fault_lane_us` (the hosts have the native fault lane, the real back
 *   end's default: docs/real.md "The fault lane"), a vCPU's fault is asked
 *   for at once and neither engine's loop is on its way: its request and
 *   reply on the urgent channel cost the hosts nothing per message, and the
 *   reply arrives `fault_lane_us` after the link brought the request; with
 *   `loop_hop_us` neither pays the event loops' share of the link's latency
 *   (src/sim/host-lane.ts).
 */
import { PAGE_ENTRY_OVERHEAD } from "../engine/codec.js";
import type { Message } from "../engine/messages.js";
import { CPU_KEYS, cpuKeyError, requestWaitUs, streamCpuUs, type HostCpu } from "./host-cpu.js";
import { installRuns, RUN_KEYS, runKeyError, type HostRuns } from "./host-runs.js";
import { LANE_KEYS, laneExtraUs, laneKeyError, type HostLane } from "./host-lane.js";
import { optionalCostError } from "./host-keys.js";
import { POPULATED_KEYS, populatedKeyError, type HostPopulated } from "./host-populated.js";
import { SWITCHOVER_KEYS, switchoverExtraUs, switchoverHopUs, switchoverKeyError, type HostSwitchover } from "./host-switchover.js";

export const HOST_PROFILE_VERSION = 1;

/**
 * The CPU keys (cores, the native stream, the guest's share while it runs) are optional: src/sim/host-cpu.ts; so are
 * the switchover's legs: host-switchover.ts, the stream's cost per install call: host-runs.ts, and the event loops'
 * share of the link's latency that the fault lane skips: host-lane.ts, and the stream into memory populated ahead:
 * host-populated.ts.
 */
export interface HostProfile extends HostCpu, HostSwitchover, HostRuns, HostLane, HostPopulated {
  ppsim_host_profile: typeof HOST_PROFILE_VERSION;
  /** Where and how it was measured, for a reader (free text). */
  measured_on: string;
  /** Source: reading a page with data and framing it, ns. */
  send_ns_per_page: number;
  /** Source: reading a page and finding it zero (sent as a flag), ns. */
  send_ns_per_zero_page: number;
  /** Destination: installing a page with data (UFFDIO_COPY or pwrite), ns. */
  install_ns_per_page: number;
  /** Destination: installing a zero page (UFFDIO_ZEROPAGE), ns. */
  install_ns_per_zero_page: number;
  /** Either end, per message: encoding or decoding, the socket call, the event-loop turn, ns. */
  message_ns: number;
  /** A guest's fault reaching the agent's engine (userfaultfd read, wake-up), µs. */
  fault_delivery_us: number;
  /** Pausing the source guest through its control socket, µs. */
  pause_us: number;
  /** Resuming a paused guest (its vCPU threads running again), µs. */
  resume_us: number;
  /** The destination starting its guest process when the source's hello comes, µs. */
  guest_start_us: number;
  /**
   * Optional: a demand fault over the native fault lane, both hosts' part
   * without the link's (the reader thread's request, the source lane
   * thread's answer from guest memory, the install that wakes the vCPU), µs.
   * Absent: faults go through both agents' event loops (the lane off).
   */
  fault_lane_us?: number;
}

/**
 * Shipped with ppsim: `ppsim calibrate --reps 5` on the development machine
 * (2 cores, Linux 6.18, Node 20) on 2026-12-01, quiet (load ~1.2):
 * docs/host-profile.md has this run and two under load, with their spread.
 */
export const DEFAULT_HOST: HostProfile = {
  ppsim_host_profile: 1,
  measured_on: "ppsim's development machine: 2 CPUs (AMD EPYC), Linux 6.18, Node 20.20, ppsim calibrate --reps 5, 2026-12-01 (quiet, load ~1.2)",
  send_ns_per_page: 2106,
  send_ns_per_zero_page: 844,
  install_ns_per_page: 3127,
  install_ns_per_zero_page: 1306,
  // Into memory populated ahead (host-populated.ts): `ppsim calibrate --reps 3` on 2026-12-04 20:38 UTC (a 2-CPU
  // Xeon VM, load ~1.4; docs/data/s32-calibrate.txt), where fresh memory's figures were 4166 and 1241 ns in the same run.
  install_ns_per_page_populated: 1421,
  install_ns_per_zero_page_populated: 270,
  message_ns: 993,
  fault_delivery_us: 66.3,
  pause_us: 51.1,
  resume_us: 41.5,
  // Remeasured (--reps 3, 28.7–32.1 ms) after the guest moved its ~20 ms loop calibration before its hello.
  guest_start_us: 30886,
  // The real back end's default has the fault lane (PPSIM_FAULT_LANE=0: drop the key): the lane's own stamps, read →
  // install (calibrate-lane.ts native_p50_us), median of 5, 2026-12-02 06:59:56–06:59:58 UTC, load 10.5. The
  // switchover's legs: `ppsim calibrate --reps 5`, 06:11–06:12 UTC, load 6.3–9.4 (docs/host-profile.md).
  fault_lane_us: 49,
  park_us: 135.8,
  pause_reply_us: 128.8,
  switchover_hop_us: 147,
  first_step_us: 174.5,
  // The stream's cost per install call (host-runs.ts): calibrate-runs.ts's fit, median of three (16384-page streams in
  // runs of 1, 2, 4, 16), 2026-12-02 12:55:09–12:55:27 UTC, load 5.4–7.4 (noisy: each fit's spread in docs/host-profile.md).
  // Data runs once the guest runs: no per-call part resolved (two of three fits 0). Not shipped: the pair before the
  // guest runs (pwritev; fits 9290 and 7790 ns), which over-predicted the stored pre-copy runs (idle 256 MiB −11 % →
  // +72 %, docs/host-profile.md): pre-copy keeps its per-page charge.
  stream_ns_per_run_running: 0,
  stream_ns_per_zero_run_running: 5631,
  // A destination vCPU's wait for a core after its fault's install (host-cpu.ts): calibrate-wake.ts with 4 touching
  // threads, the median of six streams, 2026-12-02 15:52:33–15:54:52 UTC, load 10.6–11.7 (951–3199 µs; one thread
  // alone measured 48–334 µs): docs/host-profile.md "faultcount".
  fault_wake_us: 1425,
};

const NUMBER_KEYS = [
  "send_ns_per_page",
  "send_ns_per_zero_page",
  "install_ns_per_page",
  "install_ns_per_zero_page",
  "message_ns",
  "fault_delivery_us",
  "pause_us",
  "resume_us",
  "guest_start_us",
] as const;

/** A profile no larger than this is taken: each cost at most a second (a typo, not a host). */
const MAX_COST = 1e9;

export class HostProfileError extends Error {
  override name = "HostProfileError";
  readonly userFacing = true;
}

/** Checks a parsed profile (from a file: `where` names it). */
export function checkHostProfile(v: unknown, where: string): HostProfile {
  const o = v as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new HostProfileError(`${where}: a host profile is a JSON object (ppsim calibrate writes one)`);
  if (o.ppsim_host_profile !== HOST_PROFILE_VERSION) {
    throw new HostProfileError(`${where}: "ppsim_host_profile" must be ${HOST_PROFILE_VERSION}, got ${JSON.stringify(o.ppsim_host_profile)}`);
  }
  for (const k of NUMBER_KEYS) {
    const x = o[k];
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0 || x > MAX_COST) throw new HostProfileError(`${where}: "${k}" must be a number in [0, ${MAX_COST}], got ${JSON.stringify(x)}`);
  }
  const cpuError = cpuKeyError(o);
  if (cpuError !== null) throw new HostProfileError(`${where}: ${cpuError}`);
  const laneUsError = optionalCostError(o, ["fault_lane_us"], MAX_COST);
  if (laneUsError !== null) throw new HostProfileError(`${where}: ${laneUsError}`);
  const legError = switchoverKeyError(o, MAX_COST);
  if (legError !== null) throw new HostProfileError(`${where}: ${legError}`);
  const runError = runKeyError(o, MAX_COST);
  if (runError !== null) throw new HostProfileError(`${where}: ${runError}`);
  const laneError = laneKeyError(o, MAX_COST);
  if (laneError !== null) throw new HostProfileError(`${where}: ${laneError}`);
  const populatedError = populatedKeyError(o, MAX_COST);
  if (populatedError !== null) throw new HostProfileError(`${where}: ${populatedError}`);
  const known = new Set<string>(["ppsim_host_profile", "measured_on", "fault_lane_us", ...NUMBER_KEYS, ...CPU_KEYS, ...SWITCHOVER_KEYS, ...RUN_KEYS, ...LANE_KEYS, ...POPULATED_KEYS]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new HostProfileError(`${where}: unknown key "${k}"`);
  return { ...(o as unknown as HostProfile), measured_on: typeof o.measured_on === "string" ? o.measured_on.slice(0, 500) : "" };
}

/**
 * Sender's and receiver's work for one message, µs; `extraUs`: what the
 * receiver does before its engine hears of it that does not hold up the
 * next message (starting or resuming its guest). `destinationRunning`:
 * the destination's guest runs (its pages install through userfaultfd).
 * `urgent`: it goes on the urgent channel — with the fault lane, a demand
 * fault's request or reply, which no engine's loop handles on the way.
 * `linkLatencyUs`: the link's one-way latency, of which a lane message may
 * skip the event loop's part (`loop_hop_us`, host-lane.ts). `zeroHoles`:
 * the destination leaves zero pages holes (host-runs.ts ZERO_HOLE_MAX_PAGE),
 * which splits a message's install calls at them.
 */
export function messageCostUs(
  h: HostProfile,
  msg: Message<unknown>,
  destinationRunning = false,
  urgent = false,
  linkLatencyUs = 0,
  zeroHoles = false,
): { sendUs: number; recvUs: number; extraUs: number } {
  if (urgent && h.fault_lane_us !== undefined && (msg.type === "pageRequest" || msg.type === "pages")) {
    return { sendUs: 0, recvUs: 0, extraUs: laneExtraUs(h, h.fault_lane_us, msg.type, linkLatencyUs) };
  }
  let sendNs = h.message_ns;
  let recvNs = h.message_ns;
  let cpuUs = 0;
  if (msg.type === "pages") {
    let zeros = 0;
    for (const d of msg.data) {
      if (d === null) {
        zeros++;
        sendNs += h.send_ns_per_zero_page;
        // A hole is a mark in the receiver's table, no install (the stream keys charge its wall where the profile has them).
        if (!zeroHoles) recvNs += h.install_ns_per_zero_page;
      } else {
        sendNs += h.send_ns_per_page;
        recvNs += h.install_ns_per_page;
      }
    }
    // The install calls only where the profile charges them: a profile without the run keys does no more work than before.
    const runs = h.stream_ns_per_run !== undefined || h.stream_ns_per_run_running !== undefined ? installRuns(msg.pages, msg.data, zeroHoles) : undefined;
    cpuUs = streamCpuUs(h, msg.pages.length, zeros, destinationRunning, runs);
  }
  let extraUs = 0;
  if (msg.type === "hello") extraUs = h.guest_start_us;
  else if (msg.type === "switchover") extraUs = switchoverExtraUs(h);
  else if (msg.type === "pageRequest") extraUs = requestWaitUs(h);
  // The stream's CPU over the cores it gets is one more stage of the pipeline: it holds the sender as long.
  const sendUs = Math.max(sendNs / 1000, cpuUs);
  return { sendUs: msg.type === "switchover" ? sendUs + switchoverHopUs(h) : sendUs, recvUs: recvNs / 1000, extraUs };
}

/** The bytes a message's host work is worth on a link of this speed (its serialiser occupancy, in wire bytes). */
export function occupancyBytes(wireBytes: number, cost: { sendUs: number; recvUs: number }, usPerByte: number): number {
  return Math.max(wireBytes, Math.max(cost.sendUs, cost.recvUs) / usPerByte);
}

/** For a reader: what the profile makes of a page stream (pages/s each end can move). */
export function pageRates(h: HostProfile, pageSize: number): { sendPagesPerS: number; installPagesPerS: number; wireBytesPerPage: number } {
  return {
    sendPagesPerS: 1e9 / Math.max(1, h.send_ns_per_page),
    installPagesPerS: 1e9 / Math.max(1, h.install_ns_per_page),
    wireBytesPerPage: pageSize + PAGE_ENTRY_OVERHEAD,
  };
}
