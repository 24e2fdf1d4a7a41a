/**
 * What the destination tells the source once its guest runs: progress
 * reports every PROGRESS_REPORT_MS (steps, metrics, fault latencies since the
 * last one, bulk bytes taken, the switchover's two ends) and, after
 * completion and the guest's remaining steps, the final report with the
 * guest RAM hash.
 */
import { PROGRESS_REPORT_MS } from "../engine/standby.js";
import { logToSend } from "../disruption/guest-log.js";
import type { Destination } from "../engine/destination.js";
import { nowUs, sleep } from "./clock.js";
import { messageOf } from "./errors.js";
import type { GuestProcess } from "./guest-process.js";
import { totalSteps } from "./progress.js";
import type { DestReport } from "./report-msg.js";
import { NativeBulkConn } from "./dataplane-recv.js";
import { destDumpDir, dumpDestination } from "./memory-dump.js";
import type { ThreadCpuAccount } from "./thread-cpu.js";

/** How long a completed session waits for its guest's remaining steps before giving up. */
const AFTER_COMPLETE_WAIT_MS = 30 * 60_000;

/** A bulk connection as the reports see it: the bytes of whole frames it installed. */
interface BulkCounter {
  readonly taken: number;
}

/** The session's state as the reports read it, at the moment they are made. */
export interface SessionNow {
  readonly engine: Destination<Uint8Array> | null;
  readonly guest: GuestProcess | null;
  readonly epoch: number;
  readonly urgentUp: boolean;
  /** Bulk 0 (undefined while down) and this epoch's extra bulk connections. */
  readonly bulk: BulkCounter | undefined;
  readonly extras: readonly (BulkCounter | undefined)[];
}

export interface ReportedSession {
  /** The session id (names its dump file). */
  readonly id: string;
  now(): SessionNow;
  log(line: string): void;
  /** Whether it was written (the urgent connection is up). */
  sendReport(r: DestReport): boolean;
  finish(end: { outcome: "completed" | "failed"; reason: string }): void;
}

export class DestReports {
  /** When the engine took the switchover (asked us to resume): the end of its delivery in the downtime breakdown. */
  switchoverAt: number | null = null;
  /** When the switchover frame reached the session (before its engine took it). */
  frameAt: number | null = null;
  /** When the guest really ran (the engine's resumedAt is when it took the switchover). */
  resumedAt: number | null = null;
  /** This agent's and its guest's threads' CPU (set once the guest runs; sent in the final report). */
  cpu: ThreadCpuAccount | null = null;
  /** The final report went out: the link's end is then the session's. */
  reported = false;
  private stepsAtResume = 0;
  private latenciesSent = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The session ended: no timer may start after this. */
  private stopped = false;

  constructor(private readonly s: ReportedSession) {}

  /** The guest runs now and the source knows it: from its steps at this point, progress reports every PROGRESS_REPORT_MS. */
  async startProgress(g: GuestProcess): Promise<void> {
    this.stepsAtResume = totalSteps(await g.progress());
    // The session may have ended while the guest answered: then no timer may outlive it.
    if (this.stopped) return;
    this.timer = setInterval(() => void this.progress(), PROGRESS_REPORT_MS);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.cpu?.close();
  }

  private async progress(): Promise<void> {
    const { engine: e, guest, urgentUp } = this.s.now();
    if (e === null || guest === null || !urgentUp) return;
    const steps = totalSteps(await guest.progress());
    const all = e.metrics.faultLatenciesUs;
    const metrics = { ...e.metrics, resumedAt: this.resumedAt ?? e.metrics.resumedAt, faultLatenciesUs: all.slice(this.latenciesSent) };
    this.latenciesSent = all.length;
    const { bulk: b, extras, epoch } = this.s.now();
    // Both kinds of connection count the bytes of whole frames installed (the native receiver's, or Node's handler's).
    const extra = Array.from(extras, (x) => x?.taken ?? 0);
    const bulkTaken = b === undefined ? undefined : { epoch, bytes: b.taken, ...(extra.length > 0 ? { extra } : {}) };
    // The engine's resumedAt is when it took the switchover; ours is when the guest really ran.
    const switchover = this.switchoverAt !== null && this.resumedAt !== null ? { arrivedAt: this.switchoverAt, resumedAt: this.resumedAt, ...(this.frameAt !== null ? { frameAt: this.frameAt } : {}) } : undefined;
    this.s.sendReport({ kind: "progress", metrics, steps, at: nowUs(), bulkTaken, switchover });
  }

  /** PPSIM_DEST_DUMP=DIR (a stress bench's post-mortem, memory-dump.ts): the guest's RAM, after its last step, into DIR. */
  private dump(g: GuestProcess, hash: string): void {
    const dir = destDumpDir(hash);
    if (dir === null) return;
    try {
      const d = dumpDestination(dir, this.s.id, g.memfd, g.layout.memBytes, g.layout.pageSize);
      this.s.log(`guest RAM dumped to ${d.path} (${d.pages} non-zero pages)`);
    } catch (e) {
      this.s.log(`guest RAM not dumped: ${messageOf(e)}`);
    }
  }

  /** Every page is present: waits (bounded) for the guest's remaining steps, then sends the final report and ends the session. */
  async afterComplete(): Promise<void> {
    const { guest: g, engine: e } = this.s.now();
    if (g === null || e === null) return;
    try {
      const atComplete = await g.progress();
      this.s.log(`every page present; the guest runs its remaining steps`);
      const { bulk, extras } = this.s.now();
      for (const b of [bulk, ...extras]) if (b instanceof NativeBulkConn) b.logStats();
      // The peer chose the steps; the wait for them is bounded all the same.
      const deadline = Date.now() + AFTER_COMPLETE_WAIT_MS;
      for (let p = atComplete; ; p = await g.progress()) {
        if (p.vcpus.every((v) => v.finished)) break;
        if (Date.now() > deadline) throw new Error(`the guest did not finish its steps within ${AFTER_COMPLETE_WAIT_MS / 60_000} min of completion`);
        await sleep(20);
      }
      this.stop();
      await this.progress();
      const hash = await g.hash();
      this.dump(g, hash);
      // At the end every vCPU thread has run (at completion a starved one may not have yet): its thread id is known.
      const end = await g.progress();
      const atEnd = totalSteps(end);
      // The guest's per-vCPU progress log (it started at the resume), for the source's disruption figures.
      const log = await g.progressLog().catch((err: unknown) => (this.s.log(`no progress log from the guest: ${messageOf(err)}`), undefined));
      const progressLog = log === undefined ? undefined : logToSend(log, log.originUs, e.metrics.completedAt ?? Infinity);
      const metrics = { ...e.metrics, resumedAt: this.resumedAt ?? e.metrics.resumedAt };
      const finishedBeforeComplete = atComplete.vcpus.some((v) => v.finished);
      const sent = this.s.sendReport({ kind: "final", metrics, hash, steps: { atResume: this.stepsAtResume, atComplete: totalSteps(atComplete), atEnd }, finishedBeforeComplete, progressLog, vcpuTids: end.vcpus.map((v) => v.tid), guestStamps: log?.stamps, cpuThreads: this.cpu?.result() });
      if (!sent) {
        this.s.log(`completed; guest RAM hash ${hash}, not sent: the link to the source is down`);
        return this.s.finish({ outcome: "completed", reason: "completed; the report could not be sent (link down)" });
      }
      this.reported = true;
      this.s.log(`completed; guest RAM hash ${hash} sent to the source`);
      // The source closes the link once it has the report; do not wait for ever.
      setTimeout(() => this.s.finish({ outcome: "completed", reason: "report sent" }), 30_000).unref();
    } catch (err) {
      this.s.sendReport({ kind: "failed", reason: messageOf(err) });
      this.s.finish({ outcome: "failed", reason: `after completion: ${messageOf(err)}` });
    }
  }
}
