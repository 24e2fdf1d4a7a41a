/**
 * Running source agents leave a note in a shared folder, so that
 * `ppsim real cancel`, run from another terminal, can find them and ask them
 * (with SIGINT) to cancel. The agent decides: a migration past switchover
 * refuses, and says so in its own output.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunningSource {
  pid: number;
  workload: string;
  peer: string;
  mode: string;
  startedAt: string;
}

export function registryDir(): string {
  return process.env.PPSIM_RUN_DIR ?? join(tmpdir(), "ppsim-sources");
}

/** Records this process as a running source agent; returns the function that removes the record. */
export function registerSource(entry: Omit<RunningSource, "pid" | "startedAt">): () => void {
  const dir = registryDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${process.pid}.json`);
  const record: RunningSource = { pid: process.pid, startedAt: new Date().toISOString(), ...entry };
  writeFileSync(file, JSON.stringify(record));
  return () => rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The source agents still running (records of dead ones are removed on the way). */
export function runningSources(): RunningSource[] {
  const dir = registryDir();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: RunningSource[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let rec: RunningSource;
    try {
      rec = JSON.parse(readFileSync(file, "utf8")) as RunningSource;
    } catch {
      continue; // being written, or not ours
    }
    if (Number.isSafeInteger(rec.pid) && rec.pid > 0 && alive(rec.pid)) found.push(rec);
    else rmSync(file, { force: true });
  }
  return found.sort((a, b) => a.pid - b.pid);
}
