/**
 * Demand-fault figures in QEMU 10.1's vocabulary (query-migrate's
 * postcopy-latency, postcopy-vcpu-latency, postcopy-latency-dist), so that
 * ppsim's numbers line up with what QEMU reports: every time a vCPU waits for
 * a missing page, how long it waited, per vCPU and in a distribution of
 * power-of-two microsecond buckets ([2^N, 2^(N+1)) µs, N = 0 … 23; below
 * 1 µs counts in bucket 0, 2^23 µs or more in the last).
 */
import { LATENCY_BUCKETS, latencyBucket, type VcpuWaitFigures } from "../engine/vcpu-waits.js";

export { LATENCY_BUCKETS, latencyBucket };

export interface FaultFigures {
  /** Mean wait of a vCPU on a missing page, µs (QEMU: postcopy-latency). */
  postcopy_latency_us: number;
  /** The same per vCPU, µs; 0 for a vCPU that never waited (QEMU: postcopy-vcpu-latency). */
  postcopy_vcpu_latency_us: number[];
  /** Waits per bucket: index N counts waits in [2^N, 2^(N+1)) µs (QEMU: postcopy-latency-dist). */
  postcopy_latency_dist: number[];
  /** vCPU waits on missing pages (a page two vCPUs wait for counts twice). */
  vcpu_faults: number;
  /** Per vCPU, total time waited, ms (QEMU: postcopy-vcpu-blocktime). */
  postcopy_vcpu_blocktime_ms: number[];
}

export class FaultLog {
  private readonly count: Float64Array;
  private readonly sumUs: Float64Array;
  private readonly dist = new Array<number>(LATENCY_BUCKETS).fill(0);

  constructor(readonly vcpus: number) {
    this.count = new Float64Array(vcpus);
    this.sumUs = new Float64Array(vcpus);
  }

  /** vCPU `v` waited `us` for a missing page. */
  add(v: number, us: number): void {
    if (!(v >= 0 && v < this.vcpus) || !(us >= 0)) return;
    this.count[v]++;
    this.sumUs[v] += us;
    this.dist[latencyBucket(us)]++;
  }

  figures(): FaultFigures {
    return faultFigures(Array.from(this.count), Array.from(this.sumUs), this.dist);
  }
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Figures from per-vCPU wait counts and sums (µs) and a distribution. */
export function faultFigures(count: readonly number[], sumUs: readonly number[], dist: readonly number[]): FaultFigures {
  const n = count.reduce((a, b) => a + b, 0);
  const total = sumUs.reduce((a, b) => a + b, 0);
  return {
    postcopy_latency_us: n > 0 ? r3(total / n) : 0,
    postcopy_vcpu_latency_us: count.map((c, v) => (c > 0 ? r3(sumUs[v] / c) : 0)),
    postcopy_latency_dist: [...dist],
    vcpu_faults: n,
    postcopy_vcpu_blocktime_ms: sumUs.map((s) => r3(s / 1000)),
  };
}

/**
 * The figures of a real run: the destination engine counted waits by thread
 * id (`waits`), the destination guest said which thread is which vCPU
 * (`tids`, from its peer: checked here). Null when the ids do not fit.
 */
export function vcpuFaultFigures(waits: VcpuWaitFigures, tids: unknown, vcpus: number): FaultFigures | null {
  // A thread id of 0: that vCPU had not run when asked; its waits, if any, stay unattributed.
  if (!Array.isArray(tids) || tids.length !== vcpus || !tids.every((t) => Number.isInteger(t) && t >= 0)) return null;
  const count = new Array<number>(vcpus).fill(0);
  const sumUs = new Array<number>(vcpus).fill(0);
  for (let i = 0; i < waits.ids.length; i++) {
    const v = waits.ids[i] > 0 ? tids.indexOf(waits.ids[i]) : -1;
    if (v < 0) continue; // not a vCPU thread (none should fault, but the count is the peer's)
    count[v] += waits.count[i];
    sumUs[v] += waits.sumUs[i];
  }
  return faultFigures(count, sumUs, waits.dist);
}
