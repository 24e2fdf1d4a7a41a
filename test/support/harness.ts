/**
 * An adversarial driver for the engine, for property tests: the test decides
 * every step (which message is delivered next, when the guest writes or
 * faults, when the link breaks), and a trivially correct model says what the
 * destination's memory must hold at the end.
 */
import {
  Destination,
  resolveOptions,
  Source,
  type Channel,
  type DestinationAction,
  type Message,
  type MigrationOptions,
  type SourceAction,
} from "../../src/engine/index.js";
import { encodedSize } from "../../src/engine/codec.js";

export type Op =
  /** The guest writes page `page` (on whichever host runs it). */
  | { op: "write"; page: number }
  /** The guest reads page `page` (a fault at the destination when missing). */
  | { op: "read"; page: number }
  /** Deliver the oldest message of one of the non-empty channel queues (picked by `pick`). */
  | { op: "deliver"; pick: number }
  | { op: "linkDown" }
  | { op: "linkUp" }
  | { op: "cancel" };

interface InFlight {
  msg: Message<number>;
  bytes: number;
}

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
  private queues: Record<"toDest" | "toSrc", Record<Channel, InFlight[]>> = {
    toDest: { urgent: [], bulk: [] },
    toSrc: { urgent: [], bulk: [] },
  };
  /** Where the guest runs: on the source, paused in between, or on the destination. */
  guestAt: "source" | "paused" | "dest" = "source";
  /** Accesses stalled on a missing page at the destination: page → writes to apply when it arrives. */
  readonly stalled = new Map<number, number>();
  linkUp = true;
  srcOutcome: string | null = null;
  dstOutcome: string | null = null;
  refusals = 0;
  now = 0;
  sendsPerPage: Uint32Array;

  constructor(
    readonly pageCount: number,
    options: Partial<MigrationOptions>,
    zeroEvery = 3,
  ) {
    this.opts = resolveOptions({ bulkWindowBytes: 3 * 4096, batchPages: 2, ...options });
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
    this.srcActions(this.source.handle({ kind: "start" }, this.tick()));
  }

  private tick(): number {
    return (this.now += 10);
  }

  apply(op: Op): void {
    switch (op.op) {
      case "write":
      case "read":
        return this.access(op.page % this.pageCount, op.op === "write");
      case "deliver": {
        const busy = this.busyQueues();
        if (busy.length === 0) return;
        const [dir, channel] = busy[op.pick % busy.length];
        return this.deliver(dir === "toDest", channel);
      }
      case "linkDown":
        if (!this.linkUp) return;
        this.linkUp = false;
        for (const dir of ["toDest", "toSrc"] as const) for (const c of ["urgent", "bulk"] as const) this.queues[dir][c] = [];
        this.srcActions(this.source.handle({ kind: "linkDown" }, this.tick()));
        this.dstActions(this.dest.handle({ kind: "linkDown" }, this.tick()));
        return;
      case "linkUp":
        if (this.linkUp) return;
        this.linkUp = true;
        this.srcActions(this.source.handle({ kind: "linkUp" }, this.tick()));
        this.dstActions(this.dest.handle({ kind: "linkUp" }, this.tick()));
        return;
      case "cancel":
        return this.srcActions(this.source.handle({ kind: "cancel", reason: "test" }, this.tick()));
    }
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
        this.dstActions(this.dest.handle({ kind: "fault", page, vcpu: 0 }, this.tick()));
      }
    }
  }

  private writeAtDest(page: number): void {
    const v = this.nextVersion++;
    this.dstMem[page] = v;
    this.expected![page] = v;
  }

  private deliver(toDest: boolean, channel: Channel): void {
    const q = this.queues[toDest ? "toDest" : "toSrc"][channel];
    const m = q.shift();
    if (!m) return;
    if (toDest) {
      this.srcActions(this.source.handle({ kind: "transmitted", channel, bytes: m.bytes }, this.tick()));
      this.dstActions(this.dest.handle({ kind: "message", msg: m.msg, channel }, this.tick()));
    } else {
      this.dstActions(this.dest.handle({ kind: "transmitted", channel, bytes: m.bytes }, this.tick()));
      this.srcActions(this.source.handle({ kind: "message", msg: m.msg }, this.tick()));
    }
  }

  private srcActions(actions: SourceAction<number>[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case "send":
          if (a.msg.type === "pages") for (const e of a.msg.pages) this.sendsPerPage[e.page]++;
          if (this.linkUp) this.queues.toDest[a.channel].push({ msg: a.msg, bytes: encodedSize(a.msg, 4096) });
          break;
        case "pauseGuest":
          this.guestAt = "paused";
          this.expected = Uint32Array.from(this.srcMem);
          this.srcActions(this.source.handle({ kind: "guestPaused", cpuState: new Uint8Array([1, 2, 3]) }, this.tick()));
          break;
        case "finished":
          this.srcOutcome = a.outcome;
          break;
        case "refused":
          this.refusals++;
          break;
        default:
          break;
      }
    }
  }

  private dstActions(actions: DestinationAction<number>[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case "send":
          if (this.linkUp) this.queues.toSrc[a.channel].push({ msg: a.msg, bytes: encodedSize(a.msg, 4096) });
          break;
        case "installPage": {
          this.dstMem[a.page] = a.data ?? 0;
          this.present[a.page] = 1;
          this.wake(a.page);
          break;
        }
        case "wake":
          this.wake(a.page);
          break;
        case "dropPages":
          for (const p of a.pages) this.present[p] = 0;
          break;
        case "resumeGuest":
          if (a.cpuState.join() !== "1,2,3") throw new Error("cpu state corrupted in transit");
          this.guestAt = "dest";
          break;
        case "finished":
          this.dstOutcome = a.outcome;
          break;
        default:
          break;
      }
    }
  }

  private wake(page: number): void {
    const writes = this.stalled.get(page);
    if (writes === undefined) return;
    this.stalled.delete(page);
    for (let i = 0; i < writes; i++) this.writeAtDest(page);
  }

  private busyQueues(): (readonly ["toDest" | "toSrc", Channel])[] {
    return (["toSrc", "toDest"] as const)
      .flatMap((dir) => (["urgent", "bulk"] as const).map((c) => [dir, c] as const))
      .filter(([dir, c]) => this.queues[dir][c].length > 0);
  }

  /** Link up, then deliver everything until nothing moves. */
  drain(maxSteps = 1_000_000): void {
    this.apply({ op: "linkUp" });
    for (let i = 0; i < maxSteps; i++) {
      const busy = this.busyQueues();
      if (busy.length === 0) return;
      this.deliver(busy[0][0] === "toDest", busy[0][1]);
    }
    throw new Error("drain did not settle");
  }

  /** Pages where the destination's memory differs from what it must hold. */
  mismatches(): number[] {
    const bad: number[] = [];
    if (!this.expected) return bad;
    for (let p = 0; p < this.pageCount; p++) if (!this.present[p] || this.dstMem[p] !== this.expected[p]) bad.push(p);
    return bad;
  }
}
