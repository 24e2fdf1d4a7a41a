/**
 * Guest RAM kept for a post-mortem (issue 9, "never corrupt"). The guest's
 * RAM hash (HASH, native/guest/memory.cc) folds every word of memory into
 * four lanes and says only *that* two memories differ; which pages differ
 * needs both memories. `PPSIM_DEST_DUMP=DIR` makes the destination write its
 * guest's RAM, once the guest has run its last step and been hashed, to
 * DIR/dest-<session>.mem: a sparse file of the memory's size holding only the
 * memfd's non-zero pages (holes and zero pages stay holes; all read as zeros).
 * `diffPages` compares such a file page by page with another guest's memfd
 * (the bench's unmigrated run). Off by default; a stress bench's tool, not
 * the migration's: nothing a peer sends reaches it.
 */
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { memfdDataPages, pread } from "./native.js";

/** Pages read per pread (1 MiB of 4 KiB pages). */
const CHUNK_PAGES = 256;
/** memfdDataPages' bound on one call's count. */
const MAP_CALL_PAGES = 1 << 24;

/**
 * PPSIM_DEST_DUMP: the directory to dump a destination guest's RAM into, or
 * null (off). With PPSIM_DEST_DUMP_UNLESS=HASH (16 hex digits: the unmigrated
 * run's, when the bench knows it), only a guest whose RAM hash is another is
 * dumped: at 4 GiB a dump is gigabytes written, which a verified run need not pay.
 */
export function destDumpDir(hash: string): string | null {
  const d = process.env.PPSIM_DEST_DUMP;
  if (d === undefined || d === "") return null;
  return process.env.PPSIM_DEST_DUMP_UNLESS === hash ? null : d;
}

function dataMap(memfd: number, pageCount: number, pageSize: number): Uint8Array {
  const m = new Uint8Array(pageCount);
  for (let p = 0; p < pageCount; p += MAP_CALL_PAGES) m.set(memfdDataPages(memfd, p, Math.min(MAP_CALL_PAGES, pageCount - p), pageSize), p);
  return m;
}

/** Writes the memfd's non-zero pages into a sparse file of `memBytes` at `path`; returns how many pages it wrote. */
export function dumpMemory(memfd: number, memBytes: number, pageSize: number, path: string): number {
  const pageCount = memBytes / pageSize;
  const map = dataMap(memfd, pageCount, pageSize);
  const zero = Buffer.alloc(pageSize);
  const out = openSync(path, "w", 0o600);
  let written = 0;
  try {
    ftruncateSync(out, memBytes);
    let p = 0;
    while (p < pageCount) {
      if (map[p] !== 1) {
        p++;
        continue;
      }
      let q = p + 1;
      while (q < pageCount && q - p < CHUNK_PAGES && map[q] === 1) q++;
      const buf = pread(memfd, p * pageSize, (q - p) * pageSize);
      // Zero pages stay holes too (a destination's installed zero page is data to SEEK_DATA): runs of non-zero pages only.
      let k = 0;
      while (k < q - p) {
        if (buf.subarray(k * pageSize, (k + 1) * pageSize).equals(zero)) {
          k++;
          continue;
        }
        let e = k + 1;
        while (e < q - p && !buf.subarray(e * pageSize, (e + 1) * pageSize).equals(zero)) e++;
        writeSync(out, buf, k * pageSize, (e - k) * pageSize, (p + k) * pageSize);
        written += e - k;
        k = e;
      }
      p = q;
    }
  } finally {
    closeSync(out);
  }
  return written;
}

/** The destination's dump of its guest (session id), in `dir`; returns the file's path. */
export function dumpDestination(dir: string, session: string, memfd: number, memBytes: number, pageSize: number): { path: string; pages: number } {
  const path = join(dir, `dest-${session}.mem`);
  return { path, pages: dumpMemory(memfd, memBytes, pageSize, path) };
}

/** One page that differs: how many of its 64-bit words differ, whether either side is all zeros, and the first few words (hex). */
export interface PageDiff {
  page: number;
  words: number;
  expectedZero: boolean;
  gotZero: boolean;
  /** Up to 4 differing words: [word index, expected, got]. */
  sample: [number, string, string][];
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

function pageDiff(page: number, want: Buffer, got: Buffer): PageDiff {
  const d: PageDiff = { page, words: 0, expectedZero: isZero(want), gotZero: isZero(got), sample: [] };
  for (let w = 0; w < want.length / 8; w++) {
    const a = want.readBigUInt64LE(w * 8);
    const b = got.readBigUInt64LE(w * 8);
    if (a === b) continue;
    d.words++;
    if (d.sample.length < 4) d.sample.push([w, a.toString(16), b.toString(16)]);
  }
  return d;
}

/**
 * The pages where the file at `path` (a dump) differs from the memfd
 * `expectedFd` (the unmigrated run's RAM), in page order; at most `limit`
 * are described, `count` is all of them.
 */
export function diffPages(expectedFd: number, path: string, memBytes: number, pageSize: number, limit = 1000): { count: number; pages: PageDiff[] } {
  const f = openSync(path, "r");
  const got = Buffer.alloc(CHUNK_PAGES * pageSize);
  const pages: PageDiff[] = [];
  let count = 0;
  try {
    for (let off = 0; off < memBytes; off += got.length) {
      const len = Math.min(got.length, memBytes - off);
      const want = pread(expectedFd, off, len);
      let n = 0;
      while (n < len) {
        const r = readSync(f, got, n, len - n, off + n);
        if (r <= 0) break;
        n += r;
      }
      got.fill(0, n, len); // a dump shorter than the memory: the rest reads as zeros
      if (want.equals(got.subarray(0, len))) continue;
      for (let o = 0; o < len; o += pageSize) {
        const a = want.subarray(o, o + pageSize);
        const b = got.subarray(o, o + pageSize);
        if (a.equals(b)) continue;
        count++;
        if (pages.length < limit) pages.push(pageDiff((off + o) / pageSize, a, b));
      }
    }
  } finally {
    closeSync(f);
  }
  return { count, pages };
}
