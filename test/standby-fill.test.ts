/** The destination's fill from the standby copy (src/engine/standby-fill.ts): what it reads, what it names lost. */
import { describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { FillFromStandby } from "../src/engine/standby-fill.js";

describe("fill from the standby copy", () => {
  it("reads exactly the missing pages once, and names those still missing at its end", () => {
    const present = new Bitmap(100);
    for (let p = 0; p < 100; p++) if (p % 3 !== 0) present.set(p);
    const f = new FillFromStandby();
    const missing = f.begin("the source died", present, 100)!;
    expect(Array.from(missing)).toEqual(Array.from({ length: 34 }, (_, i) => i * 3));
    expect(f.begin("again", present, 100)).toBe(null);
    for (const p of missing) if (p < 90 || p === 99) present.set(p);
    f.received(31);
    expect(f.reading).toBe(true);
    expect(f.end(present, 100)).toBe("the VM is lost: the source died, inside the unprotected window: 3 of 100 pages are neither here nor, current and intact, in the standby copy: 90, 93, 96");
    expect(f.reading).toBe(false);
    expect(f.fill).toMatchObject({ why: "the source died", missing: 34, filled: 31 });
    expect(Array.from(f.fill!.lost!)).toEqual([90, 93, 96]);
  });

  it("a fill whose pages all came says so at completion", () => {
    const f = new FillFromStandby();
    expect(f.completed()).toBe("every page is present");
    const present = new Bitmap(8);
    f.begin("the source did not reconnect within 2 s", present, 8);
    f.received(8);
    expect(f.completed()).toBe("the source did not reconnect within 2 s: 8 of the 8 missing pages came from the standby copy, each verified against its checksum; every page is present");
    expect(f.fill!.lost!.length).toBe(0);
  });
});
