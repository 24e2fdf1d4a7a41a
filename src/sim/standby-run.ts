/**
 * The standby copy's side of a simulated run (issue 16): the storage's
 * completions and reads as agenda events, the destination's progress reports
 * (which pages it holds) on their way to the source, the source host's
 * death, and the report's standby section. The storage itself is
 * src/sim/standby.ts; the run loop (simulation.ts) hands these events here.
 */
import { Bitmap } from "../engine/bitmap.js";
import type { Destination } from "../engine/destination.js";
import type { StandbyReport } from "../engine/report.js";
import type { Source } from "../engine/source.js";
import { PROGRESS_REPORT_MS, standbyReport, type StandbyOp } from "../engine/standby.js";
import type { EventQueue } from "./event-queue.js";
import type { Link } from "./link.js";
import type { Msg, SimConfig, SimEvent } from "./sim-config.js";
import type { SimStandby } from "./standby.js";

type StandbyEvent = Extract<SimEvent, { type: "standbyDurable" | "holdsReport" | "holdsArrive" | "standbyRead" | "sourceDies" }>;

/** What of the run the standby side reads and acts on. */
export interface StandbyRunParts {
  queue: EventQueue<SimEvent>;
  link: Link<Msg>;
  source: Source<number>;
  dest: Destination<number>;
  /** A page of the source guest's memory (what a storage write reads). */
  sourcePage(page: number): number;
  pauseSourceGuest(now: number): void;
  stopSourceTimer(): void;
  driveSource(): void;
  driveDestination(): void;
  finish(outcome: "completed" | "failed", reason: string): void;
}

export class StandbyRun {
  /** When the source host died (null while it lives): its engine runs no more. */
  diedAt: number | null = null;
  /** Pages the destination has already reported holding (its progress reports, standby runs only). */
  private readonly reportedHeld: Bitmap | null;

  constructor(
    /** What the run was given for the standby copy and the source's death, for the report (and `ppsim rerun`). */
    private readonly setup: Pick<SimConfig, "standby" | "sourceDiesAtMs">,
    private readonly storage: SimStandby | null,
    pageCount: number,
    private readonly parts: StandbyRunParts,
  ) {
    this.reportedHeld = storage === null ? null : new Bitmap(pageCount);
  }

  /** Puts the first progress report and the source's death on the agenda. */
  schedule(startUs: number): void {
    if (this.storage !== null) this.parts.queue.push(startUs + PROGRESS_REPORT_MS * 1000, { type: "holdsReport" });
    const dies = this.setup.sourceDiesAtMs;
    if (dies === undefined) return;
    if (!(dies >= 0)) throw new Error(`sourceDiesAtMs must be ≥ 0, got ${dies}`);
    this.parts.queue.push(startUs + dies * 1000, { type: "sourceDies" });
  }

  get hasRoom(): boolean {
    return this.storage?.hasRoom ?? false;
  }

  /** The source's engine writes to the copy: the storage says when it is durable. */
  write(op: StandbyOp, now: number): void {
    const at = (this.storage as SimStandby).write(op, now, this.parts.sourcePage);
    this.parts.queue.push(at, { type: "standbyDurable" });
  }

  /** The destination's fill reads the pages it misses back from the copy. */
  read(missing: Uint32Array, now: number): void {
    const r = (this.storage as SimStandby).read(missing, now);
    this.parts.queue.push(r.at, { type: "standbyRead", pages: r.pages });
  }

  onEvent(ev: StandbyEvent, now: number): void {
    const { source, dest } = this.parts;
    switch (ev.type) {
      case "standbyDurable":
        for (let seq = this.storage?.complete(now) ?? null; seq !== null; seq = this.storage?.complete(now) ?? null) {
          source.handle({ kind: "standbyWritten", seq }, now);
        }
        this.parts.driveSource();
        return;
      case "holdsReport":
        return this.holdsReport(now);
      case "holdsArrive":
        if (this.diedAt !== null) return;
        source.handle({ kind: "destinationHolds", pages: ev.pages }, now);
        this.parts.driveSource();
        return;
      case "standbyRead":
        dest.handle({ kind: "standbyPages", batch: { pages: Uint32Array.from(ev.pages, (e) => e.page), data: ev.pages.map((e) => e.data) } }, now);
        dest.handle({ kind: "standbyEnd" }, now);
        this.parts.driveDestination();
        return;
      case "sourceDies":
        return this.sourceDies(now);
    }
  }

  /** The report's standby section, when the run kept a copy. */
  extras(startUs: number): { standby?: StandbyReport; source_dies_at_ms?: number } {
    const { standby: spec, sourceDiesAtMs } = this.setup;
    const dies = sourceDiesAtMs === undefined ? {} : { source_dies_at_ms: sourceDiesAtMs };
    const { source, dest } = this.parts;
    const f = source.standbyFigures;
    if (f === null || spec === undefined) return dies;
    const storage = { write_bytes_s: spec.writeBytesPerSec, read_bytes_s: spec.readBytesPerSec ?? null, latency_us: spec.latencyUs };
    return { standby: { ...standbyReport(f, startUs, dest.metrics.completedAt, dest.standbyFill, this.diedAt), storage }, ...dies };
  }

  /**
   * The destination's progress report, as the real one every
   * PROGRESS_REPORT_MS: once it took the switchover (its pages are final),
   * the pages it holds reach the source one latency later, over a link that
   * is up. Reports stop once the copy protects the VM or the run is over.
   */
  private holdsReport(now: number): void {
    const { source, dest, link, queue } = this.parts;
    const known = this.reportedHeld as Bitmap;
    if (dest.finished || this.diedAt !== null || source.standbyFigures?.protectedAt != null) return;
    if (dest.metrics.resumedAt !== null && link.isUp) {
      const pages = dest.presentBeyond(known);
      for (const p of pages) known.set(p);
      if (pages.length > 0) queue.push(now + link.spec.latencyUs, { type: "holdsArrive", pages });
    }
    queue.push(now + PROGRESS_REPORT_MS * 1000, { type: "holdsReport" });
  }

  /** The source host dies: its engine stops for good, its unfinished storage writes with it, and the link goes down. */
  private sourceDies(now: number): void {
    if (this.diedAt !== null) return;
    const { dest, link } = this.parts;
    this.diedAt = now;
    this.storage?.sourceDied();
    this.parts.pauseSourceGuest(now);
    this.parts.stopSourceTimer();
    if (link.isUp) link.goDown(now);
    dest.handle({ kind: "linkDown" }, now);
    this.parts.driveDestination();
    // Before the destination's guest ran, nothing runs the VM any more.
    if (dest.metrics.resumedAt === null) this.parts.finish("failed", "the source died before the destination's guest ran: the VM is lost with it");
    else if (dest.metrics.completedAt !== null) this.parts.finish("completed", "the source died after the destination had every page");
  }
}
