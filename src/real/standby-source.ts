/**
 * The source agent's side of the standby copy (issue 16): carries out the
 * operations the engine's StandbyPlan pulls (`pollStandby`), one after
 * another, reading page contents straight from the guest's memfd (pread: a
 * never-touched page is a hole and reads as zeros without being allocated),
 * and reports each one durable. A failed write stops the copy (the window
 * then never closes; the report says so): the migration itself goes on.
 */
import { read } from "node:fs";
import type { StandbyConfig, StandbyOp } from "../engine/standby.js";
import { messageOf } from "./errors.js";
import { StandbyWriter } from "./standby-store.js";

/** 1 MiB per operation, four queued: the disk sees large writes, the engine's plan stays current. */
export const REAL_STANDBY: StandbyConfig = { batchPages: 256, maxInFlight: 4 };

function preadAsync(fd: number, length: number, position: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.alloc(length);
    read(fd, buf, 0, length, position, (err, n) => (err !== null ? reject(err) : resolve(n === length ? buf : buf.subarray(0, n))));
  });
}

export class SourceStandby {
  /** Called when an operation is durable (the driver feeds the engine). */
  onWritten: (seq: number) => void = () => undefined;
  failure: string | null = null;
  private readonly queue: StandbyOp[] = [];
  private busy = false;
  private stopped = false;

  constructor(
    readonly writer: StandbyWriter,
    private readonly memfd: number,
    private readonly pageSize: number,
    private readonly log: (line: string) => void,
  ) {}

  get hasRoom(): boolean {
    return this.failure === null && !this.stopped && this.queue.length < REAL_STANDBY.maxInFlight;
  }

  push(op: StandbyOp): void {
    this.queue.push(op);
    if (!this.busy) void this.pump();
  }

  /** No more writes; resolves once the one under way (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Runs queued operations, two page writes at a time (one hashes while the
   * other's I/O runs); the switchover mark runs alone, after every earlier
   * write and before any later one, so that "written" never runs ahead of it.
   */
  private async pump(): Promise<void> {
    this.busy = true;
    const running = new Set<Promise<void>>();
    try {
      while (!this.stopped) {
        const op = this.queue.shift();
        if (op === undefined) {
          if (running.size === 0) break;
          await Promise.race(running); // the engine may queue more as these finish
          continue;
        }
        if (op.kind === "mark") {
          await Promise.all(running);
          await this.writer.writeMark(op.seq, op.valid);
          this.onWritten(op.seq);
          continue;
        }
        const pages = op.pages;
        const seq = op.seq;
        const job: Promise<void> = this.writer.writePages(seq, pages, (first, count) => this.readPages(first, count)).then(() => {
          running.delete(job);
          if (!this.stopped) this.onWritten(seq);
        });
        running.add(job);
        if (running.size >= 2) await Promise.race(running);
      }
      await Promise.all(running);
    } catch (e) {
      this.failure = `the standby copy in ${this.writer.folder} failed: ${messageOf(e)}`;
      this.log(this.failure);
      await Promise.allSettled(running);
    } finally {
      this.busy = false;
    }
  }

  private async readPages(first: number, count: number): Promise<Buffer> {
    const want = count * this.pageSize;
    const b = await preadAsync(this.memfd, want, first * this.pageSize);
    if (b.length !== want) throw new Error(`reading guest pages ${first}..${first + count - 1}: got ${b.length} of ${want} bytes`);
    return b;
  }
}
