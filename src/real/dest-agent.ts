/**
 * The destination agent: listens for sources and runs one DestSession per
 * migration, routing each new connection to its session by the id in its
 * preamble (a reconnection joins the session it belongs to). Serves until
 * closed, or — `once` — until its first session ends.
 */
import { encodeMessage } from "../engine/codec.js";
import { ErrorCode } from "../engine/messages.js";
import { DestSession, type SessionEnd } from "./dest-session.js";
import { Listener, type Accepted } from "./transport.js";

export interface DestinationAgentOptions {
  once?: boolean;
  /** How long a session waits for a source to reconnect after a link failure (default 60 s). */
  reconnectWaitMs?: number;
  log?: (line: string) => void;
}

export class DestinationAgent {
  private readonly sessions = new Map<string, DestSession>();
  private listener: Listener | null = null;
  private closed = false;
  private resolveDone: (ends: SessionEnd[]) => void = () => undefined;
  private readonly ends: SessionEnd[] = [];
  /** Resolves when the agent stops serving (closed, or its `once` session ended). */
  readonly done: Promise<SessionEnd[]>;

  private constructor(private readonly o: DestinationAgentOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  static async listen(host: string, port: number, o: DestinationAgentOptions = {}): Promise<DestinationAgent> {
    const agent = new DestinationAgent(o);
    agent.listener = await Listener.listen(host, port, (a) => agent.onAccepted(a), agent.log);
    return agent;
  }

  get port(): number {
    return this.listener?.port ?? 0;
  }

  private readonly log = (line: string): void => (this.o.log ?? (() => undefined))(line);

  private onAccepted(a: Accepted): void {
    const { session, epoch } = a.preamble;
    let s = this.sessions.get(session);
    if (s === undefined) {
      if (epoch !== 0 || this.closed || (this.o.once === true && this.sessions.size + this.ends.length > 0)) {
        const why = epoch !== 0 ? "unknown session (did the destination restart?): its migration cannot be recovered here" : "this destination takes one migration only (--once)";
        this.log(`connection for session ${session.slice(0, 8)} refused: ${why}`);
        a.socket.end(encodeMessage({ type: "error", code: ErrorCode.Protocol, reason: why }, 0));
        return;
      }
      s = new DestSession(session, { reconnectWaitMs: this.o.reconnectWaitMs ?? 60_000, log: this.log });
      this.sessions.set(session, s);
      const ended = s;
      void s.end.then((end) => this.onSessionEnd(session, ended, end));
    }
    s.attach(a);
  }

  private onSessionEnd(id: string, s: DestSession, end: SessionEnd): void {
    if (this.sessions.get(id) === s) this.sessions.delete(id);
    this.ends.push(end);
    if (this.o.once === true) void this.close();
  }

  /** Stops listening and ends every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.sessions.values()];
    for (const s of pending) s.finish({ outcome: "failed", reason: "the destination agent is shutting down" });
    await Promise.all(pending.map((s) => s.end));
    await this.listener?.close();
    this.resolveDone(this.ends);
  }
}
