/**
 * The source agent's side of the standby copy (issue 16): hands the
 * operations the engine's StandbyPlan pulls (`pollStandby`) to the copy
 * thread (standby-worker.ts), which reads the pages straight from the
 * guest's memfd, checksums and writes them, at a lower priority than this
 * agent; each completion comes back here and feeds the engine. At most
 * `maxInFlight` operations are handed over at once, so the plan stays
 * current (a page dirtied meanwhile is re-chosen) and the thread never runs
 * far ahead of what the engine knows. A failed write stops the copy (the
 * window then never closes; the report says so): the migration itself goes on.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { StandbyConfig, StandbyOp } from "../engine/standby.js";
import { createCopy, removeCopy, type StandbyLayout } from "./standby-store.js";

/** 1 MiB per operation, four handed over: the disk sees large writes, the engine's plan stays current. */
export const REAL_STANDBY: StandbyConfig = { batchPages: 256, maxInFlight: 4 };
/** The copy thread's nice value: the push and the fault service (nice 0) go first. */
export const COPY_THREAD_NICE = 10;

export interface CopyThreadSetup {
  folder: string;
  pageSize: number;
  pageCount: number;
  sync: boolean;
  memfd: number;
  nice: number;
  /** A SharedArrayBuffer of one Int32: non-zero once the copy is stopped. */
  stop: SharedArrayBuffer;
}
export type ToCopyThread = StandbyOp | { kind: "stop" };
export type FromCopyThread =
  | { kind: "ready"; niceError: string | null }
  | { kind: "written"; seq: number }
  | { kind: "failed"; seq: number; error: string }
  | { kind: "stopped"; bytesWritten: number };

// Under vitest this module runs from src/ as TypeScript; the thread runs the built file.
const WORKER = import.meta.url.endsWith(".ts") ? new URL("../../dist/src/real/standby-worker.js", import.meta.url) : new URL("./standby-worker.js", import.meta.url);

export class SourceStandby {
  /** Called when an operation is done (the driver feeds the engine). */
  onWritten: (seq: number) => void = () => undefined;
  failure: string | null = null;
  bytesWritten = 0;
  private inFlight = 0;
  private stopped = false;
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  private constructor(
    readonly folder: string,
    memfd: number,
    layout: StandbyLayout,
    sync: boolean,
    nice: number,
    private readonly log: (line: string) => void,
  ) {
    const setup: CopyThreadSetup = { folder, ...layout, sync, memfd, nice, stop: this.stopFlag.buffer as SharedArrayBuffer };
    this.worker = new Worker(fileURLToPath(WORKER), { workerData: setup, name: "ppsim standby copy" });
    this.worker.unref();
    this.worker.on("message", (m: FromCopyThread) => this.onMessage(m));
    this.worker.on("error", (e) => this.fail(`the copy thread failed: ${e.message}`));
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  /** Creates the copy's folder and files in DIR and starts the copy thread on them. */
  static async start(dir: string, session: string, memfd: number, layout: StandbyLayout, sync: boolean, log: (line: string) => void, nice = COPY_THREAD_NICE): Promise<SourceStandby> {
    const folder = await createCopy(dir, session, layout);
    return new SourceStandby(folder, memfd, layout, sync, nice, log);
  }

  get hasRoom(): boolean {
    return this.failure === null && !this.stopped && this.inFlight < REAL_STANDBY.maxInFlight;
  }

  push(op: StandbyOp): void {
    if (this.stopped || this.failure !== null) return;
    this.inFlight++;
    this.worker.postMessage(op);
  }

  /** No more writes; resolves once the thread has finished the one under way and closed its files. */
  /**
   * The copy, with the pages the destination said it holds, now covers every
   * page the destination lacked at switchover: the unprotected window is
   * over. Said in the log and by a `protected` file in the copy's folder (for
   * whoever watches the copy from outside: tests, benchmarks, an operator);
   * best effort — the copy's records, not this file, are what a fill trusts.
   */
  markProtected(figures: { pagesWritten: number; heldByDestination: number }, windowMs: number): void {
    this.log(`standby copy: the VM is protected ${windowMs.toFixed(0)} ms after the switchover (${figures.pagesWritten} pages in the copy; ${figures.heldByDestination} the destination held before the copy wrote them)`);
    try {
      writeFileSync(join(this.folder, "protected"), JSON.stringify({ window_ms: windowMs, ...figures }) + "\n");
    } catch {
      // the folder is gone or the storage failed: the log line says it anyway
    }
  }

  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      Atomics.store(this.stopFlag, 0, 1);
      this.worker.postMessage({ kind: "stop" } satisfies ToCopyThread);
    }
    // A thread that died already has exited; one that hangs is ended after 5 s.
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the thread and removes the copy (nobody can need it). */
  async remove(): Promise<void> {
    await this.stop();
    await removeCopy(this.folder);
  }

  private onMessage(m: FromCopyThread): void {
    switch (m.kind) {
      case "ready":
        if (m.niceError !== null) this.log(`standby copy: could not lower the copy thread's priority (${m.niceError}); it runs at the agent's`);
        return;
      case "written":
        this.inFlight--;
        if (!this.stopped) this.onWritten(m.seq);
        return;
      case "failed":
        return this.fail(`the standby copy in ${this.folder} failed: ${m.error}`);
      case "stopped":
        this.bytesWritten = m.bytesWritten;
        return;
    }
  }

  private fail(why: string): void {
    if (this.failure !== null || this.stopped) return;
    this.failure = why;
    this.log(why);
  }
}
