/**
 * The native data plane's JS side (issue 9, docs/real.md "Data plane"): page
 * bytes of the bulk channel never enter JavaScript. At the source the engine
 * still chooses every page; its payload is DEFERRED (the page holds data: a
 * native thread reads it from the memfd when it writes the frame) or null (a
 * hole: the zero flag). At the destination a native thread installs bulk
 * pages and tells the engine which ones it installed (`NativeBulkConn`).
 *
 * Only for plain TCP: with TLS the bytes must pass through Node's TLS, so
 * the JS path (FramedSocket) stays. PPSIM_DATAPLANE=js turns the native path
 * off (A/B measurements).
 */
import type { Socket } from "node:net";
import type { PagesMsg } from "../engine/messages.js";
import { HEADER_BYTES, PAGE_ENTRY_OVERHEAD } from "../engine/codec.js";

/** The payload of a page the source holds data for, read natively when its frame is written. */
export const DEFERRED: Uint8Array = new Uint8Array(0);

/**
 * The nice value of the data plane's bulk threads (sender and receiver),
 * above the agents' event loops (nice 0), which answer faults: on a host
 * with fewer cores than busy threads a demand fault's reply must not wait
 * for a bulk thread's time slice. Measured A/B (1 GiB post-copy, 2
 * connections, 4 runs each, interleaved): fault p50 258–472 µs against
 * 486–1545 µs at nice 0, p99 7–27 ms against 29–218 ms, background the
 * same within the spread (docs/real-benchmarks.md "Fault latency").
 * PPSIM_BULK_NICE=N (0–19) overrides it (A/B measurements).
 */
export const BULK_THREAD_NICE = 10;

/** A nice value (0–19) from the environment variable `name`, or `dflt` when it is unset or not one. */
export function niceFromEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 19 ? n : dflt;
}

export function bulkThreadNice(): number {
  return niceFromEnv("PPSIM_BULK_NICE", BULK_THREAD_NICE);
}

/**
 * The nice value of the bulk threads until the switchover has passed them:
 * the event loops' own (0 = left as the process is). Up to the switchover
 * nothing on the bulk connection competes with a demand fault (the
 * destination guest has not run), and what it carries is the downtime's
 * critical path — pre-copy's last dirty pages, then the switchover frame,
 * which at nice 10 waited for a time slice behind every other runnable
 * thread on a busy host (the varying "delivery" part of the downtime,
 * docs/real-benchmarks.md). The source's sender lowers itself to
 * BULK_THREAD_NICE right after writing the switchover frame, the
 * destination's receiver once the guest may run; connections opened after
 * the switchover (the extra ones, every reconnection) start at
 * BULK_THREAD_NICE. Going back up would need privilege, which is why the
 * order is this one. PPSIM_SWITCHOVER_NICE=N (0–19) overrides it (A/B).
 */
export function switchoverThreadNice(): number {
  return niceFromEnv("PPSIM_SWITCHOVER_NICE", 0);
}

/**
 * How the destination's native path installs pages once they are received
 * (docs/native.md "Install modes"): "copy" — UFFDIO_COPY from a staging
 * buffer (pwrite before the guest runs); "continue" — written into the
 * memfd's page cache and mapped with UFFDIO_CONTINUE (one copy fewer; the
 * guest runs registered MISSING|MINOR; every installing path claims a page
 * first). Only where the bulk channel is the native receiver's (plain TCP,
 * base pages): TLS and huge pages stay on "copy".
 */
export type InstallMode = "copy" | "continue";

export const DEFAULT_INSTALL_MODE: InstallMode = "copy";

/** PPSIM_INSTALL=copy|continue (benchmarks, A/B), else the default; another value is refused. */
export function installModeFromEnv(): InstallMode {
  const v = process.env.PPSIM_INSTALL;
  if (v === undefined || v === "") return DEFAULT_INSTALL_MODE;
  if (v === "copy" || v === "continue") return v;
  throw new Error(`PPSIM_INSTALL must be copy or continue, not ${JSON.stringify(v)}`);
}

/**
 * How the source's bulk sender moves a pages frame's data from the guest's
 * memfd to the socket (native/src/bulk_send_ways.h, docs/native.md "Send
 * ways"): "preadv" (into the frame's buffer, then send: two copies),
 * "writev" (sendmsg from a read-only mapping of the memfd: one copy),
 * "sendfile" (per page, the frame corked: no copy at the source), "splice"
 * (the pieces through a pipe: no copy). Huge pages always go by preadv.
 */
export type SendWay = "preadv" | "writev" | "sendfile" | "splice";

export const SEND_WAYS: readonly SendWay[] = ["preadv", "writev", "sendfile", "splice"];

/**
 * preadv: sendfile and splice cost 2–3× the CPU per GiB (two calls and two skb fragments per page:
 * the codec's entries sit between the pages), and writev, one copy fewer, was level with it within
 * the spread, with the worst downtimes (docs/native.md "Send ways").
 */
export const DEFAULT_SEND_WAY: SendWay = "preadv";

/**
 * While pre-copy rounds run, writev: the stop-and-copy sends the scattered dirty pages, runs of one
 * page, and by preadv (a call per run, then a copy of the whole buffer into the socket) they cost
 * the two agents 1.9–2.5 µs a page on this 2-core machine against 1.7 by writev from the mapping
 * the rounds kept mapped; its first round is 0–10 % slower (docs/real-benchmarks.md, "Pre-copy's
 * downtime and its limit"). Post-copy's background runs are long and its source memory is punched
 * as it leaves (each punch also unmaps the mapping's pages): preadv.
 */
export const ROUNDS_SEND_WAY: SendWay = "writev";

/** PPSIM_SEND_WAY=preadv|writev|sendfile|splice (benchmarks, A/B), else the default; another value is refused. */
export function sendWayFromEnv(fallback: SendWay = DEFAULT_SEND_WAY): SendWay {
  const v = process.env.PPSIM_SEND_WAY;
  if (v === undefined || v === "") return fallback;
  if ((SEND_WAYS as readonly string[]).includes(v)) return v as SendWay;
  throw new Error(`PPSIM_SEND_WAY must be one of ${SEND_WAYS.join(", ")}, not ${JSON.stringify(v)}`);
}

/**
 * A bulk connection's way, for its whole life: PPSIM_SEND_WAY when set, else ROUNDS_SEND_WAY for one
 * opened while pre-copy rounds may run (hybrid's first connection keeps it into post-copy: each release
 * punch then also unmaps the page from the sender's mapping), else the default.
 */
export function sendWayFor(rounds: boolean): SendWay {
  return sendWayFromEnv(rounds ? ROUNDS_SEND_WAY : DEFAULT_SEND_WAY);
}

/** Whether the native path may be used (it is, unless PPSIM_DATAPLANE=js). */
export function nativeDataPlaneWanted(): boolean {
  return process.env.PPSIM_DATAPLANE !== "js";
}

interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

/** The fd of a plain TCP socket's handle, or -1 (a TLS socket, or one without a handle). */
export function plainSocketFd(socket: Socket): number {
  if ("encrypted" in socket) return -1;
  const h = (socket as unknown as { _handle?: StreamHandle })._handle;
  return typeof h?.fd === "number" && h.fd >= 0 ? h.fd : -1;
}

/**
 * Stops Node reading a socket so that a native thread can (Node would
 * otherwise take bytes off it concurrently). False if Node already holds
 * bytes it has not delivered (then the caller keeps the JS path).
 *
 * net.Socket restarts reading from its `_read` whenever its handle is not
 * marked `reading` (Readable's read-ahead calls it even while paused), so the
 * handle stays marked: `resumeNodeReading` undoes both.
 */
export function stopNodeReading(socket: Socket): boolean {
  if (socket.readableLength > 0) return false;
  const h = (socket as unknown as { _handle?: StreamHandle })._handle;
  if (h?.readStop === undefined) return false;
  socket.pause();
  if (h.readStop() !== 0) return false;
  h.reading = true;
  return true;
}

/** Lets Node read the socket again (to see the peer's FIN while closing). */
export function resumeNodeReading(socket: Socket): void {
  const h = (socket as unknown as { _handle?: StreamHandle })._handle;
  if (h !== undefined && h !== null) h.reading = false;
  socket.resume();
}

/**
 * A pages message for pages the native receiver installed: their bytes are
 * in guest memory already (the installPages effect skips them; the engine
 * books them). `frames` > 1: the receiver merged the notices of that many
 * consecutive pages frames into this one (bulk_receiver.cc Post); the
 * message then carries the frames' wire bytes, which its own encoded size
 * (one header) would undercount. `pageSize` is needed only then.
 */
export function installedPages(pages: Uint32Array, zero: Uint8Array, frames = 1, pageSize = 0): PagesMsg<Uint8Array> {
  const data = new Array<Uint8Array | null>(pages.length);
  let full = 0;
  for (let i = 0; i < pages.length; i++) {
    if (zero[i] === 1) data[i] = null;
    else {
      data[i] = DEFERRED;
      full++;
    }
  }
  const msg: PagesMsg<Uint8Array> = { type: "pages", pages, data, preinstalled: true };
  if (frames > 1) msg.wireBytes = frames * (HEADER_BYTES + 4) + pages.length * PAGE_ENTRY_OVERHEAD + full * pageSize;
  return msg;
}

/** PPSIM_DATAPLANE_STATS=1: the agents log where the data plane threads' time went. */
export function dataPlaneStatsWanted(): boolean {
  return process.env.PPSIM_DATAPLANE_STATS === "1";
}

export function formatNs(ns: number): string {
  return `${(ns / 1e6).toFixed(0)} ms`;
}
