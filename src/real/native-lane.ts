/**
 * The fault lane's native ends (issue 9; native/src/fault_lane.*,
 * lane_server.cc; docs/real.md "The fault lane"): the destination's FaultLane
 * (requests written by the fault reader thread, replies installed by the
 * lane's own thread) and the source's LaneServer (requests answered from the
 * memfd by a thread of its own).
 */
import { loadAddon } from "./native-load.js";
import type { PageTableHandle } from "./native-dataplane.js";

/** What the destination's lane reports, in the order it happened (a fault before the install that answers it). */
export type LaneNotice =
  /** Missing faults the fault reader handed to the lane; requested[i] = 1: asked on the lane (now or before) or on its way by another native path. atUs: read from the uffd (CLOCK_MONOTONIC µs). */
  | { kind: "faults"; pages: Uint32Array; tids: Uint32Array; requested: Uint8Array; atUs: number }
  /** A reply installed (the vCPU woken); atUs: when the install returned. */
  | { kind: "installed"; pages: Uint32Array; zero: Uint8Array; atUs: number }
  /** The lane ended: protocol = the peer's bytes were not a valid lane stream; error null = closed. */
  | { kind: "end"; protocol: boolean; reason: string; error: Error | null };

export interface FaultLaneHandle {
  start(initial: Uint8Array): void;
  setTarget(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, pageTable?: PageTableHandle): void;
  /** The guest may run: faults are requested on the lane, replies installed. */
  arm(): void;
  /** Joins the thread, closes the lane's fds; returns the notices not delivered yet. Idempotent. */
  stop(): LaneNotice[];
  /** hugeDirect / hugeStaged: huge pages installed straight from the reply, and through the staging copy. */
  stats(): { requests: number; replies: number; installs: number; lost: number; hugeDirect: number; hugeStaged: number };
  /** The receiver thread's kernel id from start() while it runs, else 0 (lane-priority.ts). */
  tid(): number;
}

/** What the source's lane reports. */
export type LaneServerNotice =
  /** The destination's first frame on the lane: it attached (its thread runs, aimed at the guest's memory). */
  | { kind: "attached" }
  /** Pages answered (zero[i] = 1: sent as a zero page), bytes written on the lane. */
  | { kind: "served"; pages: Uint32Array; zero: Uint8Array; bytes: number }
  | { kind: "end"; protocol: boolean; reason: string; error: Error | null };

export interface LaneServerHandle {
  start(initial: Uint8Array): void;
  /** The switchover went out: requests are answered from now on (before, one ends the lane). */
  arm(): void;
  /** These pages are about to be punched out of the memfd: never answered again. */
  release(pages: Uint32Array): void;
  stop(): void;
  stats(): { requests: number; served: number; released: number; bytes: number };
  /** The thread's kernel id from start() while it runs, else 0 (lane-priority.ts). */
  tid(): number;
}

interface LaneAddon {
  FaultLane: new (socketFd: number, stallMs: number, cb: (n: LaneNotice[]) => void) => FaultLaneHandle;
  LaneServer: new (socketFd: number, memfd: number, pageSize: number, pageCount: number, stallMs: number, cb: (n: LaneServerNotice[]) => void) => LaneServerHandle;
}

const addon = (): LaneAddon => loadAddon<LaneAddon>();

export function createFaultLane(socketFd: number, stallMs: number, onNotices: (n: LaneNotice[]) => void): FaultLaneHandle {
  return new (addon().FaultLane)(socketFd, stallMs, onNotices);
}

export function createLaneServer(socketFd: number, memfd: number, pageSize: number, pageCount: number, stallMs: number, onNotices: (n: LaneServerNotice[]) => void): LaneServerHandle {
  return new (addon().LaneServer)(socketFd, memfd, pageSize, pageCount, stallMs, onNotices);
}
