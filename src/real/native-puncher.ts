/**
 * The source's punching thread (native/src/puncher.cc; source-release.ts
 * says when and what): runs of pages queued from JS are punched out of the
 * guest's memfd by a thread of its own, so that freeing
 * memory never holds up the event loop that answers faults and feeds the
 * bulk senders.
 */
import { loadAddon } from "./native-load.js";

export interface PuncherStats {
  /** Pages punched so far. */
  punched: number;
  /** Pages queued and not yet punched (not counting the slice in progress). */
  queued: number;
  /** 0, or the errno of the fallocate that failed (the thread punches nothing after it). */
  errno: number;
  /** What failed, with its arguments ("" if nothing). */
  what: string;
  /** Time spent in fallocate, ns. */
  busyNs: number;
  nice: number;
  niceErrno: number;
}

export interface PuncherHandle {
  /** Queues runs ([firstPage, pageCount] pairs), punched in order; returns the pages queued. Throws after stop() or a failure. */
  punch(runs: Uint32Array): number;
  /** Drops what is still queued and joins the thread (the memfd is about to close: that frees the rest). */
  stop(): void;
  stats(): PuncherStats;
}

interface RawPuncher {
  Puncher: new (memfd: number, pageSize: number, pageCount: number, nice: number, slicePages: number) => PuncherHandle;
}

/**
 * A punching thread on its own duplicate of `memfd` (JS may close its fd while runs are queued),
 * punching at most `slicePages` pages per fallocate (each holds the memfd's inode lock).
 */
export function startPuncher(memfd: number, pageSize: number, pageCount: number, nice: number, slicePages: number): PuncherHandle {
  const Ctor = loadAddon<RawPuncher>().Puncher;
  return new Ctor(memfd, pageSize, pageCount, nice, slicePages);
}
