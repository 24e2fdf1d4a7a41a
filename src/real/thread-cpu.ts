/**
 * A per-thread CPU account of a real run (issue 9): for an agent's own
 * process and its guest, each thread's CPU time at a few marks of the
 * migration (its start, the pause, the end), read from /proc. Each agent
 * reads its own host's processes; the destination sends its account in its
 * final report and the source checks it (checkCpuAccount) before it goes
 * into the report's `real_cpu_threads`.
 *
 * Per thread: utime+stime from /proc/PID/task/TID/stat (the kernel's
 * accounting, in USER_HZ ticks: 10 ms), and, where the kernel has it,
 * /proc/PID/task/TID/schedstat's time on a CPU and time runnable but
 * waiting for one (ns). The ns figure is what `cpu_ms` holds when present:
 * a 1 GiB background lasts well under a second, and ticks would round a
 * thread's share of it to 0 or 10 ms. Waiting matters on 2 cores: a thread
 * ready to move pages but queued behind another is wall time too.
 *
 * A thread born after a mark has no figure at it (null: 0 for what came
 * after); a thread gone before a mark keeps its last figure (what it ran
 * between its last mark and its exit is lost: the sampler reads marks, it
 * does not follow exits). Reading is best effort: a process or thread that
 * vanishes while read is skipped, never an error in the migration.
 */
import { closeSync, openSync, readdirSync, readSync } from "node:fs";
import type { CpuAccount, CpuThreadRow } from "../engine/report.js";
import { nowUs } from "./clock.js";

export type { CpuAccount, CpuThreadRow };

/**
 * USER_HZ: the unit of utime and stime in /proc/PID/stat. The kernel's ABI
 * fixes it at 100 on every architecture Linux runs Node on (CONFIG_HZ may
 * differ; /proc converts), and Node has no sysconf(_SC_CLK_TCK) to ask.
 */
export const USER_HZ = 100;

/** The fields of /proc/PID/task/TID/stat this account uses. */
export interface TaskStat {
  tid: number;
  comm: string;
  state: string;
  utimeTicks: number;
  stimeTicks: number;
}

/**
 * Parses one /proc/.../stat line: "TID (COMM) STATE PPID ...". COMM is the
 * thread's name, up to 15 bytes of anything but NUL: spaces and parentheses
 * included, so it ends at the line's LAST ")". utime and stime are fields
 * 14 and 15 (1-based; proc(5)), the 12th and 13th after STATE.
 */
export function parseTaskStat(line: string): TaskStat {
  const open = line.indexOf(" (");
  const close = line.lastIndexOf(")");
  if (open <= 0 || close < open) throw new Error(`not a /proc stat line: ${JSON.stringify(line.slice(0, 80))}`);
  const tid = Number(line.slice(0, open));
  // The kernel separates fields with one space; only the first 13 after COMM are needed.
  const rest = line.slice(close + 2).split(" ", 14);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isSafeInteger(tid) || tid <= 0 || rest.length < 13 || !Number.isSafeInteger(utime) || !Number.isSafeInteger(stime) || utime < 0 || stime < 0) {
    throw new Error(`malformed /proc stat line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return { tid, comm: line.slice(open + 2, close), state: rest[0], utimeTicks: utime, stimeTicks: stime };
}

/** /proc/.../schedstat: "RUN_NS WAIT_NS SLICES"; null when it is not three counts. */
export function parseSchedstat(text: string): { runNs: number; waitNs: number } | null {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length !== 3 || !f.every((x) => Number.isSafeInteger(x) && x >= 0)) return null;
  return { runNs: f[0], waitNs: f[1] };
}

/** Which part of a migration a thread is, from its process's part, whether it is the main thread, and its name. */
export function threadRole(guest: boolean, main: boolean, comm: string): string {
  if (guest) return main ? "guest control" : "vcpu";
  if (main) return "loop";
  if (comm.startsWith("ppsim-bulk-")) return "bulk";
  if (comm === "ppsim-lane" || comm === "ppsim-lane-srv") return "lane";
  if (comm === "ppsim-faults") return "fault reader";
  if (comm === "ppsim-punch") return "puncher";
  if (comm.startsWith("ppsim-")) return comm;
  // Node 20 names none of its own: V8's platform workers (GC, compiling), libuv's pool, the inspector's.
  return "node helpers";
}

export interface ThreadFigure {
  tid: number;
  comm: string;
  /** ms on a CPU: schedstat's run time where present, else utime+stime. */
  cpuMs: number;
  /** ms runnable but waiting for a CPU (schedstat), null without it. */
  waitMs: number | null;
}

/** A thread's two files, open from its first mark: pread at offset 0 reads them afresh (seq_file restarts at 0). */
interface ThreadFiles {
  stat: number;
  sched: number | null;
}

const ms3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Reads `pid`'s threads through files kept open between marks: opening two
 * /proc files per thread cost ~5x the reads themselves (on this 2-core box,
 * loaded: 11 threads ~300 µs a mark with readFileSync, ~60 µs with pread on
 * kept descriptors), and the marks after the first fall on the agents'
 * loops while pages move.
 */
class ProcessReader {
  private readonly files = new Map<number, ThreadFiles>();
  private readonly buf = Buffer.alloc(1024);

  constructor(readonly pid: number) {}

  private text(fd: number): string | null {
    try {
      return this.buf.toString("latin1", 0, readSync(fd, this.buf, 0, this.buf.length, 0));
    } catch {
      return null;
    }
  }

  private open(tid: number): ThreadFiles | null {
    const dir = `/proc/${this.pid}/task/${tid}`;
    let stat: number;
    try {
      stat = openSync(`${dir}/stat`, "r");
    } catch {
      return null;
    }
    let sched: number | null = null;
    try {
      sched = openSync(`${dir}/schedstat`, "r");
    } catch {
      // Without CONFIG_SCHED_INFO: utime+stime alone.
    }
    const f = { stat, sched };
    this.files.set(tid, f);
    return f;
  }

  /** Every thread now (empty when the process is gone). */
  read(): ThreadFigure[] {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return [];
    }
    const out: ThreadFigure[] = [];
    for (const name of tids) {
      const tid = Number(name);
      const f = this.files.get(tid) ?? this.open(tid);
      const stat = f === null ? null : this.text(f.stat);
      if (f === null || stat === null) continue;
      let s: TaskStat;
      try {
        s = parseTaskStat(stat);
      } catch {
        continue;
      }
      const ss = f.sched === null ? null : parseSchedstat(this.text(f.sched) ?? "");
      const ticksMs = ((s.utimeTicks + s.stimeTicks) * 1000) / USER_HZ;
      out.push({ tid: s.tid, comm: s.comm, cpuMs: ms3(ss === null ? ticksMs : ss.runNs / 1e6), waitMs: ss === null ? null : ms3(ss.waitNs / 1e6) });
    }
    return out;
  }

  close(): void {
    for (const f of this.files.values()) {
      for (const fd of [f.stat, f.sched]) {
        if (fd === null) continue;
        try {
          closeSync(fd);
        } catch {
          // Closed is closed.
        }
      }
    }
    this.files.clear();
  }
}

/** The processes an account follows: the agent's own (its main thread is its event loop) and its guest's. */
export interface AccountedProcess {
  process: string;
  pid: number;
  guest: boolean;
}

/** Marks taken in order; `mark(name)` reads every thread of every process (µs per thread); close() when done. */
export class ThreadCpuAccount {
  private readonly marks: string[] = [];
  private readonly at: number[] = [];
  private readonly rows = new Map<string, CpuThreadRow>();
  private readonly procs: { p: AccountedProcess; reader: ProcessReader }[] = [];

  constructor(procs: readonly AccountedProcess[] = []) {
    for (const p of procs) this.follow(p);
  }

  /** A process to follow from the next mark on (e.g. a guest spawned after the first). */
  follow(p: AccountedProcess): void {
    if (!this.procs.some((q) => q.p.pid === p.pid)) this.procs.push({ p, reader: new ProcessReader(p.pid) });
  }

  /** Reads every thread now; a mark already taken is not taken again. */
  mark(name: string): void {
    if (this.marks.includes(name)) return;
    const i = this.marks.length;
    this.marks.push(name);
    this.at.push(nowUs());
    for (const { p, reader } of this.procs) {
      for (const t of reader.read()) {
        const key = `${p.pid}/${t.tid}`;
        let row = this.rows.get(key);
        if (row === undefined) {
          row = { process: p.process, pid: p.pid, tid: t.tid, comm: t.comm, role: threadRole(p.guest, t.tid === p.pid, t.comm), cpu_ms: [], wait_ms: [] };
          this.rows.set(key, row);
        }
        // A thread names itself after it starts: the latest name is its own.
        if (t.comm !== row.comm) {
          row.comm = t.comm;
          row.role = threadRole(p.guest, t.tid === p.pid, t.comm);
        }
        while (row.cpu_ms.length < i) {
          row.cpu_ms.push(null);
          row.wait_ms.push(null);
        }
        row.cpu_ms.push(t.cpuMs);
        row.wait_ms.push(t.waitMs);
      }
    }
    // Gone before this mark: its last figure stands.
    for (const row of this.rows.values()) {
      while (row.cpu_ms.length <= i) {
        row.cpu_ms.push(row.cpu_ms.length === 0 ? null : row.cpu_ms[row.cpu_ms.length - 1]);
        row.wait_ms.push(row.wait_ms.length === 0 ? null : row.wait_ms[row.wait_ms.length - 1]);
      }
    }
  }

  get taken(): readonly string[] {
    return this.marks;
  }

  /** Closes the threads' files (a later mark opens them again); the figures stay. */
  close(): void {
    for (const { reader } of this.procs) reader.close();
  }

  result(): CpuAccount {
    return { marks: [...this.marks], at_us: [...this.at], threads: [...this.rows.values()].map((r) => ({ ...r, cpu_ms: [...r.cpu_ms], wait_ms: [...r.wait_ms] })) };
  }
}
