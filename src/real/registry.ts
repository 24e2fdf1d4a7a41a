/**
 * Running source agents leave a note in a folder of their user's, so that
 * `ppsim real cancel`, run from another terminal, can find them and ask them
 * (with SIGINT) to cancel. The agent decides: a migration past switchover
 * refuses, and says so in its own output.
 *
 * Only the user's own runs: the folder is per user (mode 0700, refused if
 * someone else owns it or it is a symlink), and before a note's PID is
 * signalled it must still be the process that wrote it — same start time
 * (/proc/PID/stat), same owner, a command line that is ppsim's — so a PID
 * reused by another process is never signalled.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunningSource {
  pid: number;
  workload: string;
  peer: string;
  mode: string;
  startedAt: string;
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused PID apart. */
  startTicks: number | null;
}

const uid = () => (typeof process.getuid === "function" ? process.getuid() : -1);

export function registryDir(): string {
  return process.env.PPSIM_RUN_DIR ?? join(tmpdir(), `ppsim-sources-${uid()}`);
}

/** The folder, made private to this user if new; an error if it is not this user's own. */
function ownDir(create: boolean): string | null {
  const dir = registryDir();
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return null;
  }
  const me = uid();
  if (!st.isDirectory() || (me >= 0 && st.uid !== me)) {
    throw Object.assign(new Error(`${dir} is not a folder of this user's (a symlink, or someone else's): refusing to use it for ppsim's run notes`), { userFacing: true });
  }
  return dir;
}

/** Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces). */
export function startTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]); // fields[0] is field 3 (state)
    return Number.isSafeInteger(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/** Records this process as a running source agent; returns the function that removes the record. */
export function registerSource(entry: Omit<RunningSource, "pid" | "startedAt" | "startTicks">): () => void {
  const dir = ownDir(true) as string;
  const file = join(dir, `${process.pid}.json`);
  const record: RunningSource = { pid: process.pid, startedAt: new Date().toISOString(), startTicks: startTicks(process.pid), ...entry };
  writeFileSync(file, JSON.stringify(record), { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/** Whether `rec.pid` is still the ppsim source that wrote the record, and this user's. */
export function isOurSource(rec: RunningSource): boolean {
  const pid = rec.pid;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    if (uid() >= 0 && statSync(`/proc/${pid}`).uid !== uid()) return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!argv.some((a) => /ppsim|cli[/\\]bin\.js$/.test(a))) return false;
  } catch {
    return false; // gone (or /proc unreadable: then nothing is signalled)
  }
  return rec.startTicks === null || rec.startTicks === startTicks(pid);
}

/** This user's source agents still running (records of dead or replaced ones are removed on the way). */
export function runningSources(): RunningSource[] {
  const dir = ownDir(false);
  if (dir === null) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: RunningSource[] = [];
  for (const name of names) {
    if (!/^\d+\.json$/.test(name)) continue;
    const file = join(dir, name);
    let rec: RunningSource;
    try {
      rec = JSON.parse(readFileSync(file, "utf8")) as RunningSource;
    } catch {
      continue; // being written
    }
    if (typeof rec !== "object" || rec === null || `${rec.pid}.json` !== name) continue;
    if (rec.startTicks === undefined) rec.startTicks = null;
    if (isOurSource(rec)) found.push(rec);
    else rmSync(file, { force: true });
  }
  return found.sort((a, b) => a.pid - b.pid);
}
