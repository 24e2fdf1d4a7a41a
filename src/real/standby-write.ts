/**
 * Writing the standby copy's files (format: standby-store.ts). Synchronous
 * on purpose: it runs on the source's copy thread (standby-worker.ts), whose
 * blocking calls then cost that thread alone — not the agent's event loop,
 * and not libuv's shared pool, which the agent's own file and DNS work uses.
 */
import { closeSync, fdatasyncSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { checksum, FLAG_WRITTEN, FLAG_ZERO, MARK_MAGIC, RECORD_BYTES, RUN_PAGES, runs, type StandbyLayout } from "./standby-store.js";

/** Reads pages [first, first + count) into `into` (count × page size bytes). */
export type PageSource = (first: number, count: number, into: Buffer) => void;

function writeAll(fd: number, b: Uint8Array, position: number): void {
  for (let done = 0; done < b.length; ) {
    const n = writeSync(fd, b, done, b.length - done, position + done);
    if (n <= 0) throw new Error(`short write at ${position + done}`);
    done += n;
  }
}

/** The guest's pages from its memfd: a never-touched page is a hole and reads as zeros without being allocated. */
export function memfdSource(memfd: number, pageSize: number): PageSource {
  return (first, count, into) => {
    const want = count * pageSize;
    let done = 0;
    while (done < want) {
      const n = readSync(memfd, into, done, want - done, first * pageSize + done);
      if (n === 0) throw new Error(`reading guest pages ${first}..${first + count - 1}: got ${done} of ${want} bytes`);
      done += n;
    }
  };
}

export class CopyFiles {
  bytesWritten = 0;
  /** One run's bytes (runs() caps a run at RUN_PAGES). */
  private readonly buf: Buffer;
  private readonly zero: Buffer;

  private constructor(
    readonly folder: string,
    private readonly layout: StandbyLayout,
    private readonly img: number,
    private readonly records: number,
    /** fdatasync each operation before it counts (it then survives the storage client host, not only the agent). */
    private readonly sync: boolean,
  ) {
    this.buf = Buffer.alloc(RUN_PAGES * layout.pageSize);
    this.zero = Buffer.alloc(layout.pageSize);
  }

  /** Opens the files createCopy made. */
  static open(folder: string, layout: StandbyLayout, sync: boolean): CopyFiles {
    const img = openSync(join(folder, "memory.img"), "r+");
    try {
      return new CopyFiles(folder, layout, img, openSync(join(folder, "records"), "r+"), sync);
    } catch (e) {
      closeSync(img);
      throw e;
    }
  }

  /** Writes `pages` with sequence number `seq`, their bytes from `read`: all data first, then all records. */
  writePages(seq: number, pages: ArrayLike<number>, read: PageSource): void {
    const ps = this.layout.pageSize;
    const recs: [number, Buffer][] = [];
    for (const [first, count] of runs(pages)) {
      if (first + count > this.layout.pageCount) throw new RangeError(`standby: page ${first + count - 1} is beyond the copy`);
      const data = this.buf.subarray(0, count * ps);
      read(first, count, data);
      const rec = Buffer.alloc(count * RECORD_BYTES);
      // One write per stretch of non-zero pages; a zero page is its record alone (its old data may stay: the checksum says zero).
      let stretch = -1;
      const flush = (end: number) => {
        if (stretch < 0) return;
        writeAll(this.img, data.subarray(stretch * ps, end * ps), (first + stretch) * ps);
        this.bytesWritten += (end - stretch) * ps;
        stretch = -1;
      };
      for (let i = 0; i < count; i++) {
        const page = data.subarray(i * ps, (i + 1) * ps);
        const isZero = page.equals(this.zero);
        rec.writeBigUInt64LE(checksum(first + i, seq, isZero ? null : page), i * RECORD_BYTES);
        rec.writeUInt32LE(seq, i * RECORD_BYTES + 8);
        rec[i * RECORD_BYTES + 12] = FLAG_WRITTEN | (isZero ? FLAG_ZERO : 0);
        if (isZero) flush(i);
        else if (stretch < 0) stretch = i;
      }
      flush(count);
      recs.push([first, rec]);
    }
    if (this.sync) fdatasyncSync(this.img);
    for (const [first, rec] of recs) writeAll(this.records, rec, first * RECORD_BYTES);
    this.bytesWritten += recs.reduce((a, [, r]) => a + r.length, 0);
    if (this.sync) fdatasyncSync(this.records);
  }

  /** The switchover mark: `valid` (bitmap bytes) are the pages current in the copy now; written by rename, whole or not at all. */
  writeMark(seq: number, valid: Uint8Array): void {
    const b = Buffer.alloc(12 + valid.length);
    b.writeUInt32LE(MARK_MAGIC, 0);
    b.writeUInt32LE(seq, 4);
    b.writeUInt32LE(this.layout.pageCount, 8);
    Buffer.from(valid.buffer, valid.byteOffset, valid.byteLength).copy(b, 12);
    const tmp = join(this.folder, "mark.tmp");
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeAll(fd, b, 0);
      if (this.sync) fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.folder, "mark"));
    this.bytesWritten += b.length;
  }

  close(): void {
    for (const fd of [this.img, this.records]) {
      try {
        closeSync(fd);
      } catch {
        // already closed: nothing to release
      }
    }
  }
}
