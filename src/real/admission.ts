/**
 * A session before it exists: its urgent and bulk connections (epoch 0) and
 * the hello on bulk, held for at most `setupTimeoutMs` and a few KiB, then
 * checked against this host before anything is spawned — the session info
 * parses, the layout is this host's page size and the memory the info names,
 * and the guest fits the memory and session limits. Only an admitted
 * candidate becomes a DestSession (which then spawns the guest); a refused
 * one gets an error frame saying why.
 */
import { existsSync } from "node:fs";
import { FrameDecoder } from "../engine/frame-decoder.js";
import { ErrorCode, type Channel, type HelloMsg, type Message } from "../engine/messages.js";
import { encodeMessage } from "../engine/codec.js";
import { formatBytes } from "../workload/size.js";
import { messageOf } from "./errors.js";
import { constants } from "./native.js";
import { parseSessionInfo } from "./plan.js";
import type { Accepted } from "./listener.js";

/** Bytes a candidate's connection may send before it is admitted: a hello is 24. */
export const MAX_CANDIDATE_BYTES = 16 * 1024;
/** Candidates at once (each holds two descriptors and a timer until its deadline). */
export const MAX_CANDIDATES = 16;

export interface Admitted {
  session: string;
  identity: string;
  urgent: Accepted;
  bulk: Accepted;
  memBytes: number;
}

export interface AdmissionOptions {
  setupTimeoutMs: number;
  log: (line: string) => void;
  /** Why no session may start now, or the guest memory still free. */
  /** What a new session may still take: a reason it may not, or the memory left (for a guest of `memBytes`, when known). */
  room: (memBytes?: number) => string | number;
  admit: (a: Admitted) => void;
}

interface Held {
  a: Accepted;
  chunks: Buffer[];
  bytes: number;
  onData: (b: Buffer) => void;
  onClose: () => void;
}

class Candidate {
  readonly conns: Partial<Record<Channel, Held>> = {};
  done = false;
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly id: string,
    readonly identity: string,
  ) {}
}

export class Admission {
  private readonly candidates = new Map<string, Candidate>();

  constructor(private readonly o: AdmissionOptions) {}

  get size(): number {
    return this.candidates.size;
  }

  offer(a: Accepted): void {
    const { session, channel } = a.preamble;
    let c = this.candidates.get(session);
    if (c === undefined) {
      const room = this.o.room();
      if (typeof room === "string") return refuseOne(a, room, this.o.log);
      if (this.candidates.size >= MAX_CANDIDATES) return refuseOne(a, `${MAX_CANDIDATES} other migrations are in their setup; try again`, this.o.log);
      c = new Candidate(session, a.identity);
      const cand = c;
      c.timer = setTimeout(() => this.fail(cand, `the source did not complete its setup (both connections and a hello) within ${this.o.setupTimeoutMs} ms`), this.o.setupTimeoutMs);
      this.candidates.set(session, c);
    }
    if (c.identity !== a.identity) return refuseOne(a, `session ${session.slice(0, 8)} belongs to another peer`, this.o.log);
    if (c.conns[channel] !== undefined) return refuseOne(a, `a second ${channel} connection for session ${session.slice(0, 8)} during its setup`, this.o.log);
    const cand = c;
    const held: Held = {
      a,
      chunks: a.rest.length > 0 ? [a.rest] : [],
      bytes: a.rest.length,
      onData: (b) => {
        held.chunks.push(b);
        held.bytes += b.length;
        this.check(cand);
      },
      onClose: () => this.fail(cand, `its ${channel} connection closed during setup`),
    };
    c.conns[channel] = held;
    a.socket.on("data", held.onData);
    a.socket.once("close", held.onClose);
    this.check(c);
  }

  private check(c: Candidate): void {
    if (c.done) return;
    for (const h of Object.values(c.conns)) {
      if (h.bytes > MAX_CANDIDATE_BYTES) return this.fail(c, `the source sent ${h.bytes} bytes on its ${h.a.preamble.channel} connection before its session formed (at most ${MAX_CANDIDATE_BYTES})`);
    }
    const { urgent, bulk } = c.conns;
    if (urgent === undefined || bulk === undefined) return;
    const d = new FrameDecoder(0);
    for (const b of bulk.chunks) d.write(b);
    let first: Message<Uint8Array> | null;
    try {
      first = d.next();
    } catch (e) {
      return this.fail(c, `the source's first frame is not valid: ${messageOf(e)}`);
    }
    if (first === null) return;
    if (first.type !== "hello") return this.fail(c, `expected a hello first, got ${first.type}`);
    const why = this.refusal(first, bulk.a.preamble.info);
    if (typeof why === "string") return this.fail(c, why, ErrorCode.BadLayout);
    this.settle(c);
    const take = (h: Held): Accepted => ({ ...h.a, rest: Buffer.concat(h.chunks) });
    this.o.admit({ session: c.id, identity: c.identity, urgent: take(urgent), bulk: take(bulk), memBytes: why });
  }

  /** Why this hello and info may not run here, or the guest's memory size if they may. */
  private refusal(h: HelloMsg, infoText: string): string | number {
    let config: string;
    try {
      config = parseSessionInfo(infoText).config;
    } catch (e) {
      return messageOf(e);
    }
    const hostPage = constants().PAGE_SIZE;
    // A guest on hugetlbfs migrates in huge pages (huge_page_size in its config): a size this host keeps a pool of.
    const huge = /^huge_page_size (\d+)$/m.exec(config);
    const unit = huge !== null ? Number(huge[1]) : hostPage;
    if (huge !== null && !hasHugePagePool(unit)) return `the source's guest is on huge pages of ${unit} bytes; this host has no pool of them (ls /sys/kernel/mm/hugepages)`;
    if (h.pageSize !== unit) return `the source proposes pages of ${h.pageSize} bytes; this host's are ${unit}`;
    const mem = /^mem_bytes (\d+)$/m.exec(config);
    const memBytes = h.pageSize * h.pageCount;
    if (mem === null || Number(mem[1]) !== memBytes) return `the source's hello (${h.pageCount} pages of ${h.pageSize} bytes) disagrees with its session info (mem_bytes ${mem?.[1] ?? "missing"})`;
    const ps = /^page_size (\d+)$/m.exec(config);
    if (ps !== null && Number(ps[1]) !== hostPage) return `the source's session info names pages of ${ps[1]} bytes, this host's are ${hostPage}`;
    const room = this.o.room(memBytes);
    if (typeof room === "string") return room;
    if (memBytes > room) return `a guest of ${formatBytes(memBytes)} does not fit: this destination has ${(Math.max(0, room) / 2 ** 20).toFixed(0)} MiB of its --max-memory left`;
    return memBytes;
  }

  /** Lets go of a candidate's sockets (admitted or refused). */
  private settle(c: Candidate): void {
    c.done = true;
    clearTimeout(c.timer);
    this.candidates.delete(c.id);
    for (const h of Object.values(c.conns)) {
      h.a.socket.off("data", h.onData);
      h.a.socket.off("close", h.onClose);
    }
  }

  private fail(c: Candidate, why: string, code: number = ErrorCode.Protocol): void {
    if (c.done) return;
    this.settle(c);
    this.o.log(`session ${c.id.slice(0, 8)} refused: ${why}`);
    for (const h of Object.values(c.conns)) closeWithError(h.a, why, code);
  }

  close(): void {
    for (const c of [...this.candidates.values()]) this.fail(c, "the destination agent is shutting down");
  }
}

function hasHugePagePool(size: number): boolean {
  return Number.isSafeInteger(size) && size > 0 && size <= 2 ** 30 && existsSync(`/sys/kernel/mm/hugepages/hugepages-${size / 1024}kB`);
}

function refuseOne(a: Accepted, why: string, log: (line: string) => void): void {
  log(`connection for session ${a.preamble.session.slice(0, 8)} refused: ${why}`);
  closeWithError(a, why, ErrorCode.Protocol);
}

function closeWithError(a: Accepted, why: string, code: number): void {
  a.socket.end(encodeMessage({ type: "error", code, reason: why }, 0));
  setTimeout(() => a.socket.destroy(), 1000).unref();
}
