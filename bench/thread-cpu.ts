/**
 * Where a benchmark's CPU went, thread by thread: this process and its
 * descendants (the source agent in this process, its guest, the destination
 * agent and its guest), sampled from /proc/PID/task/TID/schedstat (ns on a
 * CPU, ns runnable but waiting for one) every `everyMs` while `measure`
 * runs. A thread's figure is its last sample minus its first (threads born
 * meanwhile start at 0; a thread's last < everyMs before it exits is lost).
 * The sampling runs on the source agent's loop (a few hundred µs a sample).
 * Threads are grouped by process role and thread, named as the reports'
 * per-thread account names them (src/real/thread-cpu.ts threadRole: loop,
 * bulk, lane, fault reader, puncher, node helpers; guest control, vcpu),
 * whose schedstat parser this shares.
 */
import { readdirSync, readFileSync } from "node:fs";
import { parseSchedstat, threadRole } from "../src/real/thread-cpu.js";

interface Sample { role: string; thread: string; run0: number; wait0: number; run: number; wait: number }

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** The process and its descendants, from each thread's children list (/proc/PID/task/TID/children). */
function descendants(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const t of tids) for (const c of (read(`/proc/${out[i]}/task/${t}/children`) ?? "").split(/\s+/)) if (c !== "") out.push(Number(c));
  }
  return out;
}

/** The process's part in the migration, or null when it is gone (or a zombie: no command line left). */
function roleOf(pid: number, root: number): string | null {
  const cmd = (read(`/proc/${pid}/cmdline`) ?? "").split("\0");
  if (cmd[0] === "") return null;
  const guest = cmd[0].endsWith("ppsim-guest");
  const ppid = Number((read(`/proc/${pid}/stat`) ?? ") x 0").split(") ")[1]?.split(" ")[1] ?? 0);
  if (pid === root) return "source agent";
  if (guest) return ppid === root ? "source guest" : "destination guest";
  return cmd[0].endsWith("node") || cmd.some((a) => a.endsWith("bin.js")) ? "destination agent" : `other (${cmd[0]})`;
}

export interface ThreadCpuRow { role: string; thread: string; threads: number; cpu_ms: number; wait_ms: number }

/** Starts sampling now; stop() takes a last sample and returns ms on a CPU / waiting for one, per role and thread. */
export function startThreadCpu(everyMs = 50): { stop: () => ThreadCpuRow[] } {
  const root = process.pid;
  const seen = new Map<string, Sample>();
  const roles = new Map<number, string>();
  let started = false;
  const sample = (): void => {
    for (const pid of descendants(root)) {
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue;
      }
      let role = roles.get(pid) ?? null;
      if (role === null) {
        role = roleOf(pid, root);
        if (role === null) continue;
        roles.set(pid, role);
      }
      const guest = role.endsWith("guest");
      for (const tid of tids) {
        const ss = parseSchedstat(read(`/proc/${pid}/task/${tid}/schedstat`) ?? "");
        if (ss === null) continue;
        const run = ss.runNs;
        const wait = ss.waitNs;
        const key = `${pid}/${tid}`;
        const s = seen.get(key);
        if (s !== undefined) {
          s.run = run;
          s.wait = wait;
          continue;
        }
        const comm = (read(`/proc/${pid}/task/${tid}/comm`) ?? "").trim();
        const thread = threadRole(guest, Number(tid) === pid, comm);
        // Born after the first sample: all its time is the measurement's.
        seen.set(key, { role, thread, run0: started ? 0 : run, wait0: started ? 0 : wait, run, wait });
      }
    }
  };
  sample();
  started = true;
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      const groups = new Map<string, ThreadCpuRow>();
      for (const s of seen.values()) {
        const run = (s.run - s.run0) / 1e6;
        const wait = (s.wait - s.wait0) / 1e6;
        if (run <= 0 && wait <= 0) continue;
        const k = `${s.role}/${s.thread}`;
        const g = groups.get(k) ?? { role: s.role, thread: s.thread, threads: 0, cpu_ms: 0, wait_ms: 0 };
        g.threads++;
        g.cpu_ms += run;
        g.wait_ms += wait;
        groups.set(k, g);
      }
      return [...groups.values()].map((g) => ({ ...g, cpu_ms: Math.round(g.cpu_ms), wait_ms: Math.round(g.wait_ms) })).sort((a, b) => b.cpu_ms - a.cpu_ms);
    },
  };
}
