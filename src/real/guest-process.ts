/**
 * The guest process (native/build/Release/ppsim-guest) seen from the agent,
 * once it has connected (guest-connect.ts): its RAM's memfd mapped here, and
 * the control protocol (docs/native.md) over its socket.
 */
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import type { Socket } from "node:net";
import { closeFd, mapShared, openPagemap, type Mapping } from "./native.js";
import { MAX_LOG_SLOTS, type GuestLog, type VcpuLog } from "../disruption/guest-log.js";
import { monoToNowUs } from "./clock.js";
import { stamp } from "./switchover-stamps.js";
import { connectGuest, GuestError, type GuestExit, type GuestLayout, type GuestSpawnOptions } from "./guest-connect.js";

export { GuestError, type GuestLayout, type GuestRole, type GuestSpawnOptions } from "./guest-connect.js";

export interface VcpuProgress {
  steps: number;
  finished: boolean;
  /** The vCPU thread's kernel id, as userfaultfd fault messages name it; 0 before it ran. */
  tid: number;
}

/**
 * The guest's own switchover stamps (issue 9), µs on the agents' clock
 * (null: never happened): when its control thread read the last PAUSE and
 * RESUME, and per vCPU its first step on this host and its last park for a
 * PAUSE (just after its last step).
 */
export interface GuestStamps {
  pauseReadUs: number | null;
  resumeReadUs: number | null;
  firstStepUs: (number | null)[];
  lastParkUs: (number | null)[];
}

/** The progress log with the guest's stamps (absent from an older guest). */
export type GuestLogWithStamps = GuestLog & { stamps?: GuestStamps };

/** "PPST": the stamps' trailer after the per-vCPU logs in a PROGRESS_LOG reply. */
const STAMPS_MAGIC = 0x54535050;

export interface GuestProgress {
  state: "idle" | "running" | "paused";
  vcpus: VcpuProgress[];
}


const enum Op {
  Pause = 1,
  Resume = 2,
  Run = 3,
  Throttle = 4,
  Progress = 5,
  Hash = 6,
  Quit = 7,
  ProgressLog = 8,
}
const OP_NAMES = ["", "PAUSE", "RESUME", "RUN", "THROTTLE", "PROGRESS", "HASH", "QUIT", "PROGRESS_LOG"];

interface Pending {
  op: Op;
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
}


export class GuestProcess {
  /** The agent's MAP_SHARED mapping of guest RAM. */
  readonly memory: Mapping;
  private readonly pending: Pending[] = [];
  private rx: Buffer = Buffer.alloc(0);
  private exitInfo: string | undefined;
  private closed = false;
  private quitting = false;
  /** Resolves when the guest process has exited (and its stderr is drained). */
  readonly exited: Promise<GuestExit>;

  private constructor(
    readonly layout: GuestLayout,
    /** Guest RAM's memfd (owned by this object). */
    readonly memfd: number,
    /** The guest's userfaultfd (owned by this object), or -1 if it has none. */
    readonly uffd: number,
    private readonly child: ChildProcess,
    private readonly socket: Socket,
    private readonly dir: string,
    private readonly stderr: { text: string },
    exited: Promise<GuestExit>,
  ) {
    this.memory = mapShared(memfd, layout.memBytes);
    this.exited = exited;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {
      /* the close handler reports it, with the guest's exit status */
    });
    socket.on("close", () => {
      // Prefer the exit status and stderr in the message: wait briefly for it.
      const timer = setTimeout(() => this.failAll("the guest's control socket closed"), 2000);
      timer.unref();
      void exited.then(() => clearTimeout(timer));
    });
    void exited.then(({ code, signal }) => {
      this.exitInfo = `ppsim-guest (pid ${layout.pid}) exited with ${signal !== null ? "signal " + signal : "code " + String(code)}`;
      this.failAll(this.exitInfo);
    });
  }

  /** Spawns a guest and waits for its hello (fds + layout). */
  static async spawn(opts: GuestSpawnOptions): Promise<GuestProcess> {
    const c = await connectGuest(opts);
    return new GuestProcess(c.layout, c.memfd, c.uffd, c.child, c.socket, c.dir, c.stderr, c.exited);
  }

  /** The last 4 KiB the guest wrote to stderr. */
  stderrTail(): string {
    return this.stderr.text;
  }

  /** An fd of the guest's /proc/PID/pagemap for PAGEMAP_SCAN (caller closes it). */
  openPagemap(): number {
    return openPagemap(this.layout.pid);
  }

  /** Stops the vCPUs at a safe point; resolves with their serialised state. */
  async pause(): Promise<Uint8Array> {
    return new Uint8Array(await this.request(Op.Pause));
  }

  /** Continues after pause(); with a state (destination, before any run), starts from it. */
  async resume(state?: Uint8Array): Promise<void> {
    await this.request(Op.Resume, state === undefined ? undefined : Buffer.from(state));
  }

  /** Starts the vCPUs from the initial state. */
  async run(): Promise<void> {
    await this.request(Op.Run);
  }

  /** vCPUs sleep so that they run (1 - ratio) of the time; ratio in [0, 0.99]. */
  async throttle(ratio: number): Promise<void> {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(ratio);
    await this.request(Op.Throttle, b);
  }

  async progress(): Promise<GuestProgress> {
    const p = await this.request(Op.Progress);
    const states = ["idle", "running", "paused"] as const;
    const n = p.readUInt32LE(1);
    const vcpus: VcpuProgress[] = [];
    const tids = 5 + n * 9;
    if (p.length < tids + 4 * n) throw new GuestError(`PROGRESS reply: ${p.length} bytes for ${n} vCPUs`);
    for (let v = 0; v < n; v++) {
      const o = 5 + v * 9;
      vcpus.push({ steps: Number(p.readBigUInt64LE(o)), finished: p[o + 8] === 1, tid: p.readUInt32LE(tids + 4 * v) });
    }
    return { state: states[p[0]] ?? "idle", vcpus };
  }

  /**
   * Each vCPU's steps per time slot since the vCPUs started (vCPUs must be
   * paused or finished), on this process's clock: the guest and the agent
   * share CLOCK_MONOTONIC (process.hrtime), which fixes the offset. With the
   * guest's switchover stamps when it sends them.
   */
  async progressLog(): Promise<GuestLogWithStamps> {
    const p = await this.request(Op.ProgressLog);
    // The guest's stamps are CLOCK_MONOTONIC, process.hrtime's clock: one offset to the agents' (not the reply's "now",
    // which would shift every stamp by the reply's own latency).
    const offsetUs = monoToNowUs();
    const bad = (why: string) => new GuestError(`PROGRESS_LOG reply: ${why}`);
    if (p.length < 20) throw bad(`${p.length} bytes`);
    const originNs = Number(p.readBigUInt64LE(0));
    const n = p.readUInt32LE(16);
    if (n !== this.layout.vcpus) throw bad(`${n} vCPUs, the guest has ${this.layout.vcpus}`);
    const vcpus: VcpuLog[] = [];
    let o = 20;
    for (let v = 0; v < n; v++) {
      if (o + 12 > p.length) throw bad("truncated");
      const slotNs = Number(p.readBigUInt64LE(o));
      const used = p.readUInt32LE(o + 8);
      o += 12;
      if (used > MAX_LOG_SLOTS || o + used * 4 > p.length || slotNs < 1000) throw bad(`vCPU ${v}: ${used} slots of ${slotNs} ns`);
      const steps = new Array<number>(used);
      for (let i = 0; i < used; i++) steps[i] = p.readUInt32LE(o + i * 4);
      o += used * 4;
      vcpus.push({ slotUs: slotNs / 1000, steps });
    }
    // Guest CLOCK_MONOTONIC ns → the agents' µs, through the reply's "now"; 0 is "never".
    const at = (ns: number): number | null => (ns === 0 ? null : ns / 1000 + offsetUs);
    const log: GuestLogWithStamps = { originUs: originNs / 1000 + offsetUs, vcpus };
    if (o + 20 + 16 * n <= p.length && p.readUInt32LE(o) === STAMPS_MAGIC) {
      const first: (number | null)[] = [];
      const park: (number | null)[] = [];
      for (let v = 0; v < n; v++) {
        first.push(at(Number(p.readBigUInt64LE(o + 20 + 16 * v))));
        park.push(at(Number(p.readBigUInt64LE(o + 28 + 16 * v))));
      }
      log.stamps = { pauseReadUs: at(Number(p.readBigUInt64LE(o + 4))), resumeReadUs: at(Number(p.readBigUInt64LE(o + 12))), firstStepUs: first, lastParkUs: park };
    }
    return log;
  }

  /** 64-bit hash of guest RAM as 16 hex digits (vCPUs must be paused or finished). */
  async hash(): Promise<string> {
    const p = await this.request(Op.Hash);
    return p.readBigUInt64LE(0).toString(16).padStart(16, "0");
  }

  /** Asks the guest to exit and waits for it; then releases everything. */
  async quit(): Promise<void> {
    if (this.closed) return;
    this.quitting = true;
    if (this.exitInfo === undefined) {
      try {
        await this.request(Op.Quit);
      } catch {
        /* it may exit before the reply is read */
      }
    }
    await this.exited;
    this.close();
  }

  /** Kills the guest if still running and releases fds, mapping and temp dir. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.exitInfo === undefined) this.child.kill("SIGKILL");
    this.socket.destroy();
    if (this.memory.mapped) {
      try {
        this.memory.unmap();
      } catch {
        /* a touchAsync is in flight; GC unmaps later */
      }
    }
    closeFd(this.memfd);
    if (this.uffd >= 0) closeFd(this.uffd);
    rmSync(this.dir, { recursive: true, force: true });
    this.failAll("the guest was closed");
  }

  private request(op: Op, payload?: Buffer): Promise<Buffer> {
    if (this.exitInfo !== undefined) return Promise.reject(this.error(OP_NAMES[op], this.exitInfo));
    if (this.closed) return Promise.reject(new GuestError(`${OP_NAMES[op]}: the guest was closed`));
    return new Promise<Buffer>((resolve, reject) => {
      const len = 1 + (payload?.length ?? 0);
      const frame = Buffer.alloc(4 + len);
      frame.writeUInt32LE(len, 0);
      frame[4] = op;
      payload?.copy(frame, 5);
      this.pending.push({ op, resolve, reject });
      this.socket.write(frame);
      if (op === Op.Pause || op === Op.Resume) stamp(`guest_written_${OP_NAMES[op]}`);
    });
  }

  private onData(chunk: Buffer): void {
    const op0 = this.pending[0]?.op;
    if (op0 === Op.Pause || op0 === Op.Resume) stamp(`guest_data_${OP_NAMES[op0]}`);
    this.rx = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    while (this.rx.length >= 4) {
      const len = this.rx.readUInt32LE(0);
      if (this.rx.length < 4 + len) return;
      const status = this.rx[4];
      const payload = this.rx.subarray(5, 4 + len);
      this.rx = this.rx.subarray(4 + len);
      const p = this.pending.shift();
      if (p === undefined) continue; // unsolicited: ignore
      if (status === 0) p.resolve(payload);
      else p.reject(new GuestError(`${OP_NAMES[p.op]} refused by the guest: ${payload.toString("utf8")}`));
    }
  }

  private error(op: string, why: string): GuestError {
    const tail = this.stderr.text.trim();
    return new GuestError(`${op}: ${why}${tail !== "" ? "; guest stderr: " + tail : ""}`);
  }

  private failAll(why: string): void {
    while (this.pending.length > 0) {
      const p = this.pending.shift();
      if (p === undefined) break;
      if (p.op === Op.Quit && this.quitting) p.resolve(Buffer.alloc(0));
      else p.reject(this.error(OP_NAMES[p.op], why));
    }
  }
}
