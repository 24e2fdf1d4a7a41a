/**
 * The machine limit beside real benchmarks (bench/first-touch.ts): a first
 * store to each page of fresh memory, then the same stores again. Only the
 * shape is checked here; the figures are the machine's, never a pass/fail.
 */
import { describe, expect, it } from "vitest";
import { firstTouch } from "../bench/first-touch.js";

describe("first touch of fresh memory (bench/first-touch.ts)", () => {
  it("measures both passes over the asked size and says whether free pages are reported", () => {
    const t = firstTouch(2);
    expect(t.mib).toBe(2);
    expect(t.ns_per_page).toBeGreaterThan(0);
    expect(t.retouch_ns_per_page).toBeGreaterThanOrEqual(0);
    if (t.page_reporting !== null) expect(Number.isInteger(t.page_reporting.order)).toBe(true);
  });

  it("refuses a size it cannot probe", () => {
    for (const bad of [0, -1, 1.5, 5000, Number.NaN]) expect(() => firstTouch(bad), String(bad)).toThrow(/1 … 4096 MiB/);
  });
});
