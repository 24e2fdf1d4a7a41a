/**
 * `ppsim calibrate`'s measurements of the host's cores as a migration finds
 * them (src/sim/host-cpu.ts is the model that charges them). A real
 * migration with both ends on one host puts two agents' event loops, the
 * data plane's sender and receiver threads and the guests' vCPU threads (at
 * nice 19) on the same cores, beside whatever else the machine runs:
 *
 * - cores available: `cores` spinning children at nice 0 for a while, the
 *   CPU they got over the wall time (a quiet 2-core host gives ~2, a host
 *   shared with other work less);
 * - the engines' own work per page: both pure engines (src/engine) driven
 *   by the simulator with free hosts over a post-copy of an idle guest, CPU
 *   time per page: what the agents' event loops spend beside the data plane;
 * - a vCPU's share while the data plane streams (median of three): spinning children at nice
 *   19 (like the guest's vCPU threads), the CPU they get while a native bulk
 *   stream runs beside them, over what they get when none of it runs
 *   (before and after it: the larger);
 * - the stream's wall time per page with those spinners beside it (median
 *   of three), pages with data and holes, the receiver installing as before
 *   the switchover (pwrite) and as after it (userfaultfd, post-copy): how
 *   fast pages move with the guest's vCPUs on the same cores;
 * - the urgent round trip while it streams: a one-byte ping-pong with a
 *   child over loopback TCP (a page request and its reply cross two
 *   processes), p50 during the stream minus p50 without it;
 * - a vCPU's wait for a core after its fault's install, beside a stream
 *   installing as after the switchover and those spinners (median of three
 *   streams): calibrate-wake.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { percentiles } from "../engine/metrics.js";
import { simulate } from "../sim/simulation.js";
import { parseWorkload } from "../workload/parse.js";
import { bulkStream, type BulkFigures } from "./calibrate-bulk.js";
import { wakeFigure, wakeLoop } from "./calibrate-wake.js";

const SPIN = "require('os').setPriority(0, Number(process.argv[1])); process.stdout.write('go\\n'); for (;;) {}";

/** CPU time of a process's threads so far, ns (/proc/PID/schedstat: its main thread, which is the one spinning). */
function cpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
}

async function spinners(n: number, nice: number): Promise<{ cpu: () => number; stop: () => void }> {
  const ps: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const p = spawn(process.execPath, ["-e", SPIN, String(nice)], { stdio: ["ignore", "pipe", "ignore"] });
    ps.push(p);
    await new Promise<void>((r, j) => {
      p.stdout?.once("data", () => r());
      p.once("error", j);
    });
  }
  return {
    cpu: () => ps.reduce((s, p) => s + (p.pid === undefined ? 0 : cpuNs(p.pid)), 0),
    stop: () => ps.forEach((p) => p.kill("SIGKILL")),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU per wall second that `cores` nice-0 spinners get together, over `ms`. */
export async function coresAvailable(cores: number, ms = 300): Promise<number> {
  const s = await spinners(cores, 0);
  try {
    await sleep(20);
    const c0 = s.cpu();
    const t0 = process.hrtime.bigint();
    await sleep(ms);
    return (s.cpu() - c0) / Number(process.hrtime.bigint() - t0);
  } finally {
    s.stop();
  }
}

/** Both engines' work per page, ns: a post-copy of an idle guest in the simulator with free hosts, CPU time per page. */
export function enginePerPageNs(pages = 32768): number {
  const w = parseWorkload(
    {
      ppsim_workload: 1,
      name: "calibrate-engine",
      memory: `${pages * 4}KiB`,
      vcpus: 1,
      phases: [{ steps: 10, compute_ns: 1e9, write_share: 0, pattern: { kind: "uniform" } }],
    },
    "calibration workload",
  );
  // CPU time, not wall time: on a shared host the wall time has the contention in it, which cores_available charges.
  // Once first, untimed: the agents' engines run warm (compiled), a cold first run costs ~10× as much; then the
  // least of three (a first cell of a benchmark still measured 2–2.7 µs where the warm engine takes ~0.2).
  simulate({ workload: w, link: { bandwidthBytesPerSec: 100e9, latencyUs: 1 }, options: { mode: "postcopy" }, host: null });
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const c = process.cpuUsage();
    const r = simulate({ workload: w, link: { bandwidthBytesPerSec: 100e9, latencyUs: 1 }, options: { mode: "postcopy" }, host: null });
    const u = process.cpuUsage(c);
    best = Math.min(best, ((u.user + u.system) * 1000) / r.pages_sent);
  }
  return best;
}

/** A child echoing one-byte pings over loopback TCP. */
async function echoChild(): Promise<{ sock: Socket; stop: () => void }> {
  const src = `const s = require("net").createServer((c) => { c.setNoDelay(true); c.on("data", (d) => c.write(d)); }); s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
  const p = spawn(process.execPath, ["-e", src], { stdio: ["ignore", "pipe", "ignore"] });
  const port = await new Promise<number>((r) => p.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))));
  const sock = connect({ host: "127.0.0.1", port });
  sock.on("error", () => undefined);
  sock.setNoDelay(true);
  await new Promise((r) => sock.once("connect", r));
  return { sock, stop: () => (sock.destroy(), p.kill("SIGKILL")) };
}

/** Pings until `until` settles; their round trips, µs. */
async function pingsUntil(sock: Socket, until: Promise<unknown>, max: number): Promise<number[]> {
  let done = false;
  void until.then(() => (done = true));
  const us: number[] = [];
  while (!done && us.length < max) {
    const t = performance.now();
    sock.write(Buffer.from([1]));
    await new Promise((r) => sock.once("data", r));
    us.push((performance.now() - t) * 1000);
  }
  return us;
}

export interface StreamingFigures {
  bulk: BulkFigures;
  /** A nice-19 spinner's CPU while the stream ran over its CPU without it. */
  guestShare: number;
  /** Urgent round trip p50 while the stream ran, minus without it, µs (≥ 0). */
  urgentExtraUs: number;
  /** The stream's wall time per page with data, and per hole, with the spinners beside it, ns: installed as before the switchover, and as after it. */
  streamNsPerPage: number;
  streamNsPerZeroPage: number;
  streamNsPerPageRunning: number;
  streamNsPerZeroPageRunning: number;
  /** The same four into memory populated ahead (calibrate-bulk.ts `populated`; host-populated.ts). */
  streamNsPerPagePopulated: number;
  streamNsPerZeroPagePopulated: number;
  streamNsPerPageRunningPopulated: number;
  streamNsPerZeroPageRunningPopulated: number;
  /** A nice-19 thread's wait for a core after its fault's install, µs (null: no fault measured). */
  faultWakeUs: number | null;
}

const median3 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/**
 * Native streams of `pages` pages with `vcpus` nice-19 spinners (the guest's
 * vCPUs) and a ping-pong beside them. Nothing stands for the agents' event
 * loops: they wait for the stream as much as they work, and two nice-0
 * spinners in their place (an earlier version) took both cores from the
 * vCPUs — a share of 0.02–0.17 where the real source guest kept 0.4–0.8 of
 * its speed through pre-copy (docs/host-profile.md).
 */
export async function streaming(pages: number, vcpus: number): Promise<StreamingFigures> {
  const echo = await echoChild();
  const spin = await spinners(vcpus, 19);
  try {
    await sleep(20);
    const idle = async () => {
      const c = spin.cpu();
      const t = process.hrtime.bigint();
      const us = await pingsUntil(echo.sock, sleep(150), 4000);
      return { us, share: (spin.cpu() - c) / Number(process.hrtime.bigint() - t) };
    };
    // Three streams, each between two windows without it: the machine's other work comes and goes, so each
    // stream's share is over the larger of its two neighbours, and the median of the three is kept.
    let prev = await idle();
    const ratios: number[] = [];
    const wall: number[] = [];
    const wallZero: number[] = [];
    const wallRunning: number[] = [];
    const wallZeroRunning: number[] = [];
    const pop: [number[], number[], number[], number[]] = [[], [], [], []];
    const wake: number[] = [];
    const idleUs = [...prev.us];
    const busyUs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c0 = spin.cpu();
      const t0 = process.hrtime.bigint();
      const run = bulkStream(pages, false);
      busyUs.push(...(await pingsUntil(echo.sock, run, 100_000)));
      const b = await run;
      const busyShare = (spin.cpu() - c0) / Number(process.hrtime.bigint() - t0);
      wall.push(b.wallNsPerPage);
      wallZero.push((await bulkStream(pages, false, { holes: true })).wallNsPerPage);
      wallRunning.push((await bulkStream(pages, false, { running: true })).wallNsPerPage);
      wallZeroRunning.push((await bulkStream(pages, false, { holes: true, running: true })).wallNsPerPage);
      const shapes = [{}, { holes: true }, { running: true }, { holes: true, running: true }];
      for (let k = 0; k < 4; k++) pop[k].push((await bulkStream(pages, false, { ...shapes[k], populated: true })).wallNsPerPage);
      // A stream of its own: the faults' CPU beside it would be in the running stream's wall time above.
      // As many faulting threads as spinners stand for vCPUs, up to libuv's pool (4 touches at once by default):
      // a vCPU woken from its fault waits behind the others woken too (one thread alone measured a tenth of it).
      const faults = wakeLoop(16384, Math.min(4, vcpus));
      let w: number | null;
      try {
        await bulkStream(pages, false, { running: true });
      } finally {
        w = wakeFigure(await faults.stop());
      }
      if (w !== null) wake.push(w);
      const next = await idle();
      idleUs.push(...next.us);
      const idleShare = Math.max(prev.share, next.share);
      ratios.push(idleShare > 0 ? Math.min(1, busyShare / idleShare) : 1);
      prev = next;
    }
    const extra = busyUs.length === 0 ? 0 : percentiles(busyUs).p50 - percentiles(idleUs).p50;
    // The stream's own CPU apart, without the spinners and the ping-pong (whose CPU would be counted in it).
    const bulk = await bulkStream(pages, false);
    return { bulk, guestShare: median3(ratios), urgentExtraUs: Math.max(0, extra), streamNsPerPage: median3(wall),
      streamNsPerZeroPage: median3(wallZero),
      streamNsPerPageRunning: median3(wallRunning),
      streamNsPerZeroPageRunning: median3(wallZeroRunning),
      streamNsPerPagePopulated: median3(pop[0]),
      streamNsPerZeroPagePopulated: median3(pop[1]),
      streamNsPerPageRunningPopulated: median3(pop[2]),
      streamNsPerZeroPageRunningPopulated: median3(pop[3]),
      faultWakeUs: wake.length === 0 ? null : median3(wake),
    };
  } finally {
    spin.stop();
    echo.stop();
  }
}
