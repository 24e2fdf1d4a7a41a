/**
 * Opt-in stamps inside the switchover's legs (issue 9), for finding where a
 * leg's time goes where the report's trace is too coarse:
 * `PPSIM_SWITCHOVER_STAMPS=DIR` makes each agent keep named stamps (µs on
 * the agents' clock, clock.ts) and write DIR/<role>-<pid>.json a few
 * seconds after its first one — never inside the downtime. Off (unset),
 * `stamp` is one null check.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { nowUs } from "./clock.js";

const DIR = process.env.PPSIM_SWITCHOVER_STAMPS;
/** Long enough for the switchover to be over, short enough for a 256 MiB run. */
const FLUSH_AFTER_MS = 1500;

let stamps: [string, number, number][] | null = DIR === undefined || DIR === "" ? null : [];
let timer: NodeJS.Timeout | undefined;
let role = "agent";

/** Names this process's file (destination or source). */
export function stampRole(r: string): void {
  role = r;
}

export function stamp(name: string): void {
  if (stamps === null) return;
  const c = process.cpuUsage();
  // The process's CPU time beside the wall clock: a leg whose CPU time is far below its span waited (a core, a wake-up).
  stamps.push([name, nowUs(), c.user + c.system]);
  timer ??= setTimeout(flush, FLUSH_AFTER_MS).unref();
}

function flush(): void {
  timer = undefined;
  if (stamps === null || DIR === undefined) return;
  appendFileSync(join(DIR, `${role}-${process.pid}.jsonl`), JSON.stringify({ role, pid: process.pid, stamps }) + "\n");
  stamps = [];
}
