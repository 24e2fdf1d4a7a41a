/** Pure text helpers for the TUI and the plain progress lines. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Three significant digits: 9.87, 98.7, 987. */
function sig3(x: number): string {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Binary units: "0 B", "512 B", "1.50 KiB", "118 MiB". */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const sign = n < 0 ? "-" : "";
  let x = Math.abs(n);
  if (x < 1024) return `${sign}${Math.round(x)} B`;
  let u = 0;
  while (x >= 1024 && u < UNITS.length - 1) {
    x /= 1024;
    u++;
  }
  // 1023.9 KiB would print as "1024 KiB": carry into the next unit.
  if (Number(sig3(x)) >= 1024 && u < UNITS.length - 1) {
    x /= 1024;
    u++;
  }
  return `${sign}${sig3(x)} ${UNITS[u]}`;
}

/** Bytes per second. */
export function fmtRate(bytesPerSec: number): string {
  return `${fmtBytes(bytesPerSec)}/s`;
}

/** Milliseconds: "850 µs", "12.3 ms", "12.34 s", "2m 03s", "1h 02m". */
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 0) return `-${fmtDuration(-ms)}`;
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${sig3(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** Microseconds, as a duration. */
export function fmtUs(us: number): string {
  return fmtDuration(us / 1000);
}

/** A ratio (0..1) as a percentage: fmtPercent(0.625) = "62.5%". */
export function fmtPercent(ratio: number, digits = 1): string {
  if (!Number.isFinite(ratio)) return "–";
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** An integer with thousands separators: "1,234,567". */
export function fmtCount(n: number): string {
  if (!Number.isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

/** A plain number, at most 3 decimals, no trailing zeros. */
export function fmtNumber(n: number): string {
  if (!Number.isFinite(n)) return "–";
  if (Number.isInteger(n)) return fmtCount(n);
  return String(Math.round(n * 1000) / 1000);
}

const LEVELS = "▁▂▃▄▅▆▇█";

/**
 * One block character per value, scaled to [0, max] (max defaults to the
 * largest value). With blankZero, a value of 0 is a space (for histograms).
 */
export function sparkline(values: readonly number[], opts: { max?: number; blankZero?: boolean } = {}): string {
  const max = opts.max ?? Math.max(0, ...values);
  let out = "";
  for (const v of values) {
    if (opts.blankZero && v <= 0) {
      out += " ";
      continue;
    }
    const r = max > 0 ? Math.min(1, Math.max(0, v / max)) : 0;
    out += LEVELS[Math.min(LEVELS.length - 1, Math.floor(r * LEVELS.length))];
  }
  return out;
}

/**
 * Widths (in cells) of consecutive segments of a bar `width` cells wide
 * showing `values` out of `total`; boundaries are rounded cumulatively, so
 * the widths sum to round(sum/total × width) and never exceed width.
 */
export function barWidths(values: readonly number[], total: number, width: number): number[] {
  const widths: number[] = [];
  let cum = 0;
  let prev = 0;
  for (const v of values) {
    cum += Math.max(0, v);
    const edge = total > 0 ? Math.min(width, Math.round((cum / total) * width)) : 0;
    widths.push(edge - prev);
    prev = edge;
  }
  return widths;
}

/** A bar as text: each segment drawn with its own character, the rest with `empty`. */
export function bar(segments: readonly { value: number; char: string }[], total: number, width: number, empty = "░"): string {
  const widths = barWidths(
    segments.map((s) => s.value),
    total,
    width,
  );
  const used = widths.reduce((a, b) => a + b, 0);
  return segments.map((s, i) => s.char.repeat(widths[i])).join("") + empty.repeat(width - used);
}

/**
 * Values of a time series (points sorted by t) at `width` evenly spaced
 * instants spanning it: each column takes the last point at or before its
 * instant. A series shorter than width is returned as is.
 */
export function resample(points: readonly { t: number; v: number }[], width: number): number[] {
  if (points.length <= width) return points.map((p) => p.v);
  const t0 = points[0].t;
  const span = points[points.length - 1].t - t0;
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < width; i++) {
    const ti = t0 + (span * (i + 1)) / width;
    while (j + 1 < points.length && points[j + 1].t <= ti) j++;
    out.push(points[j].v);
  }
  return out;
}

/** Pad or cut a string to exactly n cells (cut with "…"). */
export function fit(s: string, n: number): string {
  if (s.length > n) return n > 1 ? `${s.slice(0, n - 1)}…` : s.slice(0, n);
  return s.padEnd(n);
}
