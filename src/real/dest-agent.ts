/**
 * The destination agent: listens for sources and runs one DestSession per
 * migration, routing each new connection to its session by the id in its
 * preamble (a reconnection joins the session it belongs to). Serves until
 * closed, or — `once` — until its first session ends.
 *
 * Before a session exists it is only a candidate (admission.ts decides): its
 * two connections must arrive, and its hello be checked against this host's
 * limits, within the setup deadline, and with at most a few KiB buffered.
 * Only then is a guest spawned. Every later connection of the session must
 * come from the same authenticated peer. Everything logged passes through
 * `sanitize`: peer text cannot forge lines or drive a terminal.
 */
import { checkRealtimeKnobs } from "./lane-priority.js";
import { zeroHolesWanted } from "./dest-memory.js";
import { raiseLoopPriority } from "./loop-priority.js";
import { freemem } from "node:os";
import { encodeMessage } from "../engine/codec.js";
import { ErrorCode } from "../engine/messages.js";
import { Admission, type Admitted } from "./admission.js";
import { DestSession, type SessionEnd } from "./dest-session.js";
import type { InstallMode } from "./dataplane.js";
import { PreallocPool } from "./dest-prealloc.js";
import { sanitize } from "./peer-text.js";
import { INSECURE, type Security } from "./tls.js";
import { Listener, type Accepted } from "./transport.js";

export interface DestinationAgentOptions {
  once?: boolean;
  /** How long a session waits for a source to reconnect after a link failure (default 60 s). */
  reconnectWaitMs?: number;
  /** Issue 16: where sources keep standby copies; with it, a dead source's missing pages come from there. */
  standbyDir?: string;
  /** How the native bulk receivers install pages (dataplane.ts "InstallMode"; default PPSIM_INSTALL, else copy). */
  install?: InstallMode;
  /** Guest memory of this many bytes populated ahead, for the next migration of a guest of exactly that size (dest-prealloc.ts). */
  prealloc?: number;
  log?: (line: string) => void;
  /** Default insecure: the CLI makes the operator choose. */
  security?: Security;
  /** Guest memory of all sessions together, at most (default: 3/4 of the host's free memory at start). */
  maxMemoryBytes?: number;
  /** Concurrent migrations, at most (default 4). */
  maxSessions?: number;
  /** From a session's first connection to its checked hello (default 10 s). */
  setupTimeoutMs?: number;
  /** From accept to a whole preamble, TLS handshake included (default 10 s). */
  preambleTimeoutMs?: number;
  /** A connection silent this long in the middle of a frame is dropped (default 30 s). */
  stallMs?: number;
}

export const DEFAULT_MAX_SESSIONS = 4;

/** The default --max-memory: three quarters of what the host has free now. */
export function defaultMaxMemory(): number {
  return Math.floor((freemem() * 3) / 4);
}

interface Live {
  session: DestSession;
  identity: string;
  memBytes: number;
}

export class DestinationAgent {
  private readonly sessions = new Map<string, Live>();
  private listener: Listener | null = null;
  private closed = false;
  private resolveDone: (ends: SessionEnd[]) => void = () => undefined;
  private readonly ends: SessionEnd[] = [];
  private readonly admission: Admission;
  /** With `prealloc`: the populated memory the next session of that size takes. */
  private pool: PreallocPool | null = null;
  readonly maxMemoryBytes: number;
  /** Resolves when the agent stops serving (closed, or its `once` session ended). */
  readonly done: Promise<SessionEnd[]>;

  private constructor(private readonly o: DestinationAgentOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.maxMemoryBytes = o.maxMemoryBytes ?? defaultMaxMemory();
    this.admission = new Admission({
      setupTimeoutMs: o.setupTimeoutMs ?? 10_000,
      log: this.log,
      room: (memBytes) => this.room(memBytes),
      admit: (a) => this.start(a),
    });
  }

  static async listen(host: string, port: number, o: DestinationAgentOptions = {}): Promise<DestinationAgent> {
    checkRealtimeKnobs(); // a bad real-time knob is refused here, before anything listens
    zeroHolesWanted(); // and PPSIM_ZERO_HOLES likewise
    const agent = new DestinationAgent(o);
    raiseLoopPriority(agent.log); // before any guest: their control threads inherit it
    // Before listening: a source that finds the port open finds the memory ready.
    if (o.prealloc !== undefined && o.prealloc > agent.maxMemoryBytes) {
      throw new RangeError(`--prealloc ${o.prealloc} bytes is more than this destination's guest memory limit (--max-memory ${agent.maxMemoryBytes} bytes)`);
    }
    if (o.prealloc !== undefined) agent.pool = await PreallocPool.create(o.prealloc, agent.log);
    try {
      agent.listener = await Listener.listen(host, port, (a) => agent.onAccepted(a), agent.log, {
        security: o.security ?? INSECURE,
        preambleTimeoutMs: o.preambleTimeoutMs ?? 10_000,
      });
    } catch (e) {
      await agent.pool?.close(); // its memory would stay held by nobody
      throw e;
    }
    return agent;
  }

  get port(): number {
    return this.listener?.port ?? 0;
  }

  /** Sessions running, and candidates still in their setup. */
  get load(): { sessions: number; candidates: number; memBytes: number } {
    let memBytes = 0;
    for (const l of this.sessions.values()) memBytes += l.memBytes;
    return { sessions: this.sessions.size, candidates: this.admission.size, memBytes };
  }

  private readonly log = (line: string): void => (this.o.log ?? (() => undefined))(sanitize(line, 2000));

  /** What a new session may still take: a reason it may not, or the memory left (for a guest of `memBytes`, when known). */
  private room(memBytes?: number): string | number {
    if (this.closed) return "the destination agent is shutting down";
    if (this.o.once === true && this.sessions.size + this.ends.length > 0) return "this destination takes one migration only (--once)";
    const max = this.o.maxSessions ?? DEFAULT_MAX_SESSIONS;
    if (this.sessions.size >= max) return `this destination already runs ${this.sessions.size} migration(s), its limit (--max-sessions ${max})`;
    // Memory populated ahead is held whether or not the next guest takes it — unless this guest is the one that will.
    const takesPool = this.pool?.ready === true && memBytes === this.pool.bytes;
    return this.maxMemoryBytes - this.load.memBytes - (this.pool?.holding === true && !takesPool ? this.pool.bytes : 0);
  }

  private onAccepted(a: Accepted): void {
    a.framing = { stallMs: this.o.stallMs };
    const { session, epoch } = a.preamble;
    const live = this.sessions.get(session);
    if (live !== undefined) {
      if (live.identity !== a.identity) return this.refuse(a, `a connection for session ${session.slice(0, 8)} from another peer (${a.identity}, the session's is ${live.identity})`);
      live.session.attach(a);
      return;
    }
    if (epoch !== 0) return this.refuse(a, "unknown session (did the destination restart?): its migration cannot be recovered here");
    if ((a.preamble.stream ?? 0) > 0) return this.refuse(a, "an extra bulk connection for a session that has not formed");
    if (a.preamble.lane === true) return this.refuse(a, "a fault lane for a session that has not formed");
    this.admission.offer(a);
  }

  private refuse(a: Accepted, why: string): void {
    this.log(`connection for session ${a.preamble.session.slice(0, 8)} refused: ${why}`);
    a.socket.end(encodeMessage({ type: "error", code: ErrorCode.Protocol, reason: why }, 0));
    setTimeout(() => a.socket.destroy(), 1000).unref();
  }

  private start(c: Admitted): void {
    const id = c.session;
    const s = new DestSession(id, { reconnectWaitMs: this.o.reconnectWaitMs ?? 60_000, log: this.log, standbyDir: this.o.standbyDir, install: this.o.install, prealloc: this.pool ?? undefined });
    this.sessions.set(id, { session: s, identity: c.identity, memBytes: c.memBytes });
    void s.end.then((end) => this.onSessionEnd(id, s, end));
    s.attach(c.urgent);
    s.attach(c.bulk);
  }

  private onSessionEnd(id: string, s: DestSession, end: SessionEnd): void {
    if (this.sessions.get(id)?.session === s) this.sessions.delete(id);
    this.ends.push(end);
    if (this.o.once === true) return void this.close();
    // The next migration's memory, now that this one no longer needs the host's CPU.
    this.pool?.refill().catch((e: unknown) => this.log(`populating guest memory ahead failed: ${e instanceof Error ? e.message : String(e)}`));
  }

  /** Stops listening and ends every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.admission.close();
    const pending = [...this.sessions.values()].map((l) => l.session);
    for (const s of pending) s.finish({ outcome: "failed", reason: "the destination agent is shutting down" });
    await Promise.all(pending.map((s) => s.end));
    await this.listener?.close();
    await this.pool?.close();
    this.resolveDone(this.ends);
  }
}
