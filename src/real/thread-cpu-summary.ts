/**
 * The per-thread CPU account (thread-cpu.ts) as the report holds it and as
 * a bench reads it: the destination's account checked (a peer's words), and
 * CPU between two marks summed per process and role.
 */
import { sanitize } from "./peer-text.js";
import type { CpuAccount, CpuThreadRow } from "../engine/report.js";

/** More threads than any agent and guest have (Node's ~11, the data plane's per connection, one per vCPU task). */
const MAX_THREADS = 4096;
const MAX_MARKS = 8;

const figure = (x: unknown): boolean => x === null || (typeof x === "number" && Number.isFinite(x) && x >= 0);
const count = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) > 0;
const text = (x: unknown): boolean => typeof x === "string" && x.length <= 64;

/** A peer's account, checked: every field typed and bounded, its names made safe to print; null with nothing trusted. */
export function checkCpuAccount(x: unknown): CpuAccount | null {
  const o = x as Partial<CpuAccount> | null;
  if (typeof o !== "object" || o === null || !Array.isArray(o.marks) || !Array.isArray(o.at_us) || !Array.isArray(o.threads)) return null;
  const n = o.marks.length;
  if (n > MAX_MARKS || o.at_us.length !== n || !o.marks.every(text) || !o.at_us.every((t) => typeof t === "number" && Number.isFinite(t))) return null;
  if (o.threads.length > MAX_THREADS) return null;
  const threads: CpuThreadRow[] = [];
  for (const r of o.threads as unknown[]) {
    const t = r as Partial<CpuThreadRow> | null;
    if (typeof t !== "object" || t === null || !text(t.process) || !text(t.comm) || !text(t.role) || !count(t.pid) || !count(t.tid)) return null;
    if (!Array.isArray(t.cpu_ms) || !Array.isArray(t.wait_ms) || t.cpu_ms.length !== n || t.wait_ms.length !== n || !t.cpu_ms.every(figure) || !t.wait_ms.every(figure)) return null;
    threads.push({ process: sanitize(t.process as string), pid: t.pid as number, tid: t.tid as number, comm: sanitize(t.comm as string), role: sanitize(t.role as string), cpu_ms: t.cpu_ms, wait_ms: t.wait_ms });
  }
  return { marks: (o.marks as string[]).map((m) => sanitize(m)), at_us: o.at_us, threads };
}

/** CPU and run-queue wait between two marks, summed over a process's threads of one role. */
export interface RoleCpu {
  process: string;
  role: string;
  threads: number;
  cpu_ms: number;
  /** null when no thread of the group had schedstat's figure. */
  wait_ms: number | null;
}

/**
 * Per process and role, what its threads ran from mark `from` to mark `to`
 * (a thread born between them counts from 0), most CPU first. Null when the
 * account lacks either mark.
 */
export function cpuBetween(a: CpuAccount, from: string, to: string): RoleCpu[] | null {
  const i = a.marks.indexOf(from);
  const j = a.marks.indexOf(to);
  if (i < 0 || j < 0) return null;
  const groups = new Map<string, RoleCpu>();
  const delta = (xs: (number | null)[]): number | null => (xs[j] === null ? null : Math.max(0, (xs[j] as number) - (xs[i] ?? 0)));
  for (const t of a.threads) {
    const cpu = delta(t.cpu_ms);
    if (cpu === null) continue;
    const wait = delta(t.wait_ms);
    const k = `${t.process}\u0000${t.role}`;
    const g = groups.get(k) ?? { process: t.process, role: t.role, threads: 0, cpu_ms: 0, wait_ms: null };
    g.threads++;
    g.cpu_ms += cpu;
    if (wait !== null) g.wait_ms = (g.wait_ms ?? 0) + wait;
    groups.set(k, g);
  }
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return [...groups.values()].map((g) => ({ ...g, cpu_ms: r1(g.cpu_ms), wait_ms: g.wait_ms === null ? null : r1(g.wait_ms) })).sort((x, y) => y.cpu_ms - x.cpu_ms);
}

/** The span between two marks, ms (null without either). */
export function spanMs(a: CpuAccount, from: string, to: string): number | null {
  const i = a.marks.indexOf(from);
  const j = a.marks.indexOf(to);
  return i < 0 || j < 0 ? null : Math.round((a.at_us[j] - a.at_us[i]) / 100) / 10;
}
