/**
 * The standby copy on disk (issue 16): one folder per migration,
 * DIR/<session id>/, on storage both hosts reach.
 *
 *   layout.json   {"ppsim_standby":2,"page_size":…,"page_count":…}
 *   memory.img    page p at offset p × page_size (sparse: rewrites never grow it)
 *   records       16 bytes per page at offset p × 16: u64 checksum, u32 seq,
 *                 u8 flags (1 written, 2 zero page), 3 reserved
 *   mark          written at switchover, by rename: u32 magic, u32 seq,
 *                 u32 page_count, then the bitmap of pages current at switchover
 *
 * The checksum (format 2) is XXH64 of the page's data seeded with
 * (page << 32 | seq): a record that does not match the data at its offset —
 * a torn write, a stale block, a block of another page — fails. It guards
 * against accidents of storage and crashes, not against someone who can
 * write the copy (who could as well write a matching record); format 1 used
 * SHA-1, which at 0.2–1 GiB/s here was the copy's bottleneck. A page is
 * current when its record is intact and either its seq is past the mark's
 * (written after the source guest paused for good) or the mark lists it.
 * The writer (standby-write.ts, run by the source's copy thread) writes a
 * page's data before its record.
 */
import { xxh64 } from "@node-rs/xxhash";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { Bitmap } from "../engine/bitmap.js";
import type { PageBatch } from "../engine/messages.js";

export const RECORD_BYTES = 16;
export const FORMAT = 2;
export const MARK_MAGIC = 0x4b4d5350; // "PSMK"
export const FLAG_WRITTEN = 1;
export const FLAG_ZERO = 2;
/** Largest run read or written in one call. */
export const RUN_PAGES = 256;
const EMPTY = new Uint8Array(0);

export interface StandbyLayout {
  pageSize: number;
  pageCount: number;
}

/** The folder of one migration's copy; the session id is 32 hex digits (it names the folder). */
export function copyFolder(dir: string, session: string): string {
  if (!/^[0-9a-f]{32}$/.test(session)) throw new Error(`standby: bad session id "${session}"`);
  return join(dir, session);
}

/** A page's record checksum; `data` null for a zero page. */
export function checksum(page: number, seq: number, data: Uint8Array | null): bigint {
  return xxh64(data ?? EMPTY, (BigInt(page) << 32n) | BigInt(seq));
}

/** Consecutive runs of sorted-or-not page numbers, each at most RUN_PAGES long: [first, count]. */
export function runs(pages: ArrayLike<number>): [number, number][] {
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

/** A whole small file, or null if absent; longer than `max` bytes is an error. */
async function readBounded(path: string, max: number): Promise<Buffer | null> {
  const fh = await fs.open(path, "r").catch(() => null);
  if (fh === null) return null;
  try {
    const b = await readExactly(fh, max + 1, 0);
    const { size } = await fh.stat();
    if (size > max) throw new Error(`${path} is ${size} bytes, more than the ${max} it may hold`);
    return b.subarray(0, size);
  } finally {
    await fh.close();
  }
}

/** Creates a migration's copy folder and its files (sparse, at their full size); the copy thread writes them. */
export async function createCopy(dir: string, session: string, layout: StandbyLayout): Promise<string> {
  const folder = copyFolder(dir, session);
  await fs.mkdir(folder, { recursive: false, mode: 0o700 });
  await fs.writeFile(join(folder, "layout.json"), JSON.stringify({ ppsim_standby: FORMAT, page_size: layout.pageSize, page_count: layout.pageCount }));
  for (const [name, size] of [["memory.img", layout.pageSize * layout.pageCount], ["records", RECORD_BYTES * layout.pageCount]] as const) {
    const fh = await fs.open(join(folder, name), "w+", 0o600);
    try {
      await fh.truncate(size);
    } finally {
      await fh.close();
    }
  }
  return folder;
}

/** The copy is no longer needed (the migration completed or never switched over). */
export async function removeCopy(folder: string): Promise<void> {
  await fs.rm(folder, { recursive: true, force: true });
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
    // Shared storage is untrusted: both small files are read bounded, parsed defensively.
    const text = await readBounded(join(folder, "layout.json"), 4096);
    const meta = (text === null ? null : (JSON.parse(text.toString("utf8")) as unknown)) as { ppsim_standby?: unknown; page_size?: unknown; page_count?: unknown } | null;
    if (meta === null || typeof meta !== "object") throw new Error(`standby copy in ${folder}: no readable layout.json`);
    if (meta.ppsim_standby !== FORMAT || meta.page_size !== layout.pageSize || meta.page_count !== layout.pageCount) {
      throw new Error(`standby copy in ${folder} is not of this guest or format (format ${String(meta.ppsim_standby)}, ${String(meta.page_count)} pages of ${String(meta.page_size)} bytes; want format ${FORMAT})`);
    }
    let markSeq = -1;
    let valid = new Bitmap(layout.pageCount);
    const need = 12 + Math.ceil(layout.pageCount / 8);
    const mark = await readBounded(join(folder, "mark"), need);
    if (mark !== null) {
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
