/**
 * The guest process (native/build/Release/ppsim-guest) seen from the agent:
 * spawn it, accept its unix-socket connection, receive guest RAM's memfd and
 * its userfaultfd (SCM_RIGHTS) with the layout, map the memfd here, and talk
 * the control protocol (docs/native.md) over the same socket.
 */
import { vcpuNice } from "./guest-spawn.js";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  closeFd,
  errnoCode,
  guestExecutablePath,
  mapShared,
  openPagemap,
  peerCred,
  recvFds,
  unixAccept,
  unixListen,
  type Mapping,
} from "./native.js";
import { MAX_LOG_SLOTS, type GuestLog, type VcpuLog } from "../disruption/guest-log.js";
import { nowUs } from "./clock.js";
import { hugeNeeds, reserveHugePages, type HugeReservation } from "./huge-reserve.js";

export type GuestRole = "source" | "destination";

export interface GuestLayout {
  /** Guest RAM's address in the guest's address space (userfaultfd addresses). */
  base: bigint;
  memBytes: number;
  pageSize: number;
  vcpus: number;
  pid: number;
  role: GuestRole;
  /** Features granted by UFFDIO_API in the guest (0 if it has no uffd). */
  uffdFeatures: number;
  /** UFFDIO_REGISTER mode the guest used (0 if none). */
  registerMode: number;
  /** Guest RAM is on hugetlbfs and pageSize is its huge page: no write(2), no UFFDIO_ZEROPAGE (docs/huge-pages.md). */
  hugetlb: boolean;
}

export interface GuestSpawnOptions {
  role: GuestRole;
  /** Workload in the guest's line format (see toGuestConfig in src/workload/guest-config.ts). */
  config: string;
  /** Each vCPU stops after this many steps (for verification). */
  steps?: number;
  /** Destination: register MINOR faults too (install by write + UFFDIO_CONTINUE). */
  minor?: boolean;
  /** Source: skip write-protect dirty tracking. */
  noWp?: boolean;
  /** Defaults to the built executable. */
  executable?: string;
  /** How long the guest may take to connect (it fills its memory first). Default 60 s. */
  connectTimeoutMs?: number;
}

export interface VcpuProgress {
  steps: number;
  finished: boolean;
  /** The vCPU thread's kernel id, as userfaultfd fault messages name it; 0 before it ran. */
  tid: number;
}

export interface GuestProgress {
  state: "idle" | "running" | "paused";
  vcpus: VcpuProgress[];
}

const HELLO_BYTES = 48;
const HELLO_MAGIC = 0x48475050; // "PPGH"
const STDERR_TAIL = 4096;

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

export class GuestError extends Error {
  override readonly name = "GuestError";
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
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

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
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
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
    const exe = opts.executable ?? guestExecutablePath();
    const dir = mkdtempSync(join(tmpdir(), "ppsim-guest-"));
    const configPath = join(dir, "workload.conf");
    const socketPath = join(dir, "control.sock");
    writeFileSync(configPath, opts.config);
    // Guest RAM on hugetlbfs: the pool must hold it before the guest maps it; given back when the guest is gone.
    const huge = hugeNeeds(opts.config);
    let reservation: HugeReservation | null = null;
    try {
      reservation = huge === null ? null : reserveHugePages(huge.size, huge.count);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new GuestError((e as Error).message);
    }
    const listenFd = unixListen(socketPath);
    const args = ["--role", opts.role, "--config", configPath, "--socket", socketPath];
    if (opts.steps !== undefined) args.push("--steps", String(opts.steps));
    if (opts.minor === true) args.push("--minor");
    if (opts.noWp === true) args.push("--no-wp");
    // The vCPU threads lower their own priority as they start (src/real/guest-spawn.ts says why).
    if (vcpuNice() !== 0) args.push("--vcpu-nice", String(vcpuNice()));
    const child = spawn(exe, args, { stdio: ["ignore", "ignore", "pipe"] });
    const stderr = { text: "" };
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => {
      stderr.text = (stderr.text + s).slice(-STDERR_TAIL);
    });
    let exitedEarly: string | undefined;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      // 'close' comes after 'exit' and after stdio is drained: the stderr tail is complete.
      child.on("close", (code, signal) => {
        reservation?.release();
        exitedEarly = `ppsim-guest exited with ${signal !== null ? "signal " + signal : "code " + String(code)}`;
        resolve({ code, signal });
      });
      child.on("error", (err) => {
        reservation?.release();
        exitedEarly = `cannot run ${exe}: ${err.message}`;
        resolve({ code: null, signal: null });
      });
    });
    const fail = (what: string): GuestError => {
      try {
        child.kill("SIGKILL");
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
      return new GuestError(`${what}${stderr.text !== "" ? "; guest stderr: " + stderr.text.trim() : ""}`);
    };

    // Accept in short slices so an early guest exit is noticed at once.
    const deadline = Date.now() + (opts.connectTimeoutMs ?? 60_000);
    let conn = -1;
    try {
      while (conn < 0) {
        if (exitedEarly !== undefined) {
          await exited;
          throw fail(`${exitedEarly} before connecting`);
        }
        if (Date.now() > deadline) throw fail("ppsim-guest did not connect in time");
        try {
          conn = await unixAccept(listenFd, 100);
        } catch (e) {
          if (errnoCode(e) !== "ETIMEDOUT") throw e;
        }
      }
    } finally {
      closeFd(listenFd);
      rmSync(socketPath, { force: true });
    }

    let hello: { data: Buffer; fds: number[] };
    try {
      hello = await recvFds(conn, HELLO_BYTES, 4, 30_000);
    } catch (e) {
      closeFd(conn);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 500))]);
      throw fail(`receiving the guest's hello failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    reservation?.mapped(); // the guest maps its RAM before it connects
    const d = hello.data;
    const layout: GuestLayout = {
      base: d.readBigUInt64LE(8),
      memBytes: Number(d.readBigUInt64LE(16)),
      pageSize: d.readUInt32LE(24),
      vcpus: d.readUInt32LE(28),
      pid: d.readUInt32LE(32),
      role: d.readUInt32LE(36) === 0 ? "source" : "destination",
      uffdFeatures: d.readUInt32LE(40),
      registerMode: d.readUInt32LE(44),
      hugetlb: huge !== null,
    };
    const cred = peerCred(conn);
    const closeAll = (): void => {
      for (const fd of hello.fds) closeFd(fd);
      closeFd(conn);
    };
    if (d.readUInt32LE(0) !== HELLO_MAGIC || d.readUInt32LE(4) !== 1) {
      closeAll();
      throw fail("the guest's hello has a bad magic or version");
    }
    if (cred.pid !== child.pid || layout.pid !== child.pid) {
      closeAll();
      throw fail(`the connected peer (pid ${cred.pid}, says ${layout.pid}) is not the spawned guest (pid ${String(child.pid)})`);
    }
    if (hello.fds.length < 1) {
      closeAll();
      throw fail("the guest's hello carried no memfd");
    }
    // The guest has read its config and connected: nothing in the folder is
    // needed any more, so an agent killed from here on leaves none behind.
    rmSync(dir, { recursive: true, force: true });
    // Node takes ownership of conn (closes it on destroy).
    const socket = new Socket({ fd: conn, readable: true, writable: true });
    const memfd = hello.fds[0];
    const uffd = hello.fds.length > 1 ? hello.fds[1] : -1;
    return new GuestProcess(layout, memfd, uffd, child, socket, dir, stderr, exited);
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
   * share CLOCK_MONOTONIC, and the reply's "now" fixes the offset.
   */
  async progressLog(): Promise<GuestLog> {
    const p = await this.request(Op.ProgressLog);
    const atUs = nowUs();
    const bad = (why: string) => new GuestError(`PROGRESS_LOG reply: ${why}`);
    if (p.length < 20) throw bad(`${p.length} bytes`);
    const originNs = Number(p.readBigUInt64LE(0));
    const guestNowNs = Number(p.readBigUInt64LE(8));
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
    return { originUs: atUs - (guestNowNs - originNs) / 1000, vcpus };
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
    });
  }

  private onData(chunk: Buffer): void {
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
