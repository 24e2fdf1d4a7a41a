/**
 * An adversarial driver for the engine, for property tests (in the spirit of
 * TigerBeetle's VOPR, with fast-check's shrinking): the test decides every
 * step — which message is delivered next, when the guest writes or faults,
 * when the source guest's pause completes, when time moves and timers fire,
 * when the link breaks — and a trivially correct model says what the
 * destination's memory must hold. Invariants are checked after every step,
 * not only at the end (`violations`).
 *
 * Lanes have a window of `window` messages: the harness pulls from an engine
 * only while a lane holds fewer, as a socket takes writes while it has room.
 */
import {
  CHANNELS,
  Destination,
  driveDestination,
  driveSource,
  resolveOptions,
  Source,
  type Channel,
  type DestinationEffects,
  type Message,
  type MigrationOptions,
  type SourceEffects,
} from "../../src/engine/index.js";
import { encodedSize } from "../../src/engine/codec.js";
import { entriesOf } from "./pages.js";

export type Op =
  /** The guest writes page `page` (on whichever host runs it). */
  | { op: "write"; page: number }
  /** The guest reads page `page` (a fault at the destination when missing). */
  | { op: "read"; page: number }
  /** Deliver the oldest message of one of the non-empty lanes (picked by `pick`). */
  | { op: "deliver"; pick: number }
  | { op: "linkDown" }
  | { op: "linkUp" }
  | { op: "cancel" }
  /** The source guest's pause, if one was asked for, completes now. */
  | { op: "pauseDone" }
  /** The destination guest's resume, if one was asked for, completes now (it runs). */
  | { op: "resumeDone" }
  /** The destination guest's resume, if one was asked for, fails (the guest never runs). */
  | { op: "resumeFail" }
  /** The destination decodes garbage from the source (it refuses, or reports and carries on once its guest runs). */
  | { op: "destMalformed" }
  /** Time moves on by `us`; timers that fall due fire. */
  | { op: "wait"; us: number }
  /** Time jumps to the next engine deadline, which fires. */
  | { op: "timer" };

interface InFlight {
  msg: Message<number>;
  bytes: number;
}

export type Dir = "toDest" | "toSrc";

export class Harness {
  readonly opts: MigrationOptions;
  readonly source: Source<number>;
  readonly dest: Destination<number>;
  /** Source guest memory: page versions, 0 = zero page. */
  readonly srcMem: Uint32Array;
  readonly dstMem: Uint32Array;
  readonly present: Uint8Array;
  /** What the destination must hold at the end (source at pause + writes made at the destination). */
  expected: Uint32Array | null = null;
  private nextVersion: number;
  private dirty = new Set<number>();
  private lanes: Record<Dir, Record<Channel, InFlight[]>> = {
    toDest: { urgent: [], bulk: [] },
    toSrc: { urgent: [], bulk: [] },
  };
  /**
   * Where the guest runs: on the source, paused in between, being started at
   * the destination (it may already run), or on the destination.
   */
  guestAt: "source" | "pausing" | "paused" | "resuming" | "dest" = "source";
  /** Whether the destination guest ever ran (its resume completed). */
  destRan = false;
  /** Accesses stalled on a missing page at the destination: page → writes to apply when it arrives. */
  readonly stalled = new Map<number, number>();
  linkUp = true;
  srcOutcome: string | null = null;
  dstOutcome: string | null = null;
  refusals = 0;
  now = 0;
  readonly sendsPerPage: Uint32Array;
  /** What each side sent, in order: lane, message type, pages. */
  readonly sent: string[] = [];
  /** Invariant violations seen after any step (a correct engine leaves this empty). */
  readonly violations: string[] = [];
  /** Page requests the destination sent in this link epoch and that were not yet answered, per page. */
  private readonly outstanding = new Map<number, number>();
  private srcTimer: number | null = null;
  private dstTimer: number | null = null;
  private readonly srcFx: SourceEffects<number>;
  private readonly dstFx: DestinationEffects<number>;
  /** Bulk bytes sent by the source / taken by the destination in this epoch's accounting. */
  private bulkOut = 0;
  private bulkIn = 0;
  /** False from a link break until the destination's recover resets both counts. */
  private countsComparable = true;

  constructor(
    readonly pageCount: number,
    options: Partial<MigrationOptions>,
    zeroEvery = 3,
    readonly window = 3,
    /** Where the clock starts: the real driver's clock is wall time in µs (~1.8e15), the simulator's starts at 0. */
    clockOrigin = 0,
  ) {
    this.now = clockOrigin;
    this.opts = resolveOptions({ laneWindowBytes: 3 * 4096, batchPages: 2, ...options });
    this.srcMem = new Uint32Array(pageCount);
    for (let p = 0; p < pageCount; p++) this.srcMem[p] = p % zeroEvery === 0 ? 0 : p + 1;
    this.nextVersion = pageCount + 1;
    this.dstMem = new Uint32Array(pageCount);
    this.present = new Uint8Array(pageCount);
    this.sendsPerPage = new Uint32Array(pageCount);
    const layout = { pageSize: 4096, pageCount };
    this.source = new Source<number>(this.opts, layout, {
      readPage: (p) => (this.srcMem[p] === 0 ? null : this.srcMem[p]),
      collectDirty: () => {
        const d = Uint32Array.from(this.dirty);
        this.dirty.clear();
        return d;
      },
    });
    this.dest = new Destination<number>(this.opts, { expect: layout });
    this.srcFx = this.sourceEffects();
    this.dstFx = this.destinationEffects();
    this.source.start(this.tick());
    this.driveBoth();
  }

  private tick(): number {
    return (this.now += 10);
  }

  apply(op: Op): void {
    this.step(op);
    this.driveBoth();
    this.checkInvariants();
  }

  private step(op: Op): void {
    switch (op.op) {
      case "write":
      case "read":
        return this.access(op.page % this.pageCount, op.op === "write");
      case "deliver": {
        const busy = this.busyLanes();
        if (busy.length === 0) return;
        const [dir, channel] = busy[op.pick % busy.length];
        return this.deliver(dir, channel);
      }
      case "linkDown":
        if (!this.linkUp) return;
        this.linkUp = false;
        for (const dir of ["toDest", "toSrc"] as const) for (const c of CHANNELS) this.lanes[dir][c] = [];
        this.outstanding.clear();
        this.countsComparable = false;
        this.source.handle({ kind: "linkDown" }, this.tick());
        this.dest.handle({ kind: "linkDown" }, this.now);
        return;
      case "linkUp":
        if (this.linkUp) return;
        this.linkUp = true;
        this.source.handle({ kind: "linkUp" }, this.tick());
        this.dest.handle({ kind: "linkUp" }, this.now);
        return;
      case "cancel": {
        const r = this.source.cancel("test", this.tick());
        if (!r.ok) this.refusals++;
        return;
      }
      case "pauseDone":
        if (this.guestAt !== "pausing") return;
        this.guestAt = "paused";
        this.expected = Uint32Array.from(this.srcMem);
        this.source.handle({ kind: "guestPaused", cpuState: new Uint8Array([1, 2, 3]) }, this.tick());
        return;
      case "resumeDone":
        if (this.guestAt !== "resuming") return;
        this.guestAt = "dest";
        this.destRan = true;
        this.dest.handle({ kind: "guestResumed" }, this.tick());
        return;
      case "resumeFail":
        if (this.guestAt !== "resuming") return;
        this.guestAt = "paused";
        this.dest.handle({ kind: "resumeFailed", reason: "test" }, this.tick());
        return;
      case "destMalformed":
        this.dest.handle({ kind: "malformed", reason: "test" }, this.tick());
        return;
      case "wait":
        this.now += op.us;
        return this.fireTimers();
      case "timer": {
        const next = [this.srcTimer, this.dstTimer].filter((t): t is number => t !== null);
        if (next.length === 0) return;
        this.now = Math.max(this.now, Math.min(...next));
        return this.fireTimers();
      }
    }
  }

  private fireTimers(): void {
    if (this.srcTimer !== null && this.srcTimer <= this.now) this.source.handleTimeout(this.now);
    if (this.dstTimer !== null && this.dstTimer <= this.now) this.dest.handleTimeout(this.now);
  }

  private access(page: number, write: boolean): void {
    if (this.guestAt === "source") {
      if (write) {
        this.srcMem[page] = this.nextVersion++;
        this.dirty.add(page);
      }
    } else if (this.guestAt === "dest") {
      if (this.present[page]) {
        if (write) this.writeAtDest(page);
      } else {
        this.stalled.set(page, (this.stalled.get(page) ?? 0) + (write ? 1 : 0));
        this.dest.handle({ kind: "fault", page, vcpu: 0 }, this.tick());
      }
    }
  }

  private writeAtDest(page: number): void {
    const v = this.nextVersion++;
    this.dstMem[page] = v;
    this.expected![page] = v;
  }

  private deliver(dir: Dir, channel: Channel): void {
    const m = this.lanes[dir][channel].shift();
    if (!m) return;
    if (dir === "toDest") {
      if (channel === "bulk") this.bulkIn += m.bytes;
      this.dest.handle({ kind: "message", msg: m.msg, channel }, this.tick());
    } else {
      this.source.handle({ kind: "message", msg: m.msg }, this.tick());
    }
  }

  private driveBoth(): void {
    // Either side's actions may feed the other (a pause the test completes later, pages the destination installs).
    driveSource(this.source, this.srcFx, this.now);
    driveDestination(this.dest, this.dstFx, this.now);
  }

  private sourceEffects(): SourceEffects<number> {
    return {
      canSend: (c) => this.linkUp && this.lanes.toDest[c].length < this.window,
      send: (c, msg) => {
        const bytes = encodedSize(msg, 4096);
        if (msg.type === "pages") {
          for (const page of msg.pages) {
            this.sendsPerPage[page]++;
            this.outstanding.delete(page);
          }
        }
        if (c === "bulk") this.bulkOut += bytes;
        this.sent.push(msg.type === "pages" ? `${c} pages ${msg.pages.join(",")}` : msg.type === "switchover" ? `${c} switchover stale ${msg.stale.join(",")}` : `${c} ${msg.type}`);
        this.lanes.toDest[c].push({ msg, bytes });
      },
      setTimer: (at) => (this.srcTimer = at),
      pauseGuest: () => {
        if (this.guestAt === "source") this.guestAt = "pausing";
      },
      resumeGuest: () => {
        if (this.guestAt === "resuming" || this.guestAt === "dest") this.violations.push(`the source resumed its guest while the destination's is ${this.guestAt === "dest" ? "running" : "starting"}`);
        if (this.guestAt === "pausing" || this.guestAt === "paused") {
          this.guestAt = "source";
          this.expected = null;
        }
      },
      throttleGuest: () => undefined,
      releasePages: () => undefined,
      finished: (end) => (this.srcOutcome = end.outcome),
    };
  }

  private destinationEffects(): DestinationEffects<number> {
    return {
      canSend: (c) => this.linkUp && this.lanes.toSrc[c].length < this.window,
      send: (c, msg) => {
        this.sent.push(`from the destination: ${c} ${msg.type === "pageRequest" ? `pageRequest ${msg.page}` : msg.type}`);
        if (msg.type === "pageRequest") {
          const n = (this.outstanding.get(msg.page) ?? 0) + 1;
          this.outstanding.set(msg.page, n);
          if (n > 1) this.violations.push(`two requests outstanding for page ${msg.page}`);
        }
        if (msg.type === "recover") {
          this.bulkOut = this.bulkIn = msg.bulkBytes;
          this.countsComparable = true;
        }
        this.lanes.toSrc[c].push({ msg, bytes: encodedSize(msg, 4096) });
      },
      setTimer: (at) => (this.dstTimer = at),
      installPages: (batch) => {
        for (const { page, data } of entriesOf(batch)) {
          if (this.guestAt === "dest" && this.present[page]) this.violations.push(`page ${page} installed while present and the guest runs`);
          this.dstMem[page] = data ?? 0;
          this.present[page] = 1;
          this.wake(page);
        }
      },
      wake: (page) => this.wake(page),
      dropPages: (pages) => {
        for (const p of pages) this.present[p] = 0;
      },
      resumeGuest: (cpuState) => {
        if (cpuState.join() !== "1,2,3") this.violations.push("cpu state corrupted in transit");
        if (this.guestAt === "source" || this.guestAt === "pausing") this.violations.push("the destination resumed its guest while the source's runs");
        this.guestAt = "resuming";
      },
      stopFaultHandling: () => undefined,
      finished: (end) => (this.dstOutcome = end.outcome),
    };
  }

  private wake(page: number): void {
    const writes = this.stalled.get(page);
    if (writes === undefined) return;
    this.stalled.delete(page);
    for (let i = 0; i < writes; i++) this.writeAtDest(page);
  }

  private checkInvariants(): void {
    // Once the destination guest runs, every page it can see is current.
    if (this.guestAt === "dest" && this.expected !== null) {
      for (let p = 0; p < this.pageCount; p++) {
        if (this.present[p] && this.dstMem[p] !== this.expected[p]) {
          this.violations.push(`page ${p} is stale at the running destination (${this.dstMem[p]} ≠ ${this.expected[p]})`);
          break;
        }
      }
    }
    // The destination never counts more bulk bytes than the source sent; with nothing in flight, exactly as many.
    if (!this.countsComparable) return;
    if (this.bulkIn > this.bulkOut) this.violations.push(`destination took ${this.bulkIn} bulk bytes, source sent ${this.bulkOut}`);
    if (this.linkUp && this.lanes.toDest.bulk.length === 0 && this.bulkIn !== this.bulkOut) {
      this.violations.push(`bulk bytes disagree with nothing in flight: sent ${this.bulkOut}, taken ${this.bulkIn}`);
    }
  }

  private busyLanes(): (readonly [Dir, Channel])[] {
    return (["toSrc", "toDest"] as const).flatMap((dir) => CHANNELS.map((c) => [dir, c] as const)).filter(([dir, c]) => this.lanes[dir][c].length > 0);
  }

  /** Link up, the pause and resume done, then deliver everything (firing timers when idle) until nothing moves. */
  drain(maxSteps = 1_000_000): void {
    this.apply({ op: "linkUp" });
    for (let i = 0; i < maxSteps; i++) {
      if (this.guestAt === "pausing") {
        this.apply({ op: "pauseDone" });
        continue;
      }
      if (this.guestAt === "resuming") {
        this.apply({ op: "resumeDone" });
        continue;
      }
      const busy = this.busyLanes();
      if (busy.length > 0) {
        this.deliver(busy[0][0], busy[0][1]);
        this.driveBoth();
        this.checkInvariants();
        continue;
      }
      // Idle: only a pacing timer can move things on (the others end the run, which a drain must not force).
      const pace = this.srcTimer;
      if (pace === null || this.source.finished || this.srcOutcome !== null) return;
      if (!this.source.isPacing) return;
      this.now = Math.max(this.now, pace);
      this.source.handleTimeout(this.now);
      this.driveBoth();
    }
    throw new Error("drain did not settle");
  }

  /** Whether a message of this type is on its way (toDest: source → destination). */
  inFlight(dir: Dir, type: Message<number>["type"]): boolean {
    return CHANNELS.some((c) => this.lanes[dir][c].some((m) => m.msg.type === type));
  }

  /** Delivers the oldest message going `dir` (urgent lane first); whether there was one. */
  deliverFrom(dir: Dir): boolean {
    const channel = CHANNELS.find((c) => this.lanes[dir][c].length > 0);
    if (channel === undefined) return false;
    this.deliver(dir, channel);
    this.driveBoth();
    this.checkInvariants();
    return true;
  }

  /** Pages where the destination's memory differs from what it must hold. */
  mismatches(): number[] {
    const bad: number[] = [];
    if (!this.expected) return bad;
    for (let p = 0; p < this.pageCount; p++) if (!this.present[p] || this.dstMem[p] !== this.expected[p]) bad.push(p);
    return bad;
  }
}
