/**
 * The source's bulk sender moves pages four ways (native/src/bulk_send_ways.*):
 * preadv + send, writev from a mapping, sendfile, splice through a pipe. Every
 * way must put the same bytes on the wire for the same queue: JS frames, pages
 * frames with zero pages, a run at the memfd's end, pages past it (the memfd
 * truncated under the sender: zeros, as preadv reads them). The sender's socket
 * buffer is a few KiB, so every frame goes in partial writes. Over a unix
 * socketpair and over loopback TCP (where sendfile corks the frame).
 */
import { createServer, connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import type { Message } from "../src/engine/messages.js";
import { plainSocketFd, SEND_WAYS, type SendWay } from "../src/real/dataplane.js";
import { closeFd, constants, ftruncate, memfdCreate, memfdDataPages, pread, punchHole, pwrite, setSendBuffer, socketPair, startBulkSender } from "../src/real/native.js";
import { pagesMsg } from "./support/pages.js";

const PS = constants().PAGE_SIZE;
const PAGES = 600;
/** The memfd is cut to this many pages once the senders exist: pages from here on read as zeros. */
const KEPT = 590;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

/** Data pages with a pattern from the page number, except every p % 5 === 2: a hole. */
function sourceMemory(): number {
  const fd = memfdCreate("ways-src", PAGES * PS);
  cleanups.push(() => closeFd(fd));
  for (let p = 0; p < PAGES; p++) {
    if (p % 5 === 2) continue;
    const b = Buffer.alloc(PS, (p * 13 + 5) & 0xff);
    b.writeUInt32LE(p, 0);
    b.writeUInt32LE(~p >>> 0, PS - 4);
    pwrite(fd, p * PS, b);
  }
  return fd;
}

/** The queue: runs of up to 256 pages with holes flagged zero, single pages out of order, the memfd's last pages. */
function queue(fd: number): { pages: Uint32Array; zero: Uint8Array }[] {
  const map = memfdDataPages(fd, 0, PAGES, PS);
  const orders = [range(0, 256), range(256, 300), [7, 3, 511, 2, 598], range(300, 556), range(556, 600), [599], [KEPT - 1, KEPT, KEPT + 1]];
  return orders.map((o) => {
    const pages = Uint32Array.from(o);
    return { pages, zero: Uint8Array.from(pages, (p) => (map[p] === 1 ? 0 : 1)) };
  });
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/** A connected pair: the sender's fd and a Node socket that reads the other end. */
async function pair(kind: "unix" | "tcp"): Promise<{ fd: number; reader: Socket }> {
  if (kind === "unix") {
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a));
    const { Socket: S } = await import("node:net");
    const reader = new S({ fd: b, readable: true, writable: false });
    cleanups.push(() => reader.destroy());
    return { fd: a, reader };
  }
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => server.close());
  const accepted = new Promise<Socket>((r) => server.once("connection", r));
  const client = connect({ host: "127.0.0.1", port: (server.address() as { port: number }).port });
  await new Promise((r) => client.once("connect", r));
  cleanups.push(() => client.destroy());
  const reader = await accepted;
  cleanups.push(() => reader.destroy());
  return { fd: plainSocketFd(client), reader };
}

/** Everything one way puts on the wire for the queue. */
async function wire(kind: "unix" | "tcp", way: SendWay, fd: number, truncate: boolean): Promise<{ bytes: Buffer; queued: number; way: string }> {
  const { fd: sock, reader } = await pair(kind);
  // unix: a few KiB, every frame in many partial writes; TCP: still far below a frame, but above one
  // segment (a corked frame smaller than the buffer would wait for the cork timer).
  setSendBuffer(sock, kind === "unix" ? 4096 : 64 * 1024);
  const chunks: Buffer[] = [];
  let got = 0;
  reader.on("data", (d: Buffer) => {
    chunks.push(d);
    got += d.length;
  });
  const errors: string[] = [];
  const sender = startBulkSender(sock, fd, PS, PAGES, 64 * 1024, (e) => void (e.error !== null && errors.push(e.error.message)), 0, way);
  cleanups.push(() => sender.stop());
  if (truncate) ftruncate(fd, KEPT * PS);
  const hello: Message<Uint8Array> = { type: "cancel", reason: "a frame from JS first" };
  let queued = sender.frame(encodeMessage(hello, PS));
  for (const q of queue(fd)) queued += sender.pages(q.pages, q.zero);
  queued += sender.frame(encodeMessage({ type: "cancel", reason: "and one last" }, PS));
  while (got < queued && errors.length === 0) await new Promise((r) => setTimeout(r, 2));
  expect(errors).toEqual([]);
  expect(sender.written).toBe(queued);
  const way_ = sender.stats().way;
  sender.stop();
  return { bytes: Buffer.concat(chunks), queued, way: way_ };
}

/** The engine's codec of the same queue, page data read with pread (zeros past the memfd's end). */
function expected(fd: number): Buffer {
  const parts: Uint8Array[] = [encodeMessage({ type: "cancel", reason: "a frame from JS first" }, PS)];
  for (const q of queue(fd)) {
    const entries = Array.from(q.pages, (p, k) => {
      if (q.zero[k] === 1) return { page: p, data: null };
      const b = Buffer.alloc(PS);
      pread(fd, p * PS, PS).copy(b);
      return { page: p, data: new Uint8Array(b) };
    });
    parts.push(encodeMessage(pagesMsg(entries), PS));
  }
  parts.push(encodeMessage({ type: "cancel", reason: "and one last" }, PS));
  return Buffer.concat(parts);
}

describe("the bulk sender's send ways", () => {
  for (const kind of ["unix", "tcp"] as const) {
    it(`put byte-identical streams on the wire (${kind}), in partial writes, a truncated memfd's pages as zeros`, async () => {
      for (const truncate of [false, true]) {
        const results = new Map<SendWay, Buffer>();
        for (const way of SEND_WAYS) {
          const fd = sourceMemory();
          const got = await wire(kind, way, fd, truncate);
          expect(got.way).toBe(way);
          const want = expected(fd);
          expect(got.bytes.length).toBe(want.length);
          expect(got.bytes.equals(want)).toBe(true);
          results.set(way, got.bytes);
        }
        for (const way of SEND_WAYS) expect(results.get(way)?.equals(results.get("preadv") as Buffer)).toBe(true);
      }
    });
  }

  // The zero-copy ways leave page-cache pages referenced by the socket until the reader reads them.
  // Post-copy's release punches pages the destination has: a copy still in a socket must keep the
  // bytes it was queued with (the socket holds a reference; the punch drops only the page cache's).
  for (const kind of ["unix", "tcp"] as const) {
    it(`a page punched while its frame waits in the socket arrives as it was (${kind})`, async () => {
      for (const way of SEND_WAYS) {
        const fd = sourceMemory();
        const { fd: sock, reader } = await pair(kind);
        reader.pause();
        const sender = startBulkSender(sock, fd, PS, PAGES, 64 * 1024, () => undefined, 0, way);
        cleanups.push(() => sender.stop());
        const q = queue(fd)[1]; // pages 256..299: 44 pages, ~180 KiB, within the sockets' default buffers
        const frame = encodeMessage(pagesMsg(Array.from(q.pages, (p, k) => ({ page: p, data: q.zero[k] === 1 ? null : new Uint8Array(pread(fd, p * PS, PS)) }))), PS);
        const queued = sender.pages(q.pages, q.zero);
        expect(queued).toBe(frame.length);
        while (sender.written < queued) await new Promise((r) => setTimeout(r, 2));
        punchHole(fd, 256 * PS, 44 * PS);
        expect(pread(fd, 257 * PS, PS).every((b) => b === 0)).toBe(true);
        const chunks: Buffer[] = [];
        let got = 0;
        reader.on("data", (d: Buffer) => {
          chunks.push(d);
          got += d.length;
        });
        reader.resume();
        while (got < queued) await new Promise((r) => setTimeout(r, 2));
        expect(Buffer.concat(chunks).equals(frame)).toBe(true);
        sender.stop();
      }
    });
  }

  it("refuses a way it does not know", () => {
    const fd = sourceMemory();
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a), () => closeFd(b));
    expect(() => startBulkSender(a, fd, PS, PAGES, 1024, () => undefined, 0, "mmap" as SendWay)).toThrow(/way must be/);
  });
});
