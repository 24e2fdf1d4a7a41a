/**
 * The standby copy on disk (issue 16): one folder per migration,
 * DIR/<session id>/, on storage both hosts reach.
 *
 *   layout.json   {"ppsim_standby":1,"page_size":…,"page_count":…}
 *   memory.img    page p at offset p × page_size (sparse: rewrites never grow it)
 *   records       16 bytes per page at offset p × 16: u64 checksum, u32 seq,
 *                 u8 flags (1 written, 2 zero page), 3 reserved
 *   mark          written at switchover, by rename: u32 magic, u32 seq,
 *                 u32 page_count, then the bitmap of pages current at switchover
 *
 * The checksum is the first 8 bytes of SHA-1 over (page, seq, data): a
 * record that does not match the data at its offset — a torn write, a stale
 * block, a block of another page — fails. A page is current when its record
 * is intact and either its seq is past the mark's (written after the source
 * guest paused for good) or the mark lists it. The source writes a page's
 * data before its record; `sync` makes each operation durable (fdatasync)
 * before it counts, so that it survives the storage client host, not only
 * the agent.
 */
import { hash } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { Bitmap } from "../engine/bitmap.js";
import type { PageBatch } from "../engine/messages.js";

export const RECORD_BYTES = 16;
const MARK_MAGIC = 0x4b4d5350; // "PSMK"
const FLAG_WRITTEN = 1;
const FLAG_ZERO = 2;
/** Largest run read or written in one call. */
const RUN_PAGES = 256;

export interface StandbyLayout {
  pageSize: number;
  pageCount: number;
}

/** The folder of one migration's copy; the session id is 32 hex digits (it names the folder). */
export function copyFolder(dir: string, session: string): string {
  if (!/^[0-9a-f]{32}$/.test(session)) throw new Error(`standby: bad session id "${session}"`);
  return join(dir, session);
}

function checksum(page: number, seq: number, data: Uint8Array | null): bigint {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(page, 0);
  head.writeUInt32LE(seq, 4);
  const digest = hash("sha1", data === null ? head : Buffer.concat([head, data]), "buffer");
  return digest.readBigUInt64LE(0);
}

/** Consecutive runs of sorted-or-not page numbers, each at most RUN_PAGES long: [first, count]. */
function runs(pages: ArrayLike<number>): [number, number][] {
  const sorted = Array.from(pages).sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === p && last[1] < RUN_PAGES) last[1]++;
    else out.push([p, 1]);
  }
  return out;
}

async function readExactly(fh: fs.FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break; // past the end: the rest stays zero (a short file fails its checksums)
    done += bytesRead;
  }
  return buf;
}

export class StandbyWriter {
  bytesWritten = 0;

  private constructor(
    readonly folder: string,
    private readonly layout: StandbyLayout,
    private readonly img: fs.FileHandle,
    private readonly records: fs.FileHandle,
    private readonly sync: boolean,
  ) {}

  /** Creates the folder and its files (sparse, at their full size). */
  static async create(dir: string, session: string, layout: StandbyLayout, sync: boolean): Promise<StandbyWriter> {
    const folder = copyFolder(dir, session);
    await fs.mkdir(folder, { recursive: false, mode: 0o700 });
    await fs.writeFile(join(folder, "layout.json"), JSON.stringify({ ppsim_standby: 1, page_size: layout.pageSize, page_count: layout.pageCount }));
    const img = await fs.open(join(folder, "memory.img"), "w+", 0o600);
    const records = await fs.open(join(folder, "records"), "w+", 0o600);
    await img.truncate(layout.pageSize * layout.pageCount);
    await records.truncate(RECORD_BYTES * layout.pageCount);
    return new StandbyWriter(folder, layout, img, records, sync);
  }

  /**
   * Writes pages with sequence number `seq`; `read(first, count)` returns
   * their current bytes (count × page size). Data first, then records.
   */
  async writePages(seq: number, pages: Uint32Array, read: (first: number, count: number) => Promise<Buffer>): Promise<void> {
    const ps = this.layout.pageSize;
    const zero = Buffer.alloc(ps);
    const recs: [number, Buffer][] = [];
    await Promise.all(
      runs(pages).map(async ([first, count]) => {
        const data = await read(first, count);
        const rec = Buffer.alloc(count * RECORD_BYTES);
        const writes: Promise<unknown>[] = [];
        // One write per stretch of non-zero pages; a zero page is its record alone (its old data may stay: the checksum says zero).
        let stretch = -1;
        const flush = (end: number) => {
          if (stretch < 0) return;
          writes.push(this.img.write(data, stretch * ps, (end - stretch) * ps, (first + stretch) * ps));
          this.bytesWritten += (end - stretch) * ps;
          stretch = -1;
        };
        for (let i = 0; i < count; i++) {
          const page = data.subarray(i * ps, (i + 1) * ps);
          const isZero = page.equals(zero);
          rec.writeBigUInt64LE(checksum(first + i, seq, isZero ? null : page), i * RECORD_BYTES);
          rec.writeUInt32LE(seq, i * RECORD_BYTES + 8);
          rec[i * RECORD_BYTES + 12] = FLAG_WRITTEN | (isZero ? FLAG_ZERO : 0);
          if (isZero) flush(i);
          else if (stretch < 0) stretch = i;
        }
        flush(count);
        await Promise.all(writes);
        recs.push([first, rec]);
      }),
    );
    if (this.sync) await this.img.datasync();
    await Promise.all(recs.map(([first, rec]) => this.records.write(rec, 0, rec.length, first * RECORD_BYTES)));
    this.bytesWritten += recs.reduce((a, [, r]) => a + r.length, 0);
    if (this.sync) await this.records.datasync();
  }

  /** The switchover mark: `valid` (bitmap bytes) are the pages current in the copy now; written by rename, whole or not at all. */
  async writeMark(seq: number, valid: Uint8Array): Promise<void> {
    const b = Buffer.alloc(12 + valid.length);
    b.writeUInt32LE(MARK_MAGIC, 0);
    b.writeUInt32LE(seq, 4);
    b.writeUInt32LE(this.layout.pageCount, 8);
    Buffer.from(valid.buffer, valid.byteOffset, valid.byteLength).copy(b, 12);
    const tmp = join(this.folder, "mark.tmp");
    const fh = await fs.open(tmp, "w", 0o600);
    try {
      await fh.write(b, 0, b.length, 0);
      if (this.sync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, join(this.folder, "mark"));
    this.bytesWritten += b.length;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.img.close(), this.records.close()]);
  }

  /** The copy is no longer needed (the migration completed or never switched over). */
  async remove(): Promise<void> {
    await this.close();
    await fs.rm(this.folder, { recursive: true, force: true });
  }
}

export interface ReadResult {
  /** Pages asked for that the copy does not hold current and intact, with why. */
  bad: { page: number; why: "unwritten" | "stale" | "checksum" }[];
}

export class StandbyReader {
  private constructor(
    private readonly layout: StandbyLayout,
    private readonly img: fs.FileHandle,
    private readonly records: fs.FileHandle,
    private readonly markSeq: number,
    private readonly valid: Bitmap,
  ) {}

  /** Opens a copy, checking it is one of this layout. No mark yet: nothing in it is known current (every page reads as stale). */
  static async open(dir: string, session: string, layout: StandbyLayout): Promise<StandbyReader> {
    const folder = copyFolder(dir, session);
    const meta = JSON.parse(await fs.readFile(join(folder, "layout.json"), "utf8")) as { ppsim_standby?: unknown; page_size?: unknown; page_count?: unknown };
    if (meta.ppsim_standby !== 1 || meta.page_size !== layout.pageSize || meta.page_count !== layout.pageCount) {
      throw new Error(`standby copy in ${folder} is not of this guest (${String(meta.page_count)} pages of ${String(meta.page_size)} bytes)`);
    }
    let markSeq = -1;
    let valid = new Bitmap(layout.pageCount);
    const mark = await fs.readFile(join(folder, "mark")).catch(() => null);
    if (mark !== null) {
      const need = 12 + Math.ceil(layout.pageCount / 8);
      if (mark.length !== need || mark.readUInt32LE(0) !== MARK_MAGIC || mark.readUInt32LE(8) !== layout.pageCount) throw new Error(`standby copy in ${folder}: bad switchover mark`);
      markSeq = mark.readUInt32LE(4);
      valid = Bitmap.fromBytes(mark.subarray(12), layout.pageCount);
    }
    const img = await fs.open(join(folder, "memory.img"), "r");
    const records = await fs.open(join(folder, "records"), "r");
    return new StandbyReader(layout, img, records, markSeq, valid);
  }

  /** Reads and verifies `pages`; hands each run's good pages to `take` as it goes. */
  async read(pages: Uint32Array, take: (batch: PageBatch<Uint8Array>) => void): Promise<ReadResult> {
    const ps = this.layout.pageSize;
    const bad: ReadResult["bad"] = [];
    for (const [first, count] of runs(pages)) {
      if (first + count > this.layout.pageCount) throw new RangeError(`standby: page ${first + count - 1} is beyond the copy`);
      const [rec, data] = await Promise.all([readExactly(this.records, count * RECORD_BYTES, first * RECORD_BYTES), readExactly(this.img, count * ps, first * ps)]);
      const good: number[] = [];
      const goodData: (Uint8Array | null)[] = [];
      for (let i = 0; i < count; i++) {
        const page = first + i;
        const o = i * RECORD_BYTES;
        const flags = rec[o + 12];
        const seq = rec.readUInt32LE(o + 8);
        if ((flags & FLAG_WRITTEN) === 0) {
          bad.push({ page, why: "unwritten" });
          continue;
        }
        if (!(this.markSeq >= 0 && (seq > this.markSeq || this.valid.has(page)))) {
          bad.push({ page, why: "stale" });
          continue;
        }
        const isZero = (flags & FLAG_ZERO) !== 0;
        const bytes = isZero ? null : Buffer.from(data.subarray(i * ps, (i + 1) * ps));
        if (checksum(page, seq, bytes) !== rec.readBigUInt64LE(o)) {
          bad.push({ page, why: "checksum" });
          continue;
        }
        good.push(page);
        goodData.push(bytes);
      }
      if (good.length > 0) take({ pages: Uint32Array.from(good), data: goodData });
    }
    return { bad };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.img.close(), this.records.close()]);
  }
}
