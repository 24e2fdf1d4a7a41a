/**
 * What a demand fault costs over the fault lane (issue 9, docs/real.md "The
 * fault lane"), for the host profile's `fault_lane_us`: a thread's fault on
 * a registered memfd mapping, requested by the fault reader thread on the
 * lane, answered by a source lane thread from its memfd and installed by the
 * destination lane thread — the two native ends joined by a socketpair, so
 * the figure is the hosts' part of a fault without the link's (the
 * simulator adds the link). Measured like `faultRoundTrip`: from the touch
 * on a pool thread to its completion in JavaScript, so the two figures
 * carry the same hand-off.
 */
import {
  closeFd,
  constants,
  createFaultLane,
  createLaneServer,
  mapShared,
  memfdCreate,
  pwrite,
  socketPair,
  startFaultReader,
  uffdApi,
  uffdCreate,
  uffdRegister,
} from "./native.js";
import { percentiles } from "../engine/metrics.js";

/**
 * p50 and p99 µs of `faults` faults (each on a page of its own) served over a lane between two in-process ends,
 * from the touch to its completion in JavaScript; `native_p50_us`: from the lane's own stamps, the fault's read
 * from the uffd to its reply's install (what the real destination books as a lane fault's latency), without the
 * touch's hand-offs to and from a pool thread (null: no notice paired).
 */
export async function laneRoundTrip(faults: number): Promise<{ p50_us: number; p99_us: number; native_p50_us: number | null }> {
  if (!Number.isSafeInteger(faults) || faults < 1 || faults > 1 << 20) throw new RangeError(`faults must be in 1..${1 << 20}, got ${faults}`);
  const C = constants();
  const PS = C.PAGE_SIZE;
  const bytes = faults * PS;
  const done: (() => void)[] = [];
  try {
    const [a, b] = socketPair();
    done.push(() => closeFd(a), () => closeFd(b));
    const src = memfdCreate("ppsim-calibrate-lane-src", bytes);
    done.push(() => closeFd(src));
    // Data pages (not holes): a reply carries a page's bytes, as a fault of a written page does.
    const page = Buffer.alloc(PS, 7);
    for (let p = 0; p < faults; p++) pwrite(src, p * PS, page);
    const server = createLaneServer(b, src, PS, faults, 5000, () => undefined);
    done.push(() => void server.stop());
    server.start(new Uint8Array(0));
    server.arm();
    const fd = memfdCreate("ppsim-calibrate-lane-dst", bytes);
    done.push(() => closeFd(fd));
    const map = mapShared(fd, bytes);
    done.push(() => map.unmap());
    const uffd = uffdCreate();
    done.push(() => closeFd(uffd));
    uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_SHMEM);
    uffdRegister(uffd, map.address, bytes, C.UFFDIO_REGISTER_MODE_MISSING);
    // The lane's own stamps (CLOCK_MONOTONIC µs): each fault's read from the uffd and its reply's install.
    const readAt = new Map<number, number>();
    const native: number[] = [];
    const lane = createFaultLane(a, 5000, (ns) => {
      for (const n of ns) {
        if (n.kind === "faults") for (const p of n.pages) if (!readAt.has(p)) readAt.set(p, n.atUs);
        if (n.kind === "installed")
          for (const p of n.pages) {
            const r = readAt.get(p);
            if (r !== undefined) native.push(n.atUs - r);
          }
      }
    });
    done.push(() => void lane.stop());
    lane.setTarget(fd, uffd, map.address, PS, faults);
    // Faults the lane did not take would come here: none while it is armed.
    const reader = startFaultReader(uffd, () => undefined);
    done.push(() => reader.stop());
    reader.setLane(lane);
    done.push(() => reader.setLane(null));
    lane.start(new Uint8Array(0));
    lane.arm();
    const us: number[] = [];
    for (let p = 0; p < faults; p++) {
      const t = performance.now();
      await map.touchAsync(p * PS);
      us.push((performance.now() - t) * 1000);
    }
    // Every fault went the lane's way: otherwise the figure is not the lane's.
    if (lane.stats().requests < faults) throw new Error(`the lane requested ${lane.stats().requests} of ${faults} faults`);
    const q = percentiles(us);
    // Notices come in batches on the loop: let the last ones in.
    for (let i = 0; i < 20 && native.length < faults; i++) await new Promise((r) => setTimeout(r, 5));
    const n = native.length === 0 ? null : percentiles(native);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    return { p50_us: r1(q.p50), p99_us: r1(q.p99), native_p50_us: n === null ? null : r1(n.p50) };
  } finally {
    while (done.length > 0) done.pop()?.();
  }
}
