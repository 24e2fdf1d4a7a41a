/** Small synthetic traces written in the trace format, for replay tests. */
import { writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { endLine, headerLines, windowLine, type TraceWindow } from "../../src/workload/trace-format.js";

export function traceText(windows: TraceWindow[], header: Record<string, unknown> = {}, window = 1000): string {
  const total = windows.reduce((a, w) => a + w.instructions, 0);
  return headerLines({ page_size: 4096, window: { unit: "instructions", size: window }, ...header }) + windows.map((w) => windowLine(w) + "\n").join("") + endLine(windows.length, total);
}

export function writeTrace(path: string, windows: TraceWindow[], header: Record<string, unknown> = {}): string {
  writeFileSync(path, gzipSync(traceText(windows, header)));
  return path;
}

/** A program with sparse pages (two far-apart areas), windows that move and rewrite some pages. */
export function sampleWindows(): TraceWindow[] {
  const heap = 0x55550000;
  const stack = 0x7ffff000;
  return [
    { instructions: 1000, read: [heap, heap + 1, stack], written: [heap + 2, stack + 1], code: [0x400, 0x401] },
    { instructions: 1000, read: [heap + 2], written: [heap, heap + 3, heap + 4], code: [0x401] },
    { instructions: 1000, read: [], written: [heap + 2, stack + 1], code: [0x402] },
    { instructions: 400, read: [heap + 4, stack], written: [heap + 5], code: [0x400, 0x402] },
  ];
}
