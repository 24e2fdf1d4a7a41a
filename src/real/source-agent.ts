/**
 * The source agent: spawns the source guest from the workload, lets it run
 * its warmup (measuring its unmigrated rate), migrates it to a destination
 * agent over TCP, and puts the report together (source-report.ts): its own
 * engine's figures, the destination's (sent at the end), and the
 * verification — the destination's final RAM hash against that of an
 * unmigrated run of the same workload, seed and steps (reference-run.ts),
 * made here once the migration is over.
 */
import { checkRealtimeKnobs } from "./lane-priority.js";
import { raiseLoopPriority } from "./loop-priority.js";
import { EndCause } from "../engine/events.js";
import { resolveOptions, type MigrationOptions } from "../engine/options.js";
import { buildSnapshot } from "../engine/metrics.js";
import type { Mode } from "../engine/messages.js";
import type { Report, Snapshot, SwitchoverBreakdown } from "../engine/report.js";
import { toGuestConfig } from "../workload/guest-config.js";
import type { Workload } from "../workload/types.js";
import { nowUs, sleep } from "./clock.js";
import { messageOf, RealError } from "./errors.js";
import { GuestProcess, type GuestLogWithStamps } from "./guest-process.js";
import { startingVcpus } from "./guest-spawn.js";
import { chooseSteps, type SessionInfo } from "./plan.js";
import { ProgressWindow, totalSteps, workSoFar } from "./progress.js";
import type { FinalReport } from "./report-msg.js";
import { SourceDriver, type DriverEnd } from "./source-driver.js";
import { DEFAULT_BULK_CONNECTIONS, DEFAULT_RECONNECT, SourceLink, type ReconnectPolicy } from "./source-link.js";
import { SourceStandby } from "./standby-source.js";
import { unmigratedHash } from "./reference-run.js";
import { sourceReport, switchoverBreakdown, type SourceMemory } from "./source-report.js";
import type { Security } from "./tls.js";

export interface SourceAgentOptions {
  /** Already at the chosen memory size. */
  workload: Workload;
  mode: Mode;
  seed: number;
  /** Steps per vCPU; default chosen from the workload (plan.ts). */
  steps?: number;
  peer: { host: string; port: number };
  options?: Partial<MigrationOptions>;
  reconnect?: ReconnectPolicy;
  /** How long to wait for the destination's final report after completion (default: long enough for the guest's remaining steps). */
  reportTimeoutMs?: number;
  breakLinkAfterPostcopyBytes?: number;
  log?: (line: string) => void;
  /** Issue 15: TLS (PSK or x509) for every connection; default insecure. */
  security?: Security;
  /** What the migration runs over, recorded in the report (default: the peer's address). */
  link?: { kind: "loopback" | "netns" | "peer"; text: string };
  /** Issue 16: keep a standby copy of guest memory in this directory (storage the destination reaches too). */
  standby?: { dir: string; sync?: boolean; /** The copy thread's nice value (default COPY_THREAD_NICE). */ nice?: number };
  /** Issue 9: bulk connections for post-copy pages once the destination runs (default DEFAULT_BULK_CONNECTIONS). */
  connections?: number;
}

/**
 * Defaults for the real back end, given to the simulator too wherever it is
 * set beside a real run. The lane window is the bulk socket's kernel send
 * buffer, and this process refills it once per event-loop turn: 64 KiB (the
 * engine's default) drains in ~30 µs on loopback, far less than a turn, and
 * held background throughput to 72–96 MiB/s against 610–660 MiB/s with
 * 256 KiB (1 GiB post-copy, 3 runs each, same machine, same hour;
 * docs/engine.md). Faults pay for it: a page already in the window answers
 * its fault after it.
 */
export const REAL_DEFAULTS: Partial<MigrationOptions> = { laneWindowBytes: 256 * 1024 };

const POLL_MS = 200;

export class SourceAgent {
  readonly steps: number;
  readonly options: MigrationOptions;
  private driver: SourceDriver | null = null;
  private link: SourceLink | null = null;
  private report: Report | null = null;
  private window: ProgressWindow;
  private stepsAtStart = 0;
  private baseline = 0;
  private sourceLog: GuestLogWithStamps | null = null;
  private poller: NodeJS.Timeout | undefined;
  private readonly log: (line: string) => void;
  private peer: { host: string; port: number };
  private closed = false;
  private standby: SourceStandby | null = null;

  private constructor(
    readonly guest: GuestProcess,
    private readonly o: SourceAgentOptions,
    steps: number,
  ) {
    this.steps = steps;
    this.options = resolveOptions({ ...REAL_DEFAULTS, ...o.options, mode: o.mode });
    this.window = new ProgressWindow(0);
    this.log = o.log ?? (() => undefined);
    this.peer = o.peer;
  }

  /** Spawns the source guest and starts it; `migrate()` then runs the warmup and the migration. */
  static async start(o: SourceAgentOptions): Promise<SourceAgent> {
    const steps = o.steps ?? chooseSteps(o.workload);
    checkRealtimeKnobs(); // a bad real-time knob is refused here, before anything starts
    raiseLoopPriority(o.log); // before the guest: its control thread inherits it
    let guest: GuestProcess;
    try {
      guest = await GuestProcess.spawn({ role: "source", config: toGuestConfig(o.workload, o.seed), steps, noWp: o.mode === "postcopy" });
    } catch (e) {
      throw new RealError(`cannot start the source guest: ${messageOf(e)}`);
    }
    const agent = new SourceAgent(guest, o, steps);
    try {
      await startingVcpus(guest, () => guest.run());
    } catch (e) {
      guest.close();
      throw new RealError(`cannot run the source guest: ${messageOf(e)}`);
    }
    return agent;
  }

  get done(): boolean {
    return this.report !== null;
  }

  /** Where the downtime went, ms (issue 9; source-report.ts). */
  get switchoverBreakdown(): SwitchoverBreakdown | null {
    return switchoverBreakdown(this.driver, this.sourceLog, this.o.workload.vcpus);
  }

  /** The source guest's memory (memfd bytes) over the migration, and how many pages were punched as they left (issue 9). */
  get sourceMemory(): SourceMemory | null {
    const r = this.driver?.release;
    return r === undefined ? null : { samples: r.samples, peakBytes: r.peakBytes, punchedPages: r.punchedPages };
  }

  snapshot(): Snapshot {
    const now = nowUs();
    const d = this.driver;
    if (d === null) {
      // Warmup: the engine has not started yet.
      return {
        backend: "real", mode: this.o.mode, workload: this.o.workload.name, phase: "setup", elapsedMs: 0, round: 0,
        pageCount: this.guest.layout.memBytes / this.guest.layout.pageSize, present: { precopy: 0, background: 0, demand: 0 }, channelBytes: { urgent: 0, bulk: 0 },
        demandFaults: 0, faultLatencyUs: null, faultHistogram: [], guestProgress: 1, throttle: 0, downtimeMs: null,
        report: this.report, notice: "warming up the source guest",
      };
    }
    return buildSnapshot(d.engine.metrics, d.remote, {
      backend: "real",
      workload: this.o.workload.name,
      now,
      guestProgress: this.window.recent(now),
      guestSoFar: d.engine.metrics.startedAt === null ? undefined : workSoFar(this.window.latest, d.engine.metrics.startedAt, this.stepsAtStart, this.baseline, this.o.workload.vcpus),
      report: this.report,
      notice: d.notice,
    });
  }

  /**
   * Whether the source guest runs in this agent: before and during pre-copy,
   * and after a migration that failed before the destination's guest ran.
   * Then `migrate(peer)` may try another destination with the same guest.
   */
  get guestRunsHere(): boolean {
    const m = this.driver?.engine.metrics;
    if (m === undefined) return !this.closed;
    if (this.closed || m.outcome === "completed") return false;
    return m.pausedAt === null || m.cause === EndCause.ResumedAtSource;
  }

  /** null if cancelled, else why not (past switchover, or not started). */
  cancel(): string | null {
    if (this.driver === null) return "the migration has not started yet (warmup)";
    return this.driver.cancel("operator quit");
  }

  /**
   * Warmup, then the migration; resolves with the report (never throws: every
   * failure is a failed report). After a failure that left the guest running
   * here (`guestRunsHere`), it may be called again, to another `peer`.
   */
  async migrate(peer: { host: string; port: number } = this.o.peer): Promise<Report> {
    if (!this.guestRunsHere) throw new RealError("the source guest no longer runs in this agent: nothing to migrate");
    this.stopPolling();
    this.driver?.close();
    await this.link?.close();
    this.driver = null;
    this.report = null;
    this.sourceLog = null;
    this.peer = peer;
    const w = this.o.workload;
    const info: SessionInfo = { workload: w.name, config: toGuestConfig(w, this.o.seed), seed: this.o.seed, steps: this.steps, mode: this.o.mode };
    const holder: { driver?: SourceDriver } = {};
    const link = new SourceLink(
      peer.host,
      peer.port,
      JSON.stringify(info),
      {
        message: (m) => holder.driver?.onMessage(m),
        writable: () => holder.driver?.onWritable(),
        malformed: (r) => holder.driver?.onMalformed(r),
        down: (r) => holder.driver?.onLinkDown(r),
        note: (l) => this.log(l),
        served: (pages, zero, bytes) => holder.driver?.onServed(pages, zero, bytes),
      },
      this.o.reconnect ?? DEFAULT_RECONNECT,
      this.options.laneWindowBytes,
      this.o.security,
      { pageSize: this.guest.layout.pageSize, pageCount: this.guest.layout.memBytes / this.guest.layout.pageSize },
      // Huge pages too: the native sender preads them from the hugetlbfs memfd (source-port.ts says which hold data).
      { memfd: this.guest.memfd, pageSize: this.guest.layout.pageSize, pageCount: this.guest.layout.memBytes / this.guest.layout.pageSize, rounds: this.o.mode !== "postcopy" },
      this.o.connections ?? DEFAULT_BULK_CONNECTIONS,
    );
    this.link = link;
    let standby: SourceStandby | undefined;
    let standbyError: string | null = null;
    try {
      standby = await this.openStandby(link.session);
    } catch (e) {
      standbyError = `cannot create the standby copy in ${this.o.standby?.dir ?? "?"}: ${messageOf(e)}; the source guest keeps running`;
    }
    const driver = new SourceDriver(this.guest, link, this.options, {
      breakLinkAfterPostcopyBytes: this.o.breakLinkAfterPostcopyBytes,
      log: this.log,
      standby,
    });
    holder.driver = driver;
    this.standby = standby ?? null;
    if (standbyError !== null) return this.finishReport(driver, { outcome: "failed", reason: standbyError }, null, null);
    try {
      return await this.run(driver, link);
    } catch (e) {
      this.stopPolling();
      void link.close();
      const committed = driver.engine.isCommitted;
      const tail = committed ? "the source guest stays paused and keeps every page" : "the source guest keeps running";
      return this.finishReport(driver, { outcome: "failed", reason: `${messageOf(e)}; ${tail}` }, null, null);
    } finally {
      await this.closeStandby(driver);
    }
  }

  private async openStandby(session: string): Promise<SourceStandby | undefined> {
    const sb = this.o.standby;
    if (sb === undefined) return undefined;
    const { pageSize, memBytes } = this.guest.layout;
    const copy = await SourceStandby.start(sb.dir, session, this.guest.memfd, { pageSize, pageCount: memBytes / pageSize }, sb.sync === true, this.log, sb.nice);
    this.log(`standby copy: ${copy.folder}${sb.sync === true ? " (each write made durable)" : ""}`);
    return copy;
  }

  /** After the migration: a copy nobody can need (completed, or the guest runs here) is removed; else it stays for the destination. */
  private async closeStandby(driver: SourceDriver): Promise<void> {
    const sb = this.standby;
    if (sb === null) return;
    const m = driver.engine.metrics;
    if (m.outcome === "completed" || this.guestRunsHere) await sb.remove();
    else await sb.stop();
  }

  private async run(driver: SourceDriver, link: SourceLink): Promise<Report> {
    const warmupMs = Math.max(100, this.o.workload.warmupMs);
    const t0 = nowUs();
    const s0 = totalSteps(await this.guest.progress());
    await sleep(warmupMs);
    const t1 = nowUs();
    this.stepsAtStart = totalSteps(await this.guest.progress());
    this.baseline = (this.stepsAtStart - s0) / (t1 - t0);
    this.window = new ProgressWindow(this.baseline);
    this.window.add(t1, this.stepsAtStart);
    try {
      await link.open();
    } catch (e) {
      return this.finishReport(driver, { outcome: "failed", reason: `${messageOf(e)}; the source guest keeps running` }, null, null);
    }
    this.driver = driver;
    this.startPolling(driver);
    driver.start();
    const end = await driver.ended;
    this.stopPolling();
    // The source guest is paused now (switchover): its log covers the migration up to the pause.
    if (end.outcome === "completed") this.sourceLog = await this.guest.progressLog().catch(() => null);
    if (end.outcome !== "completed") {
      void link.close();
      return this.finishReport(driver, end, null, null);
    }
    this.log("every page is at the destination; waiting for its guest to finish and report");
    const [final, expected] = await Promise.all([this.awaitFinal(driver), unmigratedHash(this.o.workload, this.o.seed, this.steps).catch((e: unknown) => new Error(messageOf(e)))]);
    void link.close();
    return this.finishReport(driver, end, final, expected);
  }

  /** Ends the source guest (whatever the outcome) and the link. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopPolling();
    this.driver?.close();
    await Promise.all([this.link?.close(), this.guest.quit()]);
  }

  private startPolling(d: SourceDriver): void {
    this.poller = setInterval(() => {
      if (d.engine.metrics.pausedAt === null) {
        void this.guest.progress().then((p) => this.window.add(nowUs(), totalSteps(p)), () => undefined);
      } else if (d.remoteSteps !== null) {
        this.window.add(d.remoteSteps.at, d.remoteSteps.steps);
      }
    }, POLL_MS);
  }

  private stopPolling(): void {
    clearInterval(this.poller);
  }

  private async awaitFinal(d: SourceDriver): Promise<FinalReport | string> {
    // At most setTimeout's limit (2^31 - 1 ms): past it the timer fires at once, as when the warmup saw no progress (baseline 0).
    const ms = this.o.reportTimeoutMs ?? Math.min(2 ** 31 - 1, Math.max(60_000, 4 * (this.steps / Math.max(1e-9, this.baseline / this.o.workload.vcpus)) / 1000));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`no report from the destination within ${Math.round(ms / 1000)} s`), ms)));
    const r = await Promise.race([d.finalReport, timeout]);
    clearTimeout(timer);
    return r;
  }

  private finishReport(d: SourceDriver, end: DriverEnd, final: FinalReport | string | null, reference: string | Error | null): Report {
    this.report = sourceReport(d, end, final, reference, {
      workload: this.o.workload,
      seed: this.o.seed,
      steps: this.steps,
      baseline: this.baseline,
      stepsAtStart: this.stepsAtStart,
      sourceLog: this.sourceLog,
      peer: this.peer,
      link: this.o.link,
      connections: { wanted: this.link?.connections ?? 1, used: this.link?.peakBulkStreams ?? 0 },
      sourceMemory: this.sourceMemory,
      switchover: this.switchoverBreakdown,
      standbySync: this.o.standby?.sync === true,
      reconnectTimeoutMs: this.options.reconnectTimeoutMs,
    });
    return this.report;
  }
}
