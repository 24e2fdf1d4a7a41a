/**
 * The destination books the native receiver's installed pages a slice per
 * event-loop turn (src/real/dest-booking.ts): a backlog of notices never
 * holds the loop for all of it at once, and any other message first books
 * everything before it, in order.
 */
import { describe, expect, it } from "vitest";
import type { Message } from "../src/engine/messages.js";
import { BookingQueue } from "../src/real/dest-booking.js";

const installed = (page: number): Message<Uint8Array> => ({ type: "pages", pages: Uint32Array.of(page), data: [null], preinstalled: true });
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const what = (m: Message<Uint8Array>): string => (m.type === "pages" ? `p${m.pages[0]}` : m.type);

describe("BookingQueue", () => {
  it("books at most a slice of installed pages per turn, all of them in order", async () => {
    const booked: string[] = [];
    const q = new BookingQueue((m) => booked.push(what(m)), 8);
    for (let p = 0; p < 20; p++) q.push(installed(p));
    expect(booked).toEqual([]);
    await turn();
    expect(booked).toEqual(Array.from({ length: 8 }, (_, p) => `p${p}`));
    await turn();
    await turn();
    expect(booked).toEqual(Array.from({ length: 20 }, (_, p) => `p${p}`));
    expect(q.waiting).toBe(0);
  });

  it("any other message books what waits first, then goes at once", () => {
    const booked: string[] = [];
    const q = new BookingQueue((m) => booked.push(what(m)), 8);
    for (let p = 0; p < 12; p++) q.push(installed(p));
    q.push({ type: "switchover", stale: new Uint32Array(0), cpuState: new Uint8Array(0) } as Message<Uint8Array>);
    expect(booked).toEqual([...Array.from({ length: 12 }, (_, p) => `p${p}`), "switchover"]);
    q.push(installed(99));
    q.flush();
    expect(booked.at(-1)).toBe("p99");
  });
});
