/**
 * The host's cores as a migration finds them (issue 10 part 4): with both
 * ends on one host (loopback, the netns link) the two agents' event loops,
 * the native data plane's sender and receiver threads and the guests' vCPU
 * threads share the same cores, and on a shared machine other work too.
 * What real post-copy spent that the per-page figures of host.ts did not
 * charge (docs/host-profile.md has the measurement): the page stream is
 * bound by the CPU it needs over the cores it gets, not by its slowest
 * stage alone; the destination's vCPUs, at nice 19, get a small share of
 * their warm-up speed while that stream runs; and a page request's round
 * trip waits behind it.
 *
 * The figures are optional keys of the host profile (a profile without
 * them charges what host.ts always did), measured by `ppsim calibrate`
 * (src/real/calibrate-cpu.ts, calibrate-bulk.ts):
 * - `cores_available`: CPU per wall second that busy nice-0 threads got;
 * - `bulk_cpu_ns_per_page`: the native stream's CPU per page, both threads
 *   and the kernel's loopback work;
 * - `stream_ns_per_page`, `stream_ns_per_zero_page`: the native stream's
 *   wall time per page with data and per hole (a zero page: a flag, no
 *   read), with the guest's vCPUs (nice-19 spinners) busy beside it — how
 *   fast pages move on this host as a migration finds it. Where given, they
 *   replace `bulk_cpu_ns_per_page` / `cores_available` as the stream's
 *   bound: the stream is not CPU-bound on a host whose threads wait for
 *   each other (each busy a fifth to a third of the time), so its CPU over
 *   the cores predicted it too fast; `stream_ns_per_page_running`,
 *   `stream_ns_per_zero_page_running`: the same once the destination's
 *   guest runs, its receiver installing through userfaultfd
 *   (UFFDIO_COPY / UFFDIO_ZEROPAGE into the registered mapping, ~4× a
 *   pwrite here) at the bulk threads' post-switchover nice;
 * - `engine_ns_per_page`: both engines' own work per page (the agents'
 *   event loops beside the data plane);
 * - `guest_share_streaming`: a nice-19 vCPU's speed while the stream runs
 *   over its speed when it does not (warm-up, where its rate is measured);
 * - `urgent_extra_us`: what a request/reply round trip between two
 *   processes takes longer while the stream runs;
 * - `loop_turn_pages`: the pages of background stream a destination agent's
 *   event loop books in one turn (the real agent's bulk slice, 32 messages
 *   per turn, × 16 pages a message: docs/real.md), which a page reply
 *   arriving at a random moment waits half of on average;
 * - `fault_wake_us`: how long a destination vCPU whose missing page was
 *   installed waits for a core before it runs again, while pages stream. A
 *   vCPU thread (nice 19) that slept in a fault is runnable again behind
 *   the migration's busy nice-0/10 threads; `guest_share_streaming`,
 *   measured on spinners that never sleep, does not see that wait. Real
 *   post-copy runs showed it: a vCPU stood still 10–40× as long as its
 *   fault took to be answered (docs/host-profile.md "faultcount").
 *
 * How the simulator charges them: a pages message holds its serialiser at
 * least its pages × (bulk CPU + engine) / cores available — or, with the
 * stream's wall keys, its data pages × `stream_ns_per_page` + its holes ×
 * `stream_ns_per_zero_page` + its pages × engine / cores; every vCPU fault
 * request's reply comes `urgent_extra_us` + half a loop turn later (half of
 * `loop_turn_pages` × the destination engine's half of `engine_ns_per_page`,
 * over the cores available; faults happen only while pages stream), and a
 * vCPU's fault reaches the engine half a loop turn later too (the fault
 * reader hands it to the same loop); the
 * guests run at `guest_share_streaming` of their speed while pages stream:
 * the source's from the migration's start until its pause (times the
 * engine's auto-converge throttle), the destination's from its resume; a
 * destination vCPU that stood still in a demand fault takes its next step
 * `fault_wake_us` after the install that ended it (its fault's latency and
 * blocktime still end at the install, as the real engine books them).
 */
import { PAGE_ENTRY_OVERHEAD } from "../engine/codec.js";
import { runsWallNs, type HostRuns, type InstallRuns } from "./host-runs.js";

export interface HostCpu {
  cores_available?: number;
  bulk_cpu_ns_per_page?: number;
  stream_ns_per_page?: number;
  stream_ns_per_zero_page?: number;
  stream_ns_per_page_running?: number;
  stream_ns_per_zero_page_running?: number;
  engine_ns_per_page?: number;
  guest_share_streaming?: number;
  urgent_extra_us?: number;
  loop_turn_pages?: number;
  fault_wake_us?: number;
}

export const CPU_KEYS = ["cores_available", "bulk_cpu_ns_per_page", "stream_ns_per_page", "stream_ns_per_zero_page", "stream_ns_per_page_running", "stream_ns_per_zero_page_running", "engine_ns_per_page", "guest_share_streaming", "urgent_extra_us", "loop_turn_pages", "fault_wake_us"] as const;

/** Checks the optional CPU keys (`o` is a parsed profile); the first wrong one's sentence, or null. */
export function cpuKeyError(o: Record<string, unknown>): string | null {
  for (const k of CPU_KEYS) {
    const x = o[k];
    if (x === undefined) continue;
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) return `"${k}" must be a number ≥ 0, got ${JSON.stringify(x)}`;
    if (k === "cores_available" && !(x >= 0.01 && x <= 4096)) return `"cores_available" must be in [0.01, 4096], got ${x}`;
    if (k === "guest_share_streaming" && !(x > 0 && x <= 1)) return `"guest_share_streaming" must be in (0, 1], got ${x}`;
    if (k !== "cores_available" && k !== "guest_share_streaming" && x > 1e9) return `"${k}" must be at most 1e9, got ${x}`;
  }
  return null;
}

/**
 * How long a pages message of `pages` pages, `zeroPages` of them holes,
 * holds the stream on this host's cores, µs (0 without the CPU keys): its
 * measured wall time where the profile has it (`running`: the destination's
 * guest runs, so the receiver installs through userfaultfd), else its CPU
 * over the cores. `runs`: the message's install calls (host-runs.ts), charged
 * per call where the profile has the run keys.
 */
export function streamCpuUs(h: HostCpu & HostRuns, pages: number, zeroPages = 0, running = false, runs?: InstallRuns): number {
  if (h.cores_available === undefined || pages === 0) return 0;
  const engineNs = pages * (h.engine_ns_per_page ?? 0);
  if (h.stream_ns_per_page !== undefined) {
    const zero = Math.min(pages, zeroPages);
    const pageNs = running ? (h.stream_ns_per_page_running ?? h.stream_ns_per_page) : h.stream_ns_per_page;
    const zeroNs = (running ? h.stream_ns_per_zero_page_running : undefined) ?? h.stream_ns_per_zero_page ?? pageNs;
    // With the run keys (host-runs.ts): per install call and per page, as the receiver splits the message.
    const byRuns = runs === undefined ? null : runsWallNs(h, runs, running, pageNs, zeroNs);
    const wallNs = byRuns ?? (pages - zero) * pageNs + zero * zeroNs;
    return (wallNs + engineNs / h.cores_available) / 1000;
  }
  return (pages * (h.bulk_cpu_ns_per_page ?? 0) + engineNs) / h.cores_available / 1000;
}

/** The throttle (share of time lost) of a guest while pages stream; 0 without the key. */
export function streamingThrottle(h: HostCpu): number {
  const s = h.guest_share_streaming;
  return s === undefined ? 0 : 1 - Math.max(1e-3, Math.min(1, s));
}

/**
 * The share of its time the page stream keeps the hosts' cores busy on a link
 * of `bandwidthBytesPerSec`: 1 where the stream is the bound — as when
 * calibrate measured `guest_share_streaming`, its stream as fast as the
 * cores allow — and less where the link holds the stream back (its threads
 * then wait for the link, and the guest gets those cycles: over the netns
 * 1 Gbit/s link real pre-copy guests kept 0.59–0.79 of their speed where
 * calibrate's share said 0.41–0.58, docs/netns-benchmark.md). 1 without the
 * stream's figures.
 */
export function streamDuty(h: HostCpu, bandwidthBytesPerSec: number): number {
  if (h.cores_available === undefined) return 1;
  const nsPerPage = h.stream_ns_per_page ?? (h.bulk_cpu_ns_per_page !== undefined ? h.bulk_cpu_ns_per_page / h.cores_available : undefined);
  if (nsPerPage === undefined || !(bandwidthBytesPerSec > 0)) return 1;
  // A 4 KiB page and its entry on the wire: the unit the stream's figures are per.
  const wireNsPerPage = ((4096 + PAGE_ENTRY_OVERHEAD) * 1e9) / bandwidthBytesPerSec;
  return Math.min(1, nsPerPage / wireNsPerPage);
}

/** A guest's throttle while pages stream (`duty`: streamDuty on the run's link) with the engine's own (auto-converge) `ratio` on top. */
export function withStreaming(h: HostCpu | null, ratio: number, duty = 1): number {
  const t = h === null ? 0 : streamingThrottle(h) * Math.max(0, Math.min(1, duty));
  // Exactly the engine's ratio without the key: a profile without it simulates bit for bit as before.
  return t === 0 ? ratio : 1 - (1 - ratio) * (1 - t);
}

/** What a destination vCPU woken from a demand fault waits for a core before its next step, µs (0 without the key). */
export function faultWakeUs(h: HostCpu | null): number {
  return h?.fault_wake_us ?? 0;
}

/** Half a busy destination loop's turn, µs: what a fault or a reply arriving at a random moment waits for (0 without the CPU keys). */
export function loopWaitUs(h: HostCpu): number {
  if (h.cores_available === undefined) return 0;
  return ((h.loop_turn_pages ?? 0) * (h.engine_ns_per_page ?? 0)) / 2 / h.cores_available / 1000 / 2;
}

/** What a page request's reply waits for beyond the link and the hosts' per-message work, µs (0 without the CPU keys). */
export function requestWaitUs(h: HostCpu): number {
  return h.cores_available === undefined ? 0 : (h.urgent_extra_us ?? 0) + loopWaitUs(h);
}
