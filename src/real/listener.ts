/**
 * The destination's listening socket. Each connection is, in this order and
 * within one deadline (`preambleTimeoutMs`): told apart by its first byte (a
 * TLS handshake, or a plaintext ppsim preamble), authenticated (TLS with a
 * pre-shared key or a verified certificate, unless --insecure), and only
 * then is its preamble read (bounded in size). A good one is handed on with
 * the peer's authenticated identity; a bad one is answered with an error
 * frame when that is possible, closed, and logged.
 *
 * Connections that have not got that far are few at a time (`maxPending`):
 * a flood of idle ones costs a bounded number of descriptors.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { encodeMessage } from "../engine/codec.js";
import { ErrorCode } from "../engine/messages.js";
import { messageOf, RealError } from "./errors.js";
import { peerName, sanitize } from "./peer-text.js";
import { parsePreamble, PREAMBLE_MAGIC, preambleLength, type Preamble } from "./preamble.js";
import { describeTlsError, INSECURE, peerIdentity, serverTlsOptions, type Security } from "./tls.js";

const TLS_HANDSHAKE_RECORD = 0x16;

export interface Accepted {
  socket: Socket;
  preamble: Preamble;
  /** Bytes that came after the preamble (the first frames). */
  rest: Buffer;
  /** Who the peer authenticated as ("psk:ID", "x509:FINGERPRINT", or "insecure"). */
  identity: string;
  /** How a FramedSocket over this connection bounds its peer (set by the destination agent). */
  framing?: FramedOptions;
}

export interface FramedOptions {
  /** A connection holding part of a frame and silent this long is taken for dead (default 30 s). */
  stallMs?: number;
}

export interface ListenerOptions {
  security?: Security;
  /** From accept to a whole preamble, TLS handshake included. */
  preambleTimeoutMs?: number;
  /** Connections at most between accept and preamble; more are closed at once. */
  maxPending?: number;
}

export class Listener {
  private pending = 0;
  private refusedBusy = 0;
  private busyLogTimer: NodeJS.Timeout | undefined;
  private tls: TlsServer | null = null;
  private readonly security: Security;
  private readonly timeoutMs: number;
  private readonly maxPending: number;

  private constructor(
    private server: Server,
    private readonly onAccepted: (a: Accepted) => void,
    private readonly log: (line: string) => void,
    o: ListenerOptions,
    readonly host = "",
    readonly port = 0,
  ) {
    this.security = o.security ?? INSECURE;
    this.timeoutMs = o.preambleTimeoutMs ?? 10_000;
    this.maxPending = o.maxPending ?? 64;
  }

  /** `options` may be the preamble timeout alone (ms), as before TLS. */
  static listen(host: string, port: number, onAccepted: (a: Accepted) => void, log: (line: string) => void, options: number | ListenerOptions = {}): Promise<Listener> {
    const o: ListenerOptions = typeof options === "number" ? { preambleTimeoutMs: options } : options;
    const server = createServer({ noDelay: true });
    return new Promise<Listener>((resolve, reject) => {
      server.once("error", (err) => reject(new RealError(`cannot listen on ${host}:${port}: ${err.message}`)));
      server.listen({ host, port }, () => {
        server.removeAllListeners("error");
        server.on("error", (err) => log(`listener error: ${err.message}`));
        const a = server.address() as AddressInfo;
        const l = new Listener(server, onAccepted, log, o, host, a.port);
        l.setUp();
        resolve(l);
      });
    });
  }

  private setUp(): void {
    const sec = this.security;
    if (sec.kind !== "insecure") {
      this.tls = createTlsServer(serverTlsOptions(sec, this.timeoutMs));
      this.tls.on("secureConnection", (t: TLSSocket) => this.onSecure(t));
      this.tls.on("tlsClientError", (err: Error, t: TLSSocket) => {
        this.log(`connection from ${peerName(t)} refused: TLS handshake failed: ${describeTlsError(err, "destination")}`);
        t.destroy();
      });
    }
    this.server.on("connection", (raw: Socket) => this.onConnection(raw));
  }

  private onConnection(raw: Socket): void {
    raw.on("error", () => undefined); // reported as a close below, or by the TLS layer
    if (this.pending >= this.maxPending) {
      raw.destroy();
      this.noteBusy();
      return;
    }
    this.pending++;
    const pc = new PendingConnection(raw, this.timeoutMs, this.log, () => this.pending--);
    raw.once("data", (first: Buffer) => {
      if (pc.done) return;
      const isTls = first[0] === TLS_HANDSHAKE_RECORD;
      const isPlainSource = first.length >= 4 ? first.readUInt32LE(0) === PREAMBLE_MAGIC : first[0] === (PREAMBLE_MAGIC & 0xff);
      if (this.tls === null) {
        if (isTls) return pc.refuse("it opened a TLS handshake, but this destination runs --insecure (give both agents the same --psk-file or --tls-* flags)");
        raw.unshift(first);
        return pc.readPreamble(raw, "insecure", this.onAccepted);
      }
      if (!isTls) {
        return pc.refuse(
          isPlainSource
            ? "the source did not use TLS, and this destination requires it: give the source the same --psk-file, or its --tls-cert/--tls-key/--tls-ca"
            : "not a TLS handshake and not a ppsim source",
        );
      }
      raw.pause();
      raw.unshift(first);
      pendingByPeer.set(raw, pc);
      this.tls.emit("connection", raw);
    });
  }

  private onSecure(t: TLSSocket): void {
    const raw = (t as unknown as { _parent?: Socket })._parent;
    const pc = raw === undefined ? undefined : pendingByPeer.get(raw);
    if (pc === undefined || pc.done) {
      t.destroy();
      return;
    }
    t.on("error", () => undefined);
    let identity: string;
    try {
      identity = peerIdentity(t, this.security);
    } catch (e) {
      return pc.refuse(messageOf(e), t);
    }
    pc.readPreamble(t, identity, this.onAccepted);
  }

  /** A flood is logged once a second, not once a connection. */
  private noteBusy(): void {
    this.refusedBusy++;
    if (this.busyLogTimer !== undefined) return;
    this.busyLogTimer = setTimeout(() => {
      this.log(`refused ${this.refusedBusy} connection(s): ${this.maxPending} connections are already in their handshake or preamble`);
      this.refusedBusy = 0;
      this.busyLogTimer = undefined;
    }, 1000);
    this.busyLogTimer.unref();
  }

  close(): Promise<void> {
    clearTimeout(this.busyLogTimer);
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** The TLS server hands back a TLSSocket; this finds the deadline and state of the raw connection under it. */
const pendingByPeer = new WeakMap<Socket, PendingConnection>();

/** One connection between accept and its preamble: its deadline, and how it ends. */
class PendingConnection {
  done = false;
  private readonly timer: NodeJS.Timeout;
  private readonly peer: string;
  private current: Socket;

  constructor(
    private readonly raw: Socket,
    timeoutMs: number,
    private readonly log: (line: string) => void,
    private readonly release: () => void,
  ) {
    this.peer = peerName(raw);
    this.current = raw;
    this.timer = setTimeout(() => this.refuse(`no TLS handshake and preamble within ${timeoutMs} ms`), timeoutMs);
    raw.once("close", () => {
      if (!this.done) {
        this.finish();
        this.log(`connection from ${this.peer} closed before its preamble`);
      }
    });
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.release();
  }

  /** Refuses with an error frame (on the TLS layer once there is one) and closes. */
  refuse(why: string, over: Socket = this.current): void {
    if (this.done) return;
    this.finish();
    this.log(`connection from ${this.peer} refused: ${sanitize(why)}`);
    over.removeAllListeners("data");
    // An error frame: a ppsim source shows it as the destination's reason.
    over.end(encodeMessage({ type: "error", code: ErrorCode.Protocol, reason: why }, 0));
    setTimeout(() => {
      over.destroy();
      this.raw.destroy();
    }, 1000).unref();
  }

  /** Reads the preamble from `socket` (raw or TLS), bounded in bytes; hands the connection on when whole. */
  readPreamble(socket: Socket, identity: string, onAccepted: (a: Accepted) => void): void {
    this.current = socket;
    const chunks: Buffer[] = [];
    let have = 0;
    let need = 4; // bytes to have before the next look: the magic, then the fixed part, then all of it
    const onData = (chunk: Buffer): void => {
      if (this.done) return;
      chunks.push(chunk);
      have += chunk.length;
      if (have < need) return;
      // Joined only at those points: linear in the preamble's size however it is cut.
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have);
      chunks.length = 0;
      chunks.push(buf);
      let parsed: ReturnType<typeof parsePreamble>;
      try {
        parsed = parsePreamble(buf);
      } catch (e) {
        this.refuse(messageOf(e), socket);
        return;
      }
      if (parsed === null) {
        need = Math.max(have + 1, preambleLength(buf) || 32);
        return;
      }
      socket.off("data", onData);
      this.finish();
      onAccepted({ socket, preamble: parsed.preamble, rest: Buffer.from(parsed.rest), identity });
    };
    socket.on("data", onData);
    socket.resume();
  }
}
