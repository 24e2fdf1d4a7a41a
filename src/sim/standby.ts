/**
 * The standby copy in the simulator (issue 16): shared storage with a write
 * and a read bandwidth and a per-operation latency (transfers take turns on the
 * device; latencies overlap), operations completing in order, and the copy itself — each page's version as written,
 * the sequence number of its write, and the switchover mark. The source's
 * engine decides what to write (StandbyPlan); this model decides when it is
 * durable. A source death drops the writes not yet durable. The destination's
 * fill reads the missing pages back and keeps only those the copy holds
 * current: marked valid at switchover, or written after the mark.
 */
import { Bitmap } from "../engine/bitmap.js";
import type { StandbyOp } from "../engine/standby.js";

export interface StandbySimSpec {
  /** Storage write bandwidth, bytes/s. */
  writeBytesPerSec: number;
  /** Storage read bandwidth, bytes/s (default: the write bandwidth). */
  readBytesPerSec?: number;
  /** Latency added to every operation, µs (a network file system's round trip). */
  latencyUs: number;
}

export const DEFAULT_STANDBY_SIM: StandbySimSpec = { writeBytesPerSec: 500e6, latencyUs: 500 };

/** Bytes of a page's record (checksum and sequence), written beside its data. */
const RECORD_BYTES = 16;

interface Pending {
  seq: number;
  at: number;
  op: StandbyOp;
  /** Versions read when the operation was issued (0: zero page, written as a record only). */
  versions: Uint32Array;
}

export class SimStandby {
  private readonly version: Uint32Array;
  private readonly writtenSeq: Float64Array;
  private valid: Bitmap | null = null;
  private markSeq = -1;
  private busyUntil = 0;
  private readonly pending: Pending[] = [];
  private readonly readBw: number;
  bytesWritten = 0;

  constructor(
    readonly spec: StandbySimSpec,
    private readonly pageCount: number,
    private readonly pageSize: number,
    private readonly maxInFlight: number,
  ) {
    if (!(spec.writeBytesPerSec > 0) || !(spec.latencyUs >= 0)) throw new Error("standby storage: write bandwidth must be > 0 and latency ≥ 0");
    this.readBw = spec.readBytesPerSec ?? spec.writeBytesPerSec;
    if (!(this.readBw > 0)) throw new Error("standby storage: read bandwidth must be > 0");
    this.version = new Uint32Array(pageCount);
    this.writtenSeq = new Float64Array(pageCount).fill(-1);
  }

  get hasRoom(): boolean {
    return this.pending.length < this.maxInFlight;
  }

  /** Queues an operation (page contents read now); returns when it will be durable. */
  write(op: StandbyOp, now: number, read: (page: number) => number): number {
    const versions = op.kind === "pages" ? Uint32Array.from(op.pages, read) : new Uint32Array(0);
    let bytes = op.kind === "mark" ? op.valid.length : 0;
    for (const v of versions) bytes += RECORD_BYTES + (v === 0 ? 0 : this.pageSize);
    // The transfer holds the device; the latency (a round trip) overlaps the next operation's transfer.
    this.busyUntil = Math.max(now, this.busyUntil) + (bytes / this.spec.writeBytesPerSec) * 1e6;
    const at = this.busyUntil + this.spec.latencyUs;
    this.bytesWritten += bytes;
    this.pending.push({ seq: op.seq, at, op, versions });
    return at;
  }

  /** The operation due at `now` is durable: it enters the copy. Returns its seq (operations complete in order). */
  complete(now: number): number | null {
    const p = this.pending[0];
    if (p === undefined || p.at > now) return null;
    this.pending.shift();
    if (p.op.kind === "mark") {
      this.valid = Bitmap.fromBytes(p.op.valid, this.pageCount);
      this.markSeq = p.seq;
    } else {
      p.op.pages.forEach((page, i) => {
        this.version[page] = p.versions[i];
        this.writtenSeq[page] = p.seq;
      });
    }
    return p.seq;
  }

  /** The source died: what was not yet durable never will be. */
  sourceDied(): void {
    this.pending.length = 0;
  }

  /**
   * The destination reads `missing` back: returns when the read is done and
   * the pages the copy holds current (page, version).
   */
  read(missing: Uint32Array, now: number): { at: number; pages: { page: number; data: number | null }[] } {
    const pages: { page: number; data: number | null }[] = [];
    let bytes = 0;
    for (const p of missing) {
      bytes += RECORD_BYTES;
      if (!this.isCurrent(p)) continue;
      const v = this.version[p];
      if (v !== 0) bytes += this.pageSize;
      pages.push({ page: p, data: v === 0 ? null : v });
    }
    const at = now + this.spec.latencyUs + (bytes / this.readBw) * 1e6;
    return { at, pages };
  }

  private isCurrent(p: number): boolean {
    if (this.markSeq < 0) return false; // no switchover mark: nothing in the copy is known current
    return this.writtenSeq[p] > this.markSeq || (this.valid?.has(p) ?? false);
  }
}
