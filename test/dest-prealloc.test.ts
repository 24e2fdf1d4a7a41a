/**
 * The destination's memory populated ahead (src/real/dest-prealloc.ts): one
 * memfd ready at a time, every page of it allocated and mapped in the agent,
 * taken only by a guest of exactly its size; populated anew on demand; freed
 * on close. A destination refuses to populate more than it may hold.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { PreallocPool } from "../src/real/dest-prealloc.js";
import { GuestProcess } from "../src/real/guest-process.js";
import { closeFd, constants, memfdCreate, memfdDataPages, residentPages } from "../src/real/native.js";
import { scaleWorkload } from "../src/real/plan.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { loadWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const PS = constants().PAGE_SIZE;
const BYTES = 4 * 2 ** 20;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("memory populated ahead", () => {
  it("is there whole, taken once by its size only, populated again on demand", async () => {
    const lines: string[] = [];
    const pool = await PreallocPool.create(BYTES, (l) => lines.push(l));
    cleanups.push(() => pool.close());
    expect(pool.ready).toBe(true);
    expect(pool.holding).toBe(true);
    expect(lines.some((l) => /guest memory populated ahead: 4 MiB in \d+ ms/.test(l))).toBe(true);
    expect(pool.take(BYTES / 2)).toBeNull();
    const got = pool.take(BYTES);
    expect(got).not.toBeNull();
    if (got === null) return;
    cleanups.push(() => closeFd(got.fd), () => got.alias.unmap());
    // Every page in the memfd and mapped in the alias.
    expect(memfdDataPages(got.fd, 0, BYTES / PS, PS).every((x) => x === 1)).toBe(true);
    expect(residentPages(got.alias.address, BYTES / PS, PS).every((x) => x !== 0)).toBe(true);
    expect(got.alias.readU64(BYTES - 8)).toBe(0n);
    expect(pool.ready).toBe(false);
    expect(pool.take(BYTES)).toBeNull();
    await pool.refill();
    expect(pool.ready).toBe(true);
    expect(pool.fills).toHaveLength(2);
    await pool.close();
    expect(pool.ready).toBe(false);
    await pool.refill();
    expect(pool.holding).toBe(false); // closed: nothing populated any more
  });

  it("refuses sizes that are not a positive number of bytes", async () => {
    await expect(PreallocPool.create(0)).rejects.toThrow(RangeError);
    await expect(PreallocPool.create(1.5)).rejects.toThrow(/positive number of bytes/);
    await expect(PreallocPool.create(PS + 1)).rejects.toThrow(/a multiple of the page size/);
  });

  it.skipIf(userfaultfdUnavailable() !== null)("a destination does not populate more than its guest memory limit", async () => {
    await expect(DestinationAgent.listen("127.0.0.1", 0, { once: true, maxMemoryBytes: BYTES, prealloc: 2 * BYTES })).rejects.toThrow(/more than this destination's guest memory limit/);
  });

  it.skipIf(userfaultfdUnavailable() !== null)("a guest refuses a given memfd of another size than its RAM, and a source refuses one", async () => {
    const config = toGuestConfig(scaleWorkload(loadWorkload("examples/idle.json"), 2 * BYTES), 1);
    const fd = memfdCreate("wrong-size", BYTES);
    cleanups.push(() => closeFd(fd));
    await expect(GuestProcess.spawn({ role: "destination", config, minor: true, memfd: fd })).rejects.toThrow(/--memfd 3 is 4194304 bytes, the guest's RAM 8388608/);
    await expect(GuestProcess.spawn({ role: "source", config, memfd: fd })).rejects.toThrow(/--memfd is for the destination/);
  });
});

