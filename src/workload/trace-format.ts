/**
 * The page-access trace file (docs/trace-format.md): gzip-compressed text,
 * a magic line with the format version, one JSON header line, one line per
 * window (instructions, then the sorted, delta-encoded pages read, written
 * and executed from), and an `end` line that proves the file is whole.
 *
 * Pages are the recorded program's virtual page numbers, sparse as recorded;
 * replay remaps them to dense guest frames (trace-replay.ts).
 */
import { gunzipSync } from "node:zlib";
import { LocalFileError, readBoundedFile } from "./read-bounded.js";

export const TRACE_MAGIC = "ppsim-trace";
export const TRACE_FORMAT_VERSION = 1;
/** A trace larger than this (compressed, or once decompressed) is refused: replay holds it whole. */
export const MAX_TRACE_FILE_BYTES = 64 << 20;
export const MAX_TRACE_TEXT_BYTES = 512 << 20;
/** Page numbers must stay exact in a double. */
const MAX_PAGE = 2 ** 52;

export interface TraceHeader {
  page_size: number;
  window: { unit: "instructions"; size: number };
  /** Everything else the recorder says (command, tool, host, …), kept as written. */
  [key: string]: unknown;
}

export interface TraceWindow {
  /** Instructions executed in this window (the last window may be short). */
  instructions: number;
  /** Pages loaded from and not stored to, ascending. */
  read: readonly number[];
  /** Pages stored to (or modified), ascending. */
  written: readonly number[];
  /** Pages instructions were fetched from, ascending (may overlap the other two). */
  code: readonly number[];
}

export interface Trace {
  header: TraceHeader;
  windows: TraceWindow[];
  /** Sum of the windows' instructions. */
  instructions: number;
}

export class TraceError extends Error {
  /** A bad file, not a bug: the CLI prints the message alone. */
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = "TraceError";
  }
}

/** "5 7 1 3" → [5, 12, 13, 16]: the first number absolute, then gaps (each ≥ 1). */
export function encodePages(pages: ArrayLike<number>): string {
  let out = "";
  let prev = 0;
  for (let i = 0; i < pages.length; i++) {
    out += (i === 0 ? "" : " ") + String(pages[i] - prev);
    prev = pages[i];
  }
  return out;
}

export function windowLine(w: TraceWindow): string {
  return `${w.instructions}\t${encodePages(w.read)}\t${encodePages(w.written)}\t${encodePages(w.code)}`;
}

export function headerLines(header: TraceHeader): string {
  return `${TRACE_MAGIC} ${TRACE_FORMAT_VERSION}\n${JSON.stringify(header)}\n`;
}

export function endLine(windows: number, instructions: number): string {
  return `end ${windows} ${instructions}\n`;
}

const INTEGER = /^\d+$/;

function decodePages(field: string, fail: (why: string) => never, what: string): number[] {
  if (field === "") return [];
  const out: number[] = [];
  let acc = 0;
  for (const tok of field.split(" ")) {
    if (!INTEGER.test(tok)) fail(`${what} list has ${JSON.stringify(tok)}, not a non-negative integer`);
    const d = Number(tok);
    if (out.length > 0 && d === 0) fail(`${what} list repeats page ${acc} (gaps after the first page must be ≥ 1)`);
    acc += d;
    if (acc >= MAX_PAGE) fail(`${what} list reaches page ${acc}, beyond 2^52`);
    out.push(acc);
  }
  return out;
}

function parseHeader(text: string, fail: (why: string) => never): TraceHeader {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    fail(`the header is not JSON: ${(e as Error).message}`);
  }
  if (typeof h !== "object" || h === null || Array.isArray(h)) fail("the header must be a JSON object");
  const o = h as Record<string, unknown>;
  const ps = o.page_size;
  if (typeof ps !== "number" || !Number.isInteger(ps) || ps < 512 || (ps & (ps - 1)) !== 0) {
    fail(`header.page_size must be a power of two ≥ 512, got ${JSON.stringify(ps)}`);
  }
  const win = o.window as Record<string, unknown> | undefined;
  if (typeof win !== "object" || win === null || win.unit !== "instructions") {
    fail(`header.window must be {"unit": "instructions", "size": N}, got ${JSON.stringify(win)}`);
  }
  if (typeof win.size !== "number" || !Number.isSafeInteger(win.size) || win.size < 1) {
    fail(`header.window.size must be an integer ≥ 1, got ${JSON.stringify(win.size)}`);
  }
  return o as TraceHeader;
}

/** Parses a trace's decompressed text. `origin` (a file name) prefixes every error, with the line. */
export function parseTraceText(text: string, origin = "trace"): Trace {
  const lines = text.split("\n");
  let lineNo = 0;
  const fail = (why: string): never => {
    throw new TraceError(`${origin}:${lineNo}: ${why}`);
  };
  lineNo = 1;
  const magic = lines[0].split(" ");
  if (magic[0] !== TRACE_MAGIC || magic.length !== 2) fail(`not a ppsim trace (the first line must be "${TRACE_MAGIC} ${TRACE_FORMAT_VERSION}")`);
  if (magic[1] !== String(TRACE_FORMAT_VERSION)) {
    fail(`trace format version ${JSON.stringify(magic[1])}; this build reads version ${TRACE_FORMAT_VERSION} only`);
  }
  lineNo = 2;
  if (lines.length < 2) fail("truncated: no header line");
  const header = parseHeader(lines[1], fail);
  const windows: TraceWindow[] = [];
  let instructions = 0;
  for (let i = 2; i < lines.length; i++) {
    lineNo = i + 1;
    const line = lines[i];
    if (line === "" && i === lines.length - 1) break; // the newline ending the last line
    if (line.startsWith("end")) {
      const m = /^end (\d+) (\d+)$/.exec(line);
      if (m === null) return fail(`the end line must be "end WINDOWS INSTRUCTIONS", got ${JSON.stringify(line.slice(0, 80))}`);
      if (Number(m[1]) !== windows.length) fail(`the end line counts ${m[1]} windows, the file has ${windows.length}`);
      if (Number(m[2]) !== instructions) fail(`the end line counts ${m[2]} instructions, the windows add up to ${instructions}`);
      const rest = lines.slice(i + 1).join("");
      if (rest !== "") {
        lineNo = i + 2;
        fail("text after the end line");
      }
      if (windows.length === 0) fail("the trace has no windows");
      return { header, windows, instructions };
    }
    const f = line.split("\t");
    if (f.length !== 4) fail(`a window line has 4 tab-separated fields (instructions, read, written, code), this one has ${f.length}`);
    if (!INTEGER.test(f[0])) fail(`the window's instruction count must be a non-negative integer, got ${JSON.stringify(f[0].slice(0, 40))}`);
    const n = Number(f[0]);
    if (n > header.window.size) fail(`the window has ${n} instructions, more than the header's window size ${header.window.size}`);
    instructions += n;
    windows.push({ instructions: n, read: decodePages(f[1], fail, "the read"), written: decodePages(f[2], fail, "the written"), code: decodePages(f[3], fail, "the code") });
  }
  lineNo = lines.length;
  return fail(`truncated: no end line after ${windows.length} windows`);
}

/** Reads, decompresses and validates a trace file. */
export function loadTrace(path: string): Trace {
  let bytes: Buffer;
  try {
    bytes = readBoundedFile(path, MAX_TRACE_FILE_BYTES, "trace");
  } catch (e) {
    throw new TraceError(e instanceof LocalFileError ? e.message : `${path}: cannot read the trace: ${(e as Error).message}`);
  }
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new TraceError(`${path}:1: not gzip data (a trace is gzip-compressed text)`);
  let text: string;
  try {
    text = gunzipSync(bytes, { maxOutputLength: MAX_TRACE_TEXT_BYTES }).toString("utf8");
  } catch (e) {
    throw new TraceError(`${path}: cannot decompress the trace (truncated or corrupt gzip?): ${(e as Error).message}`);
  }
  return parseTraceText(text, path);
}

export interface TraceSummary {
  windows: number;
  instructions: number;
  window_instructions: number;
  page_size: number;
  /** Distinct pages touched at all (read, written or executed). */
  footprint_pages: number;
  code_pages: number;
  written_pages: number;
  /** Pages written per window: mean, median, max. */
  write_set_per_window: { mean: number; p50: number; max: number };
  /** Share of the written pages written in more than one window. */
  rewritten_share: number;
}

export function summarizeTrace(t: Trace): TraceSummary {
  const all = new Set<number>();
  const code = new Set<number>();
  const writes = new Map<number, number>();
  const sizes: number[] = [];
  for (const w of t.windows) {
    for (const p of w.read) all.add(p);
    for (const p of w.code) {
      all.add(p);
      code.add(p);
    }
    for (const p of w.written) {
      all.add(p);
      writes.set(p, (writes.get(p) ?? 0) + 1);
    }
    sizes.push(w.written.length);
  }
  sizes.sort((a, b) => a - b);
  let rewritten = 0;
  for (const n of writes.values()) if (n > 1) rewritten++;
  const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
  return {
    windows: t.windows.length,
    instructions: t.instructions,
    window_instructions: t.header.window.size,
    page_size: t.header.page_size,
    footprint_pages: all.size,
    code_pages: code.size,
    written_pages: writes.size,
    write_set_per_window: { mean: Math.round(mean * 10) / 10, p50: sizes[Math.floor(sizes.length / 2)], max: sizes[sizes.length - 1] },
    rewritten_share: writes.size === 0 ? 0 : Math.round((rewritten / writes.size) * 1000) / 1000,
  };
}
