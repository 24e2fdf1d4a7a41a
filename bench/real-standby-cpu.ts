/**
 * What the standby copy costs in CPU (docs/standby.md): the source's copy
 * thread (src/real/standby-source.ts) writes a 1 GiB guest memory file (on
 * /dev/shm, like a memfd: shared memory, every page non-zero) to DIR in the
 * engine's 1 MiB operations, four handed over at a time, as in a migration
 * but alone; the thread's own CPU time (from /proc) and the wall time. Beside
 * it, in the same run: DIR's page-cache write speed, and the checksum alone
 * over the same pages, XXH64 (format 2) against SHA-1 (format 1), one page
 * per call as the copy does it.
 *
 *   node dist/bench/real-standby-cpu.js [--dir DIR] [--memory 1GiB] [--runs 3]
 */
import { hash } from "node:crypto";
import { closeSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs } from "./args.js";
import { Bitmap } from "../src/engine/bitmap.js";
import { COPY_THREAD_NICE, REAL_STANDBY, SourceStandby } from "../src/real/standby-source.js";
import { checksum } from "../src/real/standby-store.js";
import { parseByteSize } from "../src/workload/size.js";
import { median, printBench, type Row } from "./table.js";

const MiB = 2 ** 20;
const PS = 4096;
const TICK_S = 0.01; // USER_HZ on Linux

/** utime + stime of each thread of this process with the given nice value, seconds. */
function cpuOfNice(nice: number): number {
  let s = 0;
  for (const t of readdirSync("/proc/self/task")) {
    const f = readFileSync(`/proc/self/task/${t}/stat`, "utf8").slice(0, 4096);
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[16]) === nice) s += (Number(fields[11]) + Number(fields[12])) * TICK_S;
  }
  return s;
}

function cachedWriteMiBs(dir: string, mib: number): number {
  const f = join(dir, "speed.tmp");
  const fd = openSync(f, "w+");
  const b = Buffer.alloc(MiB, 7);
  try {
    ftruncateSync(fd, mib * MiB);
    const t = performance.now();
    for (let i = 0; i < mib; i++) writeSync(fd, b, 0, MiB, i * MiB);
    return Math.round(mib / ((performance.now() - t) / 1000));
  } finally {
    closeSync(fd);
    rmSync(f, { force: true });
  }
}

/** One page per call over `mib` MiB of `data` (reused): MiB/s. */
function hashMiBs(data: Buffer, mib: number, f: (page: number, b: Buffer) => unknown): number {
  const pages = data.length / PS;
  const t = performance.now();
  for (let i = 0; i < (mib * MiB) / PS; i++) f(i, data.subarray((i % pages) * PS, ((i % pages) + 1) * PS));
  return Math.round(mib / ((performance.now() - t) / 1000));
}

async function copyOnce(dir: string, memfd: number, pageCount: number, session: string): Promise<{ wall_s: number; cpu_s: number }> {
  const sb = await SourceStandby.start(dir, session, memfd, { pageSize: PS, pageCount }, false, (l) => console.error(l));
  const before = cpuOfNice(COPY_THREAD_NICE);
  const t = performance.now();
  let seq = 0;
  let next = 0;
  let cpu = 0;
  await new Promise<void>((resolve, reject) => {
    let done = 0;
    const ops = Math.ceil(pageCount / REAL_STANDBY.batchPages) + 1;
    const feed = () => {
      while (sb.hasRoom && seq < ops) {
        if (seq === 0) sb.push({ kind: "mark", seq: seq++, valid: new Bitmap(pageCount).toBytes() });
        else {
          const n = Math.min(REAL_STANDBY.batchPages, pageCount - next);
          sb.push({ kind: "pages", seq: seq++, pages: Uint32Array.from({ length: n }, (_, i) => next + i) });
          next += n;
        }
      }
    };
    const failed = setInterval(() => {
      if (sb.failure === null) return;
      clearInterval(failed);
      reject(new Error(sb.failure));
    }, 50);
    sb.onWritten = () => {
      if (++done < ops) return feed();
      cpu = cpuOfNice(COPY_THREAD_NICE) - before; // before the thread ends and leaves /proc
      clearInterval(failed);
      resolve();
    };
    feed();
  });
  const wall = (performance.now() - t) / 1000;
  await sb.remove();
  return { wall_s: Math.round(wall * 1000) / 1000, cpu_s: Math.round(cpu * 100) / 100 };
}

async function main(): Promise<void> {
  const { values } = benchArgs({ options: { dir: { type: "string" }, memory: { type: "string" }, runs: { type: "string" } } });
  const mem = parseByteSize(values.memory ?? "1GiB");
  if (typeof mem === "string") throw new Error(`--memory ${mem}`);
  const runs = Number(values.runs ?? 3);
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), "ppsim-standby-cpu-"));
  const pageCount = mem / PS;
  const memPath = mkdtempSync("/dev/shm/ppsim-standby-cpu-");
  const memFile = join(memPath, "guest.mem");
  const memfd = openSync(memFile, "w+");
  const rows: Row[] = [];
  try {
    ftruncateSync(memfd, mem);
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
    for (let off = 0; off < mem; off += MiB) {
      chunk.writeUInt32LE(off / MiB, 0);
      writeSync(memfd, chunk, 0, MiB, off);
    }
    const sample = chunk.subarray(0, 64 * PS);
    for (let r = 0; r < runs; r++) {
      const dirMiBs = cachedWriteMiBs(dir, mem / MiB);
      const copy = await copyOnce(dir, memfd, pageCount, (r + 1).toString(16).padStart(32, "0"));
      rows.push({
        run: r + 1,
        memory_mib: mem / MiB,
        copy_wall_s: copy.wall_s,
        copy_mib_s: Math.round(mem / MiB / copy.wall_s),
        dir_cached_mib_s: dirMiBs,
        copy_over_dir: Math.round((mem / MiB / copy.wall_s / dirMiBs) * 100) / 100,
        copy_thread_cpu_s: copy.cpu_s,
        copy_cpu_s_per_gib: Math.round((copy.cpu_s / (mem / 2 ** 30)) * 100) / 100,
        xxh64_mib_s: hashMiBs(sample, 256, (p, b) => checksum(p, 1, b)),
        sha1_mib_s: hashMiBs(sample, 256, (p, b) => {
          const head = Buffer.alloc(8);
          head.writeUInt32LE(p, 0);
          return hash("sha1", Buffer.concat([head, b]), "buffer");
        }),
      });
    }
  } finally {
    closeSync(memfd);
    rmSync(memPath, { recursive: true, force: true });
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const med = (k: string) => median(rows.map((r) => Number(r[k])));
  printBench("real-standby-cpu", `node dist/bench/real-standby-cpu.js ${process.argv.slice(2).join(" ")}`.trim(), { median_copy_cpu_s_per_gib: med("copy_cpu_s_per_gib"), median_copy_over_dir: med("copy_over_dir") }, rows);
}

await main();
