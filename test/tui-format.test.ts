import { describe, expect, it } from "vitest";
import {
  bar,
  barWidths,
  fit,
  fmtBytes,
  fmtCount,
  fmtDuration,
  fmtNumber,
  fmtPercent,
  fmtRate,
  fmtUs,
  resample,
  sparkline,
} from "../tui/format.js";

describe("tui format", () => {
  it("formats bytes in binary units, 3 significant digits", () => {
    expect(fmtBytes(0)).toBe("0 B");
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtBytes(1536)).toBe("1.50 KiB");
    expect(fmtBytes(118.4 * 1048576)).toBe("118 MiB");
    expect(fmtBytes(1_073_741_824)).toBe("1.00 GiB");
    expect(fmtBytes(1024 * 1024 - 1)).toBe("1.00 MiB");
    expect(fmtBytes(-2048)).toBe("-2.00 KiB");
    expect(fmtBytes(NaN)).toBe("–");
    expect(fmtRate(12.5 * 1048576)).toBe("12.5 MiB/s");
  });

  it("formats durations from µs to hours", () => {
    expect(fmtDuration(0.85)).toBe("850 µs");
    expect(fmtDuration(12.34)).toBe("12.3 ms");
    expect(fmtDuration(999)).toBe("999 ms");
    expect(fmtDuration(12_345)).toBe("12.35 s");
    expect(fmtDuration(123_000)).toBe("2m 03s");
    expect(fmtDuration(3_720_000)).toBe("1h 02m");
    expect(fmtUs(2100)).toBe("2.10 ms");
    expect(fmtUs(64)).toBe("64 µs");
  });

  it("formats percentages, counts and numbers", () => {
    expect(fmtPercent(0.625)).toBe("62.5%");
    expect(fmtPercent(0.3, 0)).toBe("30%");
    expect(fmtPercent(Infinity)).toBe("–");
    expect(fmtCount(1234567)).toBe("1,234,567");
    expect(fmtNumber(118.4)).toBe("118.4");
    expect(fmtNumber(3)).toBe("3");
    expect(fmtNumber(1 / 3)).toBe("0.333");
  });

  it("draws sparklines", () => {
    expect(sparkline([0, 1, 2, 4, 8])).toBe("▁▂▃▅█");
    expect(sparkline([0, 0.5, 1], { max: 1 })).toBe("▁▅█");
    expect(sparkline([0, 3, 0, 6], { blankZero: true })).toBe(" ▅ █");
    expect(sparkline([])).toBe("");
    expect(sparkline([0, 0])).toBe("▁▁");
  });

  it("splits a bar into segments that never exceed its width", () => {
    expect(barWidths([25, 25, 0], 100, 40)).toEqual([10, 10, 0]);
    expect(barWidths([1, 1, 1], 3, 10)).toEqual([3, 4, 3]);
    expect(barWidths([5, 5], 0, 10)).toEqual([0, 0]);
    expect(barWidths([100, 100], 100, 10)).toEqual([10, 0]);
    expect(bar([{ value: 50, char: "█" }, { value: 25, char: "▓" }], 100, 8)).toBe("████▓▓░░");
    for (let n = 0; n <= 50; n++) {
      const w = barWidths([n, 50 - n, n % 7], 57, 33);
      expect(w.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(33);
      expect(w.every((x) => x >= 0)).toBe(true);
    }
  });

  it("resamples a time series to a width", () => {
    const pts = [0, 1, 2, 3, 4, 5, 6, 7].map((t) => ({ t, v: t * 10 }));
    expect(resample(pts, 10)).toEqual([0, 10, 20, 30, 40, 50, 60, 70]);
    expect(resample(pts, 4)).toEqual([10, 30, 50, 70]);
    expect(resample([], 4)).toEqual([]);
  });

  it("fits text to a width", () => {
    expect(fit("abc", 5)).toBe("abc  ");
    expect(fit("abcdef", 4)).toBe("abc…");
  });
});
