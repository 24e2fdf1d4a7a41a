/**
 * The source's copy thread (issue 16): carries out the standby operations
 * the engine's plan chose, in the order they came — read the pages from the
 * guest's memfd, checksum, write data then records; the mark alone, after
 * every earlier write — and reports each one done. It runs at a lower
 * priority than the agent (its own thread's nice value), so that on a busy
 * host the post-copy push and the fault service go first.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { messageOf } from "./errors.js";
import { CopyFiles, memfdSource } from "./standby-write.js";
import type { ToCopyThread, FromCopyThread, CopyThreadSetup } from "./standby-source.js";

const setup = workerData as CopyThreadSetup;
const port = parentPort!;
const post = (m: FromCopyThread) => port.postMessage(m);
/** Set by the agent when it stops the copy: operations still queued are dropped. */
const stopFlag = new Int32Array(setup.stop);

/** Lowers this thread alone: on Linux a thread id is a valid target of setpriority(PRIO_PROCESS). */
function lowerPriority(nice: number): string | null {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (!Number.isInteger(tid) || tid <= 0) return "no thread id in /proc/thread-self";
    setPriority(tid, nice);
    return null;
  } catch (e) {
    return messageOf(e);
  }
}

let files: CopyFiles | null = null;
const niceError = lowerPriority(setup.nice);
try {
  files = CopyFiles.open(setup.folder, { pageSize: setup.pageSize, pageCount: setup.pageCount }, setup.sync);
  post({ kind: "ready", niceError });
} catch (e) {
  post({ kind: "failed", seq: -1, error: messageOf(e) });
}
const read = memfdSource(setup.memfd, setup.pageSize);
let failed = files === null;

port.on("message", (m: ToCopyThread) => {
  if (m.kind === "stop") {
    files?.close();
    post({ kind: "stopped", bytesWritten: files?.bytesWritten ?? 0 });
    port.close();
    return;
  }
  if (failed || Atomics.load(stopFlag, 0) !== 0) return;
  try {
    if (m.kind === "mark") files!.writeMark(m.seq, m.valid);
    else files!.writePages(m.seq, m.pages, read);
    post({ kind: "written", seq: m.seq });
  } catch (e) {
    failed = true;
    post({ kind: "failed", seq: m.seq, error: messageOf(e) });
  }
});
