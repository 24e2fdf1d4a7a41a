/**
 * `ppsim calibrate`'s measurements of the native data plane (issue 9): the
 * real back end moves its background pages through a sender thread and a
 * receiver thread (native/src/bulk_*.cc), not through the JS path that the
 * per-page figures of calibrate.ts time. Everything here goes through the
 * addon's public functions (src/real/native.ts), as the agents call them.
 *
 * - the bulk stream: a sender thread filling frames of the engine's default
 *   batch (256 pages at 4 KiB, framePages) from a memfd,
 *   loopback TCP with the agents' socket sizes, a receiver thread installing
 *   them into another memfd. Its wall time per page is what one stream moves
 *   with both ends on this host; its CPU time per page (this process's user
 *   + system time, both threads and the kernel's loopback work on their
 *   behalf) is what the stream takes away from anything else on the host's
 *   cores (the guest's vCPUs);
 * - a demand fault's round trip while that stream runs: the fault reader and
 *   the event loop share the cores (and the loop the stream's notices) with
 *   it, which an idle round trip does not see.
 */
import { createServer, connect, type Socket } from "node:net";
import { maxPayloadBytes } from "../engine/frame-decoder.js";
import { batchPagesFor, DEFAULT_OPTIONS } from "../engine/options.js";
import { percentiles } from "../engine/metrics.js";
import { bulkThreadNice, plainSocketFd, stopNodeReading } from "./dataplane.js";
import { zeroHolesWanted } from "./dest-memory.js";
import { closeFd, constants, createBulkReceiver, createPageTable, createZeroHoleTable, mapShared, memfdCreate, pwrite, setSendBuffer, startBulkSender, startFaultReader, uffdApi, uffdCopy, uffdCreate, uffdRegister, type Mapping, type PageTableHandle } from "./native.js";
import { NATIVE_QUEUE_BYTES } from "./source-link.js";
import { BULK_KERNEL_QUEUE_BYTES } from "./transport.js";

/** The longest run below a whole frame that the run streams use (calibrate-runs.ts RUN_LENGTHS). */
const RUN = 16;

/**
 * Pages per frame in the calibration's streams: the engine's default batch at
 * the host's page size, as the agents send them (their per-frame work, the
 * receiver's notices and the socket's, spread over as many pages).
 */
export function framePages(): number {
  return batchPagesFor(DEFAULT_OPTIONS, constants().PAGE_SIZE);
}

export interface BulkFigures {
  /** Wall time per page of one native stream, ns. */
  wallNsPerPage: number;
  /** CPU time per page of both threads (user + system), ns. */
  cpuNsPerPage: number;
  /** Fault round trip p50 while the stream ran, µs (null: no fault finished inside it). */
  busyFaultUs: number | null;
}

/** Two connected loopback TCP sockets (and a close for both and their server). */
export async function loopbackPair(): Promise<{ client: Socket; peer: Socket; close: () => void }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once("connection", r));
  const client = connect({ host: "127.0.0.1", port });
  await new Promise((r) => client.once("connect", r));
  const peer = await accepted;
  return { client, peer, close: () => (client.destroy(), peer.destroy(), server.close()) };
}

/**
 * The calibrations' stand-in for guest memory: a memfd of `pages` pages,
 * mapped here and registered MISSING with a userfaultfd (`features` ORed
 * into the API's shmem one). `close` unmaps and closes both descriptors.
 */
export function registeredMapping(name: string, pages: number, features = 0): { map: Mapping; uffd: number; close: () => void } {
  const C = constants();
  const bytes = pages * C.PAGE_SIZE;
  const fd = memfdCreate(name, bytes);
  const map = mapShared(fd, bytes);
  const uffd = uffdCreate();
  uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM | features);
  uffdRegister(uffd, map.address, bytes, C.UFFDIO_REGISTER_MODE_MISSING);
  return {
    map,
    uffd,
    close: () => {
      map.unmap();
      closeFd(uffd);
      closeFd(fd);
    },
  };
}

/**
 * Demand faults one after another, `maxFaults` of them or until `stop()`:
 * each a thread touching a missing page, JS answering with UFFDIO_COPY.
 * `finished` resolves when the last one is answered; `stop` returns each
 * fault's round trip, µs. `installUs[i]`: how long the i-th fault's own
 * UFFDIO_COPY took, µs (NaN until it is answered) — timed inside its round
 * trip, so that a round trip minus its install is never below 0, however
 * the host's load moves between faults.
 */
export function faultLoop(maxFaults: number, name = "ppsim-calibrate-busy-fault"): { finished: Promise<void>; stop: () => Promise<number[]>; installUs: Float64Array } {
  const PS = constants().PAGE_SIZE;
  const { map, uffd, close } = registeredMapping(name, maxFaults);
  const page = Buffer.alloc(PS, 7);
  const installUs = new Float64Array(maxFaults).fill(NaN);
  const reader = startFaultReader(uffd, (evs) => {
    for (const e of evs) {
      const at = e.address & ~BigInt(PS - 1);
      const t = performance.now();
      uffdCopy(uffd, at, page);
      // Fault i touches page i (the loop below); the reader reports only addresses inside this mapping.
      installUs[Number((at - map.address) / BigInt(PS))] = (performance.now() - t) * 1000;
    }
  });
  const us: number[] = [];
  let stopping = false;
  const loop = (async () => {
    for (let i = 0; i < maxFaults && !stopping; i++) {
      const t = performance.now();
      await map.touchAsync(i * PS);
      us.push((performance.now() - t) * 1000);
    }
  })();
  loop.catch(() => undefined); // handled: stop() rethrows it after cleaning up
  return {
    finished: loop,
    installUs,
    stop: async () => {
      stopping = true;
      try {
        await loop;
      } finally {
        reader.stop();
        close();
      }
      return us;
    },
  };
}

/** How a calibration stream runs: its pages holes or data, its receiver installing as before or after the guest runs. */
export interface StreamShape {
  /** Every page a hole (a zero page: the frame carries a flag, the sender reads nothing); else every page data. */
  holes?: boolean;
  /**
   * The destination's guest runs: the receiver installs with UFFDIO_COPY / UFFDIO_ZEROPAGE into a
   * registered mapping (post-copy), not with pwrite into the memfd (before the switchover); both
   * threads at the data plane's post-switchover nice (dataplane.ts), as the agents lower them.
   */
  running?: boolean;
  /**
   * The frames' entries in runs of this many consecutive pages (1, 2, 4, 8, 16 or a whole frame), one
   * page left out between runs, so that the receiver makes one install call per run
   * (native/src/page_install.cc); default: a whole frame, every frame one run.
   */
  runPages?: number;
  /**
   * The destination's memory populated ahead (dest-prealloc.ts): the memfd allocated and mapped
   * before the stream, the receiver in install mode "continue" over it (stores through the alias,
   * UFFDIO_CONTINUE into a mapping registered MISSING|MINOR; zero pages mapped unwritten).
   */
  populated?: boolean;
}

/** The page the i-th entry of a stream in runs of `run` pages names: runs of `run`, a one-page gap after each (none for runs of a whole `frame`). */
export function runPage(i: number, run: number, frame: number): number {
  return run >= frame ? i : Math.floor(i / run) * (run + 1) + (i % run);
}

/** One native stream of `pages` pages over loopback, with demand faults beside it when `faults`. */
export async function bulkStream(pages: number, faults: boolean, shape: StreamShape = {}): Promise<BulkFigures> {
  const C = constants();
  const PS = C.PAGE_SIZE;
  const holes = shape.holes === true;
  const running = shape.running === true;
  const populated = shape.populated === true;
  const frame = framePages();
  const run = shape.runPages ?? frame;
  if (![1, 2, 4, 8, RUN, frame].includes(run) || frame % run !== 0 || pages % frame !== 0) {
    throw new RangeError(`calibrate: runs of 1, 2, 4, 8, ${RUN} or ${frame} pages, whole frames of ${frame} (got runs of ${run}, ${pages} pages)`);
  }
  // The memory the entries span: with gaps between runs, more pages than are sent.
  const span = runPage(pages - 1, run, frame) + 1;
  const bytes = span * PS;
  const nice = running ? bulkThreadNice() : 0;
  const src = memfdCreate("ppsim-calibrate-bulk-src", bytes);
  const dst = memfdCreate("ppsim-calibrate-bulk-dst", bytes);
  // Running: the destination's mapping of its memfd, registered for missing faults as the guest's is
  // (populated: MISSING|MINOR, before the switchover too: CONTINUE maps into it then as well).
  const map = running || populated ? mapShared(dst, bytes) : null;
  const uffd = map !== null ? uffdCreate() : -1;
  const alias = populated ? mapShared(dst, bytes) : null;
  let table: PageTableHandle | null = null;
  const chunk = Buffer.alloc(RUN * PS);
  if (!holes) for (let o = 0; o < bytes; o += chunk.length) pwrite(src, o, chunk.fill((o / chunk.length) % 251 | 1).subarray(0, Math.min(chunk.length, bytes - o)));
  const { client, peer, close } = await loopbackPair();
  try {
    if (map !== null) {
      uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM | (populated ? C.UFFD_FEATURE_MINOR_SHMEM : 0));
      uffdRegister(uffd, map.address, bytes, C.UFFDIO_REGISTER_MODE_MISSING | (populated ? C.UFFDIO_REGISTER_MODE_MINOR : 0));
    }
    if (alias !== null && map !== null) {
      await alias.populateAsync(); // ahead of the stream, as the destination does before it listens
      table = createPageTable(dst, uffd, map.address, PS, span, alias);
    }
    setSendBuffer(plainSocketFd(client), BULK_KERNEL_QUEUE_BYTES / 2);
    // Nagle's wait for an ACK the receiver delays held a stream's last partial segment ~40 ms,
    // a tenth of a short stream's wall time and not the same each run (per page: ~120 ns or ~2.7 µs
    // for holes). The agents' bulk streams end in a flush too, but once per migration, not per figure.
    client.setNoDelay(true);
    if (!stopNodeReading(peer)) throw new Error("calibrate: Node already read from the receiving socket");
    const limits = new Uint32Array(12);
    for (let t = 1; t < 12; t++) limits[t] = maxPayloadBytes(t, { pageSize: PS, pageCount: span });
    let done: () => void = () => undefined;
    const finished = new Promise<void>((r) => (done = r));
    let received = 0;
    const receiver = createBulkReceiver(
      plainSocketFd(peer),
      limits,
      30_000,
      (ns) => {
        for (const n of ns) if (n.kind === "pages" && (received += n.pages.length) >= pages) done();
      },
      nice,
    );
    // Before "running" the receiver pwrites into the memfd, as the destination does until its guest runs.
    // Zero pages as the destination takes them: left holes (dest-memory.ts) unless PPSIM_ZERO_HOLES=0.
    const zeroHoles = zeroHolesWanted() && table === null ? createZeroHoleTable(span) : null;
    if (map === null) receiver.setTarget(dst, dst, 0n, PS, span, null, zeroHoles);
    else {
      receiver.setTarget(dst, uffd, map.address, PS, span, table, zeroHoles);
      if (running) receiver.setRunning();
    }
    receiver.start(new Uint8Array(0));
    let room: () => void = () => undefined;
    const sender = startBulkSender(
      plainSocketFd(client),
      src,
      PS,
      span,
      NATIVE_QUEUE_BYTES / 2,
      (e) => {
        if (e.kind === "room") room();
      },
      nice,
    );
    const zero = new Uint8Array(frame).fill(holes ? 1 : 0);
    const fl = faults ? faultLoop(4096) : null;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let p = 0; p < pages; p += frame) {
      while (sender.queued >= NATIVE_QUEUE_BYTES) await new Promise<void>((r) => (room = r));
      sender.pages(Uint32Array.from({ length: frame }, (_, i) => runPage(p + i, run, frame)), zero);
    }
    await finished;
    const wallNs = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(cpu0);
    const us = fl === null ? [] : await fl.stop();
    sender.stop();
    receiver.stop();
    // The fault loop's own CPU is in `cpu` too: a few µs per fault, small beside the stream's.
    return {
      wallNsPerPage: wallNs / pages,
      cpuNsPerPage: ((cpu.user + cpu.system) * 1000) / pages,
      busyFaultUs: us.length === 0 ? null : Math.round(percentiles(us).p50),
    };
  } finally {
    close();
    table?.close();
    alias?.unmap(); // unmapped already once the table took it
    map?.unmap();
    if (uffd >= 0) closeFd(uffd);
    closeFd(src);
    closeFd(dst);
  }
}
