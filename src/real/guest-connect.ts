/**
 * Starting a guest: spawn ppsim-guest, accept its unix-socket connection and
 * take its hello — the layout, guest RAM's memfd and its userfaultfd
 * (SCM_RIGHTS) — checking that the peer is the process we spawned. What the
 * agent does with a connected guest is GuestProcess's (guest-process.ts).
 */
import { controlRealtimePriority, switchoverRealtimePriority } from "./loop-priority.js";
import { vcpuNice } from "./guest-spawn.js";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeFd, errnoCode, guestExecutablePath, peerCred, recvFds, unixAccept, unixListen } from "./native.js";
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
  /** Destination: guest RAM is this memfd (populated ahead, dest-prealloc.ts; needs minor), passed to the guest as its fd 3. */
  memfd?: number;
  /** Source: skip write-protect dirty tracking. */
  noWp?: boolean;
  /** Defaults to the built executable. */
  executable?: string;
  /** How long the guest may take to connect (it fills its memory first). Default 60 s. */
  connectTimeoutMs?: number;
}

const HELLO_BYTES = 48;
const HELLO_MAGIC = 0x48475050; // "PPGH"
const STDERR_TAIL = 4096;

export class GuestError extends Error {
  override readonly name = "GuestError";
}

export type GuestExit = { code: number | null; signal: NodeJS.Signals | null };

/** A guest that has said hello: its fds and control socket, owned by whoever takes this. */
export interface ConnectedGuest {
  layout: GuestLayout;
  memfd: number;
  uffd: number;
  child: ChildProcess;
  socket: Socket;
  dir: string;
  stderr: { text: string };
  exited: Promise<GuestExit>;
}

export async function connectGuest(opts: GuestSpawnOptions): Promise<ConnectedGuest> {
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
  if (opts.memfd !== undefined) args.push("--memfd", "3");
  if (opts.noWp === true) args.push("--no-wp");
  // The vCPU threads lower their own priority as they start (src/real/guest-spawn.ts says why).
  if (vcpuNice() !== 0) args.push("--vcpu-nice", String(vcpuNice()));
  // PPSIM_LOOP_RR / PPSIM_SWITCHOVER_RR: its control thread answers PAUSE and RESUME inside the downtime, in SCHED_RR (loop-priority.ts).
  if (controlRealtimePriority() > 0) args.push("--control-rr", String(controlRealtimePriority()));
  // PPSIM_SWITCHOVER_RR: a destination's vCPUs in SCHED_RR until their first step, the downtime's end.
  if (switchoverRealtimePriority() > 0 && opts.role === "destination") args.push("--vcpu-rr", String(switchoverRealtimePriority()));
  // A given memfd becomes the child's fd 3 (Node dups it there; ours stays open, its owner closes it).
  const child = spawn(exe, args, { stdio: opts.memfd === undefined ? ["ignore", "ignore", "pipe"] : ["ignore", "ignore", "pipe", opts.memfd] });
  const stderr = { text: "" };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    stderr.text = (stderr.text + s).slice(-STDERR_TAIL);
  });
  let exitedEarly: string | undefined;
  const exited = new Promise<GuestExit>((resolve) => {
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
  return { layout, memfd, uffd, child, socket, dir, stderr, exited };
}
