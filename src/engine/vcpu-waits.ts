/**
 * What each vCPU waited for missing pages, as the destination engine sees it:
 * per vCPU id the number of waits and their sum, and one distribution in
 * power-of-two microsecond buckets ([2^N, 2^(N+1)) µs, N = 0 … 23) — the
 * inputs of QEMU 10.1's postcopy-vcpu-latency and postcopy-latency-dist
 * (src/disruption/faults.ts). Ids are whatever the driver calls a vCPU: an
 * index in the simulator, a thread id in the real back end (mapped to an
 * index by the agent that knows its guest's threads). Plain arrays, so the
 * figures travel in the destination's JSON report.
 */
export const LATENCY_BUCKETS = 24;
/** Distinct vCPU ids tracked one by one; waits of any further id count in the distribution only. */
export const MAX_VCPU_IDS = 1024;

export interface VcpuWaitFigures {
  ids: number[];
  count: number[];
  sumUs: number[];
  dist: number[];
}

export function latencyBucket(us: number): number {
  return Math.min(LATENCY_BUCKETS - 1, Math.max(0, Math.floor(Math.log2(Math.max(1, us)))));
}

export function emptyVcpuWaits(): VcpuWaitFigures {
  return { ids: [], count: [], sumUs: [], dist: new Array<number>(LATENCY_BUCKETS).fill(0) };
}

/** Adds one wait of vCPU `id` (µs) to `w`; `index` caches id → position. */
export function addVcpuWait(w: VcpuWaitFigures, index: Map<number, number>, id: number, us: number): void {
  if (!(us >= 0)) return;
  w.dist[latencyBucket(us)]++;
  let i = index.get(id);
  if (i === undefined) {
    if (w.ids.length >= MAX_VCPU_IDS) return;
    i = w.ids.length;
    index.set(id, i);
    w.ids.push(id);
    w.count.push(0);
    w.sumUs.push(0);
  }
  w.count[i]++;
  w.sumUs[i] += us;
}
