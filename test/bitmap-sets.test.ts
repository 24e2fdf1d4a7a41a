import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";

const bitmapOf = (size: number, bits: number[]) => {
  const b = new Bitmap(size);
  for (const i of bits) if (i < size) b.set(i);
  return b;
};

describe("bitmap set operations", () => {
  it("minus lists, ascending, the bits of one bitmap clear in the other", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.array(fc.nat(199)), fc.array(fc.nat(199)), (size, xs, ys) => {
        const a = bitmapOf(size, xs);
        const b = bitmapOf(size, ys);
        const want = [...a].filter((i) => !b.has(i));
        expect([...a.minus(b)]).toEqual(want);
      }),
    );
  });

  it("complement holds exactly the other pages, with their count", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.array(fc.nat(199)), (size, xs) => {
        const a = bitmapOf(size, xs);
        const c = a.complement();
        const want = Array.from({ length: size }, (_, i) => i).filter((i) => !a.has(i));
        expect([...c]).toEqual(want);
        expect(c.count).toBe(want.length);
        expect(c.nextSet(size)).toBe(-1);
      }),
    );
  });

  it("minus and complement agree with the page-by-page answer for empty and full bitmaps too (their shortcuts)", () => {
    const shaped = (size: number, shape: "empty" | "full" | "some", xs: number[]): Bitmap => {
      const b = bitmapOf(size, shape === "some" ? xs : []);
      if (shape === "full") b.fill();
      return b;
    };
    const shape = fc.constantFrom("empty" as const, "full" as const, "some" as const);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), shape, shape, fc.array(fc.nat(99)), fc.array(fc.nat(99)), (size, sa, sb, xs, ys) => {
        const a = shaped(size, sa, xs);
        const b = shaped(size, sb, ys);
        expect([...a.minus(b)]).toEqual([...a].filter((i) => !b.has(i)));
        const c = a.complement();
        const want = Array.from({ length: size }, (_, i) => i).filter((i) => !a.has(i));
        expect([...c]).toEqual(want);
        expect(c.count).toBe(want.length);
      }),
      { seed: 11, numRuns: 300 },
    );
  });

  it("refuses bitmaps of different sizes", () => {
    expect(() => new Bitmap(10).minus(new Bitmap(11))).toThrow(/10 and 11/);
  });
});
