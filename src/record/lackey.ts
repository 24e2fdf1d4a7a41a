/**
 * Valgrind lackey's `--trace-mem=yes` output, turned into trace windows as it
 * streams by. Lackey prints one line per access (gigabytes for a second of a
 * real program), so the parser works on raw bytes chunk by chunk and keeps
 * only the current window's page sets.
 *
 * Lines: `I  ADDR,SIZE` (an instruction fetch), ` L ADDR,SIZE` (load),
 * ` S ADDR,SIZE` (store), ` M ADDR,SIZE` (modify: load then store); ADDR is
 * hex, SIZE decimal. Anything else (valgrind's `==PID==` lines) is skipped.
 * An access that straddles a page boundary touches both pages.
 */
import type { TraceWindow } from "../workload/trace-format.js";

const NL = 0x0a;
const CHAR_I = 0x49;
const SPACE = 0x20;
const CHAR_L = 0x4c;
const CHAR_S = 0x53;
const CHAR_M = 0x4d;
const COMMA = 0x2c;

const KIND_CODE = 0;
const KIND_READ = 1;
const KIND_WRITE = 2;

export class LackeyWindows {
  /** Instructions seen in all. */
  instructions = 0;
  windows = 0;
  /** Lines that were neither an access nor valgrind's own. */
  strayLines = 0;
  private inWindow = 0;
  private readonly sets = [new Set<number>(), new Set<number>(), new Set<number>()];
  /** The last page added per kind: consecutive accesses mostly hit the same page. */
  private readonly last = [-1, -1, -1];
  private carry: Buffer | null = null;

  constructor(
    private readonly windowInstructions: number,
    private readonly pageSize: number,
    private readonly emit: (w: TraceWindow) => void,
  ) {
    if (!Number.isSafeInteger(windowInstructions) || windowInstructions < 1) throw new RangeError(`window must be ≥ 1 instructions, got ${windowInstructions}`);
  }

  /** Feeds a chunk of lackey's output (lines may be cut anywhere). */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    const end = buf.lastIndexOf(NL);
    if (end < 0) {
      this.carry = Buffer.from(buf);
      return;
    }
    this.parse(buf, end + 1);
    if (end + 1 < buf.length) this.carry = Buffer.from(buf.subarray(end + 1));
  }

  /** The end of the stream: the last (possibly short) window. */
  finish(): void {
    if (this.carry !== null) {
      const tail = Buffer.concat([this.carry, Buffer.from("\n")]);
      this.carry = null;
      this.parse(tail, tail.length);
    }
    if (this.inWindow > 0) this.flush();
  }

  private parse(b: Buffer, n: number): void {
    let i = 0;
    while (i < n) {
      const c0 = b[i];
      let kind = -1;
      let j = i;
      if (c0 === CHAR_I) {
        kind = KIND_CODE;
        j = i + 1;
      } else if (c0 === SPACE) {
        const c1 = b[i + 1];
        if (c1 === CHAR_L) kind = KIND_READ;
        else if (c1 === CHAR_S || c1 === CHAR_M) kind = KIND_WRITE;
        j = i + 2;
      }
      if (kind < 0) {
        if (c0 !== 0x3d /* '=' */ && c0 !== NL) this.strayLines++;
        while (b[i] !== NL) i++;
        i++;
        continue;
      }
      while (b[j] === SPACE) j++;
      let addr = 0;
      for (;;) {
        const c = b[j];
        if (c >= 0x30 && c <= 0x39) addr = addr * 16 + (c - 0x30);
        else if (c >= 0x61 && c <= 0x66) addr = addr * 16 + (c - 0x57);
        else if (c >= 0x41 && c <= 0x46) addr = addr * 16 + (c - 0x37);
        else break;
        j++;
      }
      let size = 0;
      if (b[j] === COMMA) {
        j++;
        while (b[j] >= 0x30 && b[j] <= 0x39) size = size * 10 + (b[j++] - 0x30);
      }
      while (b[j] !== NL) j++;
      i = j + 1;
      if (kind === KIND_CODE) {
        if (this.inWindow === this.windowInstructions) this.flush();
        this.inWindow++;
        this.instructions++;
      }
      const first = Math.floor(addr / this.pageSize);
      const lastPage = size > 1 ? Math.floor((addr + size - 1) / this.pageSize) : first;
      for (let p = first; p <= lastPage; p++) {
        if (this.last[kind] !== p) {
          this.last[kind] = p;
          this.sets[kind].add(p);
        }
      }
    }
  }

  private flush(): void {
    const [code, read, written] = this.sets;
    const w = [...written].sort((a, b) => a - b);
    const r = [...read].filter((p) => !written.has(p)).sort((a, b) => a - b);
    const x = [...code].sort((a, b) => a - b);
    this.emit({ instructions: this.inWindow, read: r, written: w, code: x });
    this.windows++;
    this.inWindow = 0;
    for (const s of this.sets) s.clear();
    this.last.fill(-1);
  }
}
