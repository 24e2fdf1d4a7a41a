/**
 * Same inputs, same reports: runs a fixed set of simulations (every example
 * workload and recorded trace × mode × seed, and variants of link, outages,
 * options, vCPU count and of how the run is stepped) and prints a SHA-256 of
 * each run's report, its verification and, for stepped runs, every snapshot
 * on the way. A change meant to make the simulator faster, not different,
 * must leave every line as it was:
 *
 *   npm run build && node dist/bench/sim-identical.js > after.txt
 *   (the same in a build of main) > before.txt; diff before.txt after.txt
 *
 * or, against another build directly (prints the first differing field):
 *
 *   node dist/bench/sim-identical.js --against /path/to/other/dist
 *
 * `--ignore-events` leaves out the two figures that count the simulator's
 * own steps rather than what it simulates: the report's queue-event count
 * (`sim.events`) and the live view's recent guest progress (sampled at the
 * first event 10 ms after the previous sample). For a change that simulates
 * the same run with fewer events (the fourth pass's link, issue 14).
 *
 * `--ignore-option a,b` leaves out those keys wherever the report echoes
 * them (the options it ran with): for a build that adds an option whose
 * default changes nothing else, so that only runs it does change differ.
 */
import { createHash } from "node:crypto";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DEFAULT_HOST } from "../src/sim/host.js";
import * as sim from "../src/sim/simulation.js";
import * as parse from "../src/workload/parse.js";
import * as types from "../src/workload/types.js";

type SimModule = typeof sim;
interface Build {
  sim: SimModule;
  loadWorkload: typeof parse.loadWorkload;
  withMemory: typeof types.withMemory;
  /** Each build's own shipped profile: a newer profile's keys are unknown to an older build. */
  defaultHost: typeof DEFAULT_HOST;
}

interface Case {
  name: string;
  workload: string;
  mib: number;
  vcpus?: number;
  mode: "precopy" | "postcopy" | "hybrid";
  seed: number;
  link: string;
  options?: Record<string, unknown>;
  outages?: { atMs: number; durationMs: number }[];
  /** Step the run in slices of this many virtual ms (the live view's way) and hash every snapshot. */
  stepMs?: number;
  maxVirtualMs?: number;
  /** Run with the shipped host profile (src/sim/host.ts). */
  host?: boolean;
  /** Keep a standby copy on storage of this write rate (bytes/s, 0.5 ms latency); the source may die. */
  standbyBytesPerSec?: number;
  sourceDiesAtMs?: number;
}

const WORKLOADS = [
  ...["web-server", "database", "idle", "memory-scan", "traces/sqlite-bank", "traces/python-alloc", "traces/gzip-stream"],
  ...["huge-pages/random", "huge-pages/sequential", "async-faults/web-and-batch", "async-faults/database-and-log"],
];
const MODES = ["precopy", "postcopy", "hybrid"] as const;

function cases(): Case[] {
  const out: Case[] = [];
  const add = (c: Omit<Case, "name">, tag = "") => out.push({ ...c, name: `${c.workload} ${c.mib}MiB ${c.vcpus ?? "-"}vcpu ${c.mode} seed${c.seed} ${c.link}${tag}` });
  for (const workload of WORKLOADS) for (const mode of MODES) for (const seed of [1, 7]) add({ workload, mib: 128, mode, seed, link: "10Gbit,0.1ms" });
  for (const workload of ["web-server", "database", "memory-scan"]) {
    for (const mode of MODES) {
      add({ workload, mib: 64, mode, seed: 3, link: "1Gbit,1ms,shared" });
      add({ workload, mib: 64, mode, seed: 3, link: "1Gbit,0.5ms", outages: [{ atMs: 40, durationMs: 25 }, { atMs: 400, durationMs: 60 }] }, " outages");
      add({ workload, mib: 64, vcpus: 16, mode, seed: 5, link: "2Gbit,0.2ms" });
      add({ workload, mib: 64, mode, seed: 2, link: "10Gbit,0.1ms", stepMs: 7 }, " stepped");
      add({ workload, mib: 64, mode, seed: 4, link: "1Gbit,0.1ms", options: { backgroundOrder: "linear", prefetchPages: 0, batchPages: 5 } }, " linear");
      add({ workload, mib: 64, mode, seed: 4, link: "1Gbit,0.1ms", options: { urgentChannel: false, bandwidthCap: 60e6, laneWindowBytes: 256 * 1024 } }, " capped");
      add({ workload, mib: 64, mode, seed: 6, link: "10Gbit,0.1ms", options: { autoConverge: false, maxRounds: 3, downtimeLimitMs: 20, hybridRounds: 1 } }, " rounds");
    }
  }
  for (const workload of ["web-server", "database"]) for (const mode of MODES) add({ workload, mib: 64, mode, seed: 8, link: "10Gbit,0.1ms", host: true }, " host");
  for (const workload of ["web-server", "database"]) {
    for (const mode of MODES) {
      add({ workload, mib: 64, mode, seed: 10, link: "1Gbit,0.1ms", standbyBytesPerSec: 200e6 }, " standby");
      for (const dies of [30, 300]) add({ workload, mib: 64, mode, seed: 10, link: "1Gbit,0.1ms", standbyBytesPerSec: 200e6, sourceDiesAtMs: dies, options: { reconnectTimeoutMs: 100 } }, ` standby dies@${dies}ms`);
    }
  }
  add({ workload: "database", mib: 64, mode: "postcopy", seed: 1, link: "100Mbit,1ms", maxVirtualMs: 800 }, " deadline");
  add({ workload: "web-server", mib: 32, vcpus: 64, mode: "postcopy", seed: 9, link: "1Gbit,0.1ms" });
  return out;
}

function runCase(b: Build, c: Case): string {
  const base = b.loadWorkload(fileURLToPath(new URL(`../../examples/${c.workload}.json`, import.meta.url)));
  const w = b.withMemory(base, c.mib * 1024 * 1024);
  const workload = c.vcpus === undefined ? w : { ...w, vcpus: c.vcpus };
  const s = new b.sim.Simulation({ workload, options: { mode: c.mode, ...c.options }, link: b.sim.parseLink(c.link), seed: c.seed, outages: c.outages, maxVirtualMs: c.maxVirtualMs, host: c.host ? b.defaultHost : null,
    ...(c.standbyBytesPerSec === undefined ? {} : { standby: { writeBytesPerSec: c.standbyBytesPerSec, latencyUs: 500 } }),
    ...(c.sourceDiesAtMs === undefined ? {} : { sourceDiesAtMs: c.sourceDiesAtMs }),
  });
  const parts: unknown[] = [];
  if (c.stepMs !== undefined) {
    for (let t = -50; !s.done && t < 600_000; t += c.stepMs) {
      s.advanceTo(t);
      parts.push(s.snapshot(), s.progressTrace());
    }
  }
  parts.push(s.runToEnd(), s.verify(), s.progressTrace());
  let text = JSON.stringify(parts);
  for (const k of ignoreOptions) text = text.replace(new RegExp(`"${k}":[-\\d.e]+,?`, "g"), "");
  return ignoreEvents ? text.replace(/"sim":\{"events":\d+/g, '"sim":{"events":0').replace(/"guestProgress":[-\d.e]+/g, '"guestProgress":0') : text;
}

const ignoreEvents = process.argv.includes("--ignore-events");
const ignoreAt = process.argv.indexOf("--ignore-option");
const ignoreOptions = ignoreAt >= 0 ? (process.argv[ignoreAt + 1] ?? "").split(",").filter((k) => /^\w+$/.test(k)) : [];

const digest = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 16);

/** The first place two JSON texts differ, with some context. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `at char ${i}: ...${a.slice(Math.max(0, i - 80), i + 40)}... vs ...${b.slice(Math.max(0, i - 80), i + 40)}...`;
}

const here: Build = { sim, loadWorkload: parse.loadWorkload, withMemory: types.withMemory, defaultHost: DEFAULT_HOST };
const againstAt = process.argv.indexOf("--against");
if (againstAt >= 0) {
  const dir = process.argv[againstAt + 1];
  const load = (p: string) => import(pathToFileURL(`${dir}/${p}`).href);
  const other: Build = { sim: (await load("src/sim/simulation.js")) as SimModule, loadWorkload: (await load("src/workload/parse.js")).loadWorkload, withMemory: (await load("src/workload/types.js")).withMemory, defaultHost: (await load("src/sim/host.js")).DEFAULT_HOST };
  let differ = 0;
  const all = cases();
  for (const c of all) {
    const mine = runCase(here, c);
    const theirs = runCase(other, c);
    if (mine !== theirs) {
      differ++;
      console.log(`DIFFERS ${c.name}\n  ${firstDifference(theirs, mine)}`);
    } else console.log(`same    ${digest(mine)} ${c.name}`);
  }
  console.log(differ === 0 ? `all ${all.length} runs identical` : `${differ} of ${all.length} runs differ`);
  process.exitCode = differ === 0 ? 0 : 1;
} else {
  for (const c of cases()) console.log(`${digest(runCase(here, c))} ${c.name}`);
}
