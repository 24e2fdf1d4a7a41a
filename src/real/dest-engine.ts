/**
 * The destination session's engine side: the Destination engine, the guest
 * it runs over (spawned when the hello arrives, with the layout and workload
 * the source named), the guest's memory and fault reader, and the effects
 * that carry the engine's decisions out (send, install, wake, resume). The
 * session (dest-session.ts) owns the connections and hands this side the
 * messages they carry; this side reaches the connections only through
 * `DestEngineLinks`.
 */
import { Destination } from "../engine/destination.js";
import { driveDestination, type DestinationEffects } from "../engine/drive.js";
import type { DestinationInput } from "../engine/events.js";
import { ErrorCode, MIN_PROTOCOL_VERSION, type Channel, type HelloMsg, type Message } from "../engine/messages.js";
import { resolveOptions } from "../engine/options.js";
import { DeadlineTimer, monoToNowUs, nowUs } from "./clock.js";
import { installModeFromEnv } from "./dataplane.js";
import type { NativeBulkConn } from "./dataplane-recv.js";
import { DestinationMemory } from "./dest-memory.js";
import type { DestLaneSlot } from "./dest-lane-slot.js";
import type { DestReports } from "./dest-reports.js";
import type { SessionEnd, SessionOptions } from "./dest-session.js";
import { fillFromStandby } from "./dest-standby-fill.js";
import { messageOf } from "./errors.js";
import type { DestFaultTrace } from "./fault-trace.js";
import { GuestProcess } from "./guest-process.js";
import { migrationPageSize } from "./huge-reserve.js";
import { closeFd, constants } from "./native.js";
import type { PreallocPool } from "./dest-prealloc.js";
import type { SessionInfo } from "./plan.js";
import { stamp, stampRole } from "./switchover-stamps.js";
import { rehearsalWanted, rehearseSwitchover } from "./switchover-rehearsal.js";
import { rehearseDestEngine } from "./dest-rehearsal.js";
import { ThreadCpuAccount } from "./thread-cpu.js";

/** What the engine side needs of the session's connections and helpers. */
export interface DestEngineLinks {
  readonly id: string;
  log(line: string): void;
  /** The session ended: nothing more reaches the engine. */
  ended(): boolean;
  send(channel: Channel, msg: Message<Uint8Array>): void;
  /** Bytes the connection of `channel` holds unwritten (Infinity while it is down). */
  buffered(channel: Channel): number;
  /** Bulk 0 over the native receiver, when it is (it installs pages itself), else null. */
  nativeBulk0(): NativeBulkConn | null;
  /** This epoch's bulk connections over the native receiver (bulk 0 and the extras). */
  nativeBulks(): NativeBulkConn[];
  /** The accepted layout (for the standby copy's reads). */
  layout(): { pageSize: number; pageCount: number };
  readonly lane: DestLaneSlot;
  readonly reports: DestReports;
  readonly trace: DestFaultTrace | null;
  finish(end: SessionEnd): void;
  refuse(reason: string, code?: number): void;
  /** The guest's RESUME was answered (or failed): the session's SCHED_RR window ends (PPSIM_SWITCHOVER_RR). */
  endSwitchoverWindow(): void;
}

export type DestEngineOptions = Pick<SessionOptions, "reconnectWaitMs" | "standbyDir" | "install" | "prealloc">;

export class DestEngine {
  engine: Destination<Uint8Array> | null = null;
  guest: GuestProcess | null = null;
  mem: DestinationMemory | null = null;
  private fx: DestinationEffects<Uint8Array> | null = null;
  private readonly timer = new DeadlineTimer((now) => {
    this.engine?.handleTimeout(now);
    this.drive();
  });

  constructor(
    private readonly s: DestEngineLinks,
    private readonly o: DestEngineOptions,
  ) {}

  /**
   * The hello arrived: the engine, and (unless the engine will refuse the
   * hello anyway) the guest it runs over. False when the session was refused
   * instead (the hello must then not reach the engine).
   */
  async start(h: HelloMsg, info: SessionInfo | null): Promise<boolean> {
    const opts = resolveOptions({ mode: h.mode, reconnectTimeoutMs: this.o.reconnectWaitMs });
    if (info === null) {
      this.s.refuse("the source sent no session info (workload, seed, steps)");
      return false;
    }
    const mem = /^mem_bytes (\d+)$/m.exec(info.config);
    const unit = migrationPageSize(info.config, constants().PAGE_SIZE); // huge pages on hugetlbfs
    const expect = { pageSize: unit, pageCount: mem === null ? 0 : Number(mem[1]) / unit };
    this.engine = new Destination<Uint8Array>(opts, { expect, standby: this.o.standbyDir !== undefined });
    const acceptable = h.version >= MIN_PROTOCOL_VERSION && h.pageSize === expect.pageSize && h.pageCount === expect.pageCount;
    if (!acceptable) return true;
    this.s.log(`${info.workload}, ${h.pageCount} pages of ${h.pageSize} bytes, ${h.mode}: starting the destination guest`);
    try {
      // Install mode "continue" only where the native receiver installs (plain TCP, base pages): the guest runs registered MINOR too.
      const bulk = this.s.nativeBulk0();
      const native = unit === constants().PAGE_SIZE && bulk !== null;
      // Memory populated ahead needs install mode "continue": its pages are found by MINOR faults.
      const populated = native ? (this.o.prealloc?.take(expect.pageCount * unit) ?? null) : null;
      if (this.o.prealloc !== undefined && populated === null) this.s.log(`memory populated ahead not used: ${preallocUnused(this.o.prealloc, expect.pageCount * unit, native)}`);
      const install = populated !== null ? "continue" : native ? (this.o.install ?? installModeFromEnv()) : "copy";
      try {
        this.guest = await GuestProcess.spawn({ role: "destination", config: info.config, steps: info.steps, minor: install === "continue", memfd: populated?.fd });
      } catch (e) {
        populated?.alias.unmap();
        throw e;
      } finally {
        if (populated !== null) closeFd(populated.fd); // the guest has its own (and sends it back in its hello)
      }
      try {
        this.mem = new DestinationMemory(this.guest, install, undefined, populated?.alias ?? null);
      } catch (e) {
        populated?.alias.unmap(); // a no-op once the page table took it
        throw e;
      }
      if (populated !== null) this.s.log(`guest memory populated ahead (${(expect.pageCount * unit) / 2 ** 20} MiB): zero pages mapped as they are`);
      // Where this host's CPU went (issue 9): marks at the guest's start, once it runs (off the downtime) and at completion.
      const cpu = new ThreadCpuAccount([
        { process: "destination agent", pid: process.pid, guest: false },
        { process: "destination guest", pid: this.guest.layout.pid, guest: true },
      ]);
      cpu.mark("start");
      this.s.reports.cpu = cpu;
      if (rehearsalWanted()) {
        // Before the engine answers the hello (and so before the source pauses): the switchover's
        // engine code and this class's part of it compiled and warm (switchover-rehearsal.ts,
        // dest-rehearsal.ts), and the guest's control socket written once, so that RESUME is not its first write.
        rehearseSwitchover(opts, unit);
        await rehearseDestEngine((links, o) => new DestEngine(links, o), opts, unit);
        await this.guest.progress();
      }
      if (install === "continue") this.s.log("install mode continue: pages written into the page cache, mapped with UFFDIO_CONTINUE");
      const g = this.guest;
      // Bulk 0 again: it may have been replaced while the guest started.
      this.s.nativeBulk0()?.setTarget(g.memfd, g.uffd, g.layout.base, this.mem.pageSize, this.mem.pageCount, this.mem.table, this.mem.holes);
      this.s.lane.aim();
      this.mem.startFaults(
        (page, tid, readUs) => {
          this.s.trace?.fault(page, readUs);
          // The fault's time is the reader's (as on the lane): its latency counts from there either way.
          this.dispatch({ kind: "fault", page, vcpu: tid, at: readUs + monoToNowUs() });
        },
        (err) => this.s.finish({ outcome: "failed", reason: `the fault reader stopped: ${err.message}` }),
        (line) => this.s.log(line),
      );
    } catch (e) {
      this.s.refuse(`the destination cannot start its guest: ${messageOf(e)}`, ErrorCode.BadLayout);
      return false;
    }
    return true;
  }

  /** Whether the guest may run (the switchover was taken). */
  get running(): boolean {
    return this.mem?.running === true;
  }

  dispatch(ev: DestinationInput<Uint8Array>): void {
    if (this.engine === null || this.s.ended()) return;
    this.engine.handle(ev, nowUs());
    this.drive();
  }

  /** The engine's shared loop with this session's effects (see driveDestination). */
  drive(): void {
    const engine = this.engine;
    if (engine === null || this.s.ended()) return;
    this.fx ??= this.effects();
    try {
      driveDestination(engine, this.fx, nowUs());
    } catch (e) {
      this.s.finish({ outcome: "failed", reason: `acting on guest memory failed: ${messageOf(e)}` });
    }
  }

  /** The session ends: no engine timer fires after this. */
  clearTimer(): void {
    this.timer.clear();
  }

  stopFaults(): void {
    this.mem?.stopFaults();
  }

  closeMemory(): void {
    this.mem?.close();
  }

  /** The guest's end (at once when there is none). */
  quitGuest(): Promise<unknown> {
    return this.guest === null ? Promise.resolve() : this.guest.quit();
  }

  private effects(): DestinationEffects<Uint8Array> {
    return {
      // A small message waits behind at most what this process still holds unwritten.
      canSend: (channel) => this.s.buffered(channel) < 64 * 1024,
      send: (channel, msg) => {
        msg = this.s.lane.announce(msg);
        this.s.send(channel, msg);
        if (this.s.trace !== null && msg.type === "pageRequest") this.s.trace.requested(msg.page);
      },
      setTimer: (at) => this.timer.set(at),
      installPages: (batch) => {
        // Bulk pages the native receiver installed already (dataplane-recv.ts): the engine only books them.
        if (!batch.preinstalled) this.mem?.installMany(batch);
        this.s.trace?.installed(batch.pages);
      },
      wake: (page) => this.mem?.wake(page),
      dropPages: (pages) => {
        this.mem?.drop(pages);
        if (pages.length > 0) this.s.log(`switchover: ${pages.length} stale pages dropped (fetched again after it)`);
      },
      resumeGuest: (cpuState) => this.resume(cpuState),
      // The engine's completion: every page is here (dest-memory.ts: the reader stays for the zero holes).
      stopFaultHandling: () => {
        const m = this.mem;
        if (m === null) return;
        m.complete();
        // With holes the reader still runs (complete keeps it): its count is the one so far.
        if (m.holes !== null) this.s.log(`${m.holes.holes} zero pages left holes (never allocated); ${m.zeroFaults} faults on them answered here`);
      },
      standbyRecover: (missing) => void this.fillFromStandby(missing),
      finished: (end) => {
        if (this.engine?.standbyFill != null) this.s.log(end.reason);
        if (end.outcome === "completed") {
          this.s.reports.cpu?.mark("end");
          this.s.reports.cpu?.close();
          void this.s.reports.afterComplete();
        }
        else this.s.finish({ outcome: end.outcome, reason: end.reason });
      },
    };
  }

  private resume(cpuState: Uint8Array): void {
    const g = this.guest;
    if (g === null || this.mem === null) return;
    this.s.reports.switchoverAt = nowUs();
    stampRole("destination");
    stamp("d.resume_effect");
    // From here on this process installs only in the ways a running guest allows (dest-memory.ts).
    this.mem.guestMayRun();
    // Not startingVcpus, and no renice pass after it: each new vCPU thread lowers its own priority after
    // its first step (ppsim-guest), and a /proc pass here could lower one that has not taken it yet —
    // a vCPU at nice 19 waited milliseconds for a core, inside the guest's downtime.
    const resumed = g.resume(cpuState);
    stamp("d.resume_written");
    // After the RESUME's write, not before it: neither is on the guest's way to its first step, and
    // both are safe this late. The fault lane takes faults from the reader's next read: a fault read
    // before goes the JS way (the engine asks for it on urgent), as every fault did before the lane.
    // Bulk 0's receiver thread waits for this frame's release (dataplane-recv.ts) and installs nothing
    // until then; no other bulk connection is attached before the guest may run (dest-session.ts).
    this.s.lane.arm();
    for (const b of this.s.nativeBulks()) b.setRunning();
    stamp("d.set_running");
    resumed.then(
      async () => {
        this.s.reports.resumedAt = nowUs();
        stamp("d.resumed");
        this.s.endSwitchoverWindow();
        this.s.log("destination guest running");
        // Only now may the source learn it: until then it can still take the VM back.
        this.dispatch({ kind: "guestResumed" });
        // After the word is out: the background's first pages are not held up by the mark.
        this.s.reports.cpu?.mark("resumed");
        await this.s.reports.startProgress(g);
      },
      async (e: unknown) => {
        this.s.endSwitchoverWindow();
        // The source resumes its own guest on our word: make sure ours cannot run first.
        this.mem?.stopFaults();
        g.close();
        await g.exited;
        this.dispatch({ kind: "resumeFailed", reason: `resuming the destination guest failed: ${messageOf(e)}` });
      },
    );
  }

  /** The source is gone: the engine's missing pages from the standby copy (dest-standby-fill.ts). */
  private fillFromStandby(missing: Uint32Array): Promise<void> {
    const log = (line: string): void => this.s.log(line);
    return fillFromStandby({ dir: this.o.standbyDir as string, sessionId: this.s.id, layout: this.s.layout(), log, dispatch: (ev) => this.dispatch(ev) }, missing);
  }
}

/** Why a session's guest did not take the memory populated ahead. */
function preallocUnused(pool: PreallocPool, bytes: number, native: boolean): string {
  if (!native) return "this session's pages are not installed by the native receiver (TLS, or huge pages)";
  if (bytes !== pool.bytes) return `the guest has ${bytes} bytes, the memory populated ahead ${pool.bytes}`;
  return "it is being populated still (after an earlier migration)";
}
