/** What a loopback link carries — between two Node processes, and through the data plane's threads — measured beside the benchmarks that use it. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { maxPayloadBytes } from "../src/engine/frame-decoder.js";
import { percentiles } from "../src/engine/metrics.js";
import { plainSocketFd, sendWayFromEnv, stopNodeReading, type SendWay } from "../src/real/dataplane.js";
import {
  closeFd,
  constants,
  createBulkReceiver,
  createPageTable,
  mapShared,
  memfdCreate,
  pwrite,
  setSendBuffer,
  startBulkSender,
  uffdApi,
  uffdCreate,
  uffdRegister,
  type BulkReceiverHandle,
  type BulkSenderHandle,
  type Mapping,
  type PageTableHandle,
} from "../src/real/native.js";
import { reserveHugePages } from "../src/real/huge-reserve.js";
import { NATIVE_QUEUE_BYTES } from "../src/real/source-bulk.js";
import { BULK_KERNEL_QUEUE_BYTES } from "../src/real/transport.js";

const MiB = 1024 * 1024;
/** The huge page of `--huge` (the x86 2 MiB size; pages move whole, as a huge-page workload's do). */
const HUGE_PAGE = 2 * MiB;

/** Loopback TCP between this process and a child: bulk MiB/s and one-byte round trip. */
/** cpu_ms: both processes' CPU time over the bulk transfer (the child's from /proc/PID/stat; null if unreadable). */
export async function loopback(o: { pings?: number; bytes?: number } = {}): Promise<{ mib_s: number; rtt_us: number; cpu_ms: number | null }> {
  const child = `
    const net = require("net");
    const s = net.createServer((c) => { c.setNoDelay(true); c.on("data", (d) => { if (d.length <= 8) c.write(d); }); });
    s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
  const p = spawn(process.execPath, ["-e", child], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((r) => p.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))));
  const { connect } = await import("node:net");
  const sock = connect({ host: "127.0.0.1", port });
  sock.on("error", () => undefined);
  sock.setNoDelay(true);
  await new Promise((r) => sock.once("connect", r));
  const rtts: number[] = [];
  for (let i = 0; i < (o.pings ?? 1000); i++) {
    const t = performance.now();
    sock.write(Buffer.from([1]));
    await new Promise((r) => sock.once("data", r));
    rtts.push((performance.now() - t) * 1000);
  }
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = o.bytes ?? 512 * MiB;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const k0 = childCpuMs(p.pid);
  for (let sent = 0; sent < total; sent += chunk.length) if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
  await new Promise<void>((r) => sock.end(r));
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const k1 = childCpuMs(p.pid);
  sock.destroy();
  p.kill();
  const cpu = k0 === null || k1 === null ? null : Math.round((c.user + c.system) / 1000 + k1 - k0);
  return { mib_s: Math.round(total / MiB / secs), rtt_us: Math.round(percentiles(rtts).p50), cpu_ms: cpu };
}

/** A child's user + system CPU ms so far (/proc/PID/stat, clock ticks at 100 Hz as Linux reports them to user space). */
function childCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    // after "pid (comm) ": state is field 0, utime 11, stime 12
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

/**
 * The machine's limit as issue 9 defines it: loopback TCP through the data
 * plane's own threads (native/src/bulk_*.cc) with the bulk socket's options
 * (SO_SNDBUF as the agents set it, the sender's queue bound), over
 * `connections` connections at once, each a sender filling 16-page frames
 * from a memfd and a receiver dropping them (`install` false) or pwriting
 * them into another memfd (the data plane's ceiling without an engine or a
 * guest). MiB/s of page frames, all connections together.
 */
/**
 * install: pages into a memfd — `into` "pwrite" (default: before a guest runs), or as once it runs
 * into a mapping of it registered with a userfaultfd (in this process): "copy" UFFDIO_COPY, "continue"
 * pwritev + UFFDIO_CONTINUE with the page table's claims (install modes, docs/native.md), "huge"
 * UFFDIO_COPY of whole 2 MiB pages into a hugetlbfs file's registered mapping (page size 2 MiB
 * throughout; its pool is grown for the run and given back, which needs root).
 */
/** way: how the senders move pages (PPSIM_SEND_WAY's default otherwise). cpu_ms: this process's CPU time (senders and receivers) over the transfer. */
export async function loopbackNative(o: { install: boolean; into?: "pwrite" | "copy" | "continue" | "huge"; bytes?: number; connections?: number; way?: SendWay }): Promise<{ mib_s: number; connections: number; cpu_ms: number }> {
  const n = o.connections ?? 1;
  const huge = o.into === "huge";
  const PS = huge ? HUGE_PAGE : constants().PAGE_SIZE;
  const totalBytes = o.bytes ?? 512 * MiB;
  const pages = totalBytes / PS;
  const src = memfdCreate("bench-dp-src", totalBytes);
  const chunk = Buffer.alloc(64 * 1024);
  for (let off = 0; off < totalBytes; off += chunk.length) {
    chunk.writeUInt32LE(off, 0);
    chunk.writeUInt32LE(off + 4096, 4096);
    pwrite(src, off, chunk.fill(off & 0xff, 8));
  }
  // "huge": the destination is a hugetlbfs file of 2 MiB pages (a huge-page workload's guest RAM), its pool grown for the run.
  const pool = huge ? reserveHugePages(HUGE_PAGE, totalBytes / HUGE_PAGE) : null;
  const dst = o.install ? memfdCreate("bench-dp-dst", totalBytes, huge ? HUGE_PAGE : 0) : -1;
  const guest = o.install && (o.into ?? "pwrite") !== "pwrite" ? guestView(dst, totalBytes, o.into === "continue", huge) : null;
  pool?.mapped();
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const limits = new Uint32Array(12);
  for (let t = 1; t < 12; t++) limits[t] = maxPayloadBytes(t, { pageSize: PS, pageCount: pages });
  let received = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => (done = r));
  const pairs: { client: Socket; peer: Socket; sender: BulkSenderHandle; receiver: BulkReceiverHandle; room: () => void }[] = [];
  for (let i = 0; i < n; i++) {
    const accepted = new Promise<Socket>((r) => server.once("connection", r));
    const client = tcpConnect({ host: "127.0.0.1", port });
    await new Promise((r) => client.once("connect", r));
    const peer = await accepted;
    setSendBuffer(plainSocketFd(client), BULK_KERNEL_QUEUE_BYTES / 2);
    if (!stopNodeReading(peer)) throw new Error("bench: Node already read from the receiving socket");
    const receiver = createBulkReceiver(plainSocketFd(peer), limits, 30_000, (ns) => {
      for (const x of ns) if (x.kind === "pages" && (received += x.pages.length) >= pages) done();
    });
    if (guest !== null) {
      receiver.setTarget(dst, guest.uffd, guest.map.address, PS, pages, guest.table ?? undefined);
      receiver.setRunning();
    } else if (o.install) receiver.setTarget(dst, dst, 0n, PS, pages); // before "running": pwrite only, the uffd is never used
    else receiver.discardPages(PS, pages);
    receiver.start(new Uint8Array(0));
    const pair = { client, peer, receiver, room: () => undefined as void, sender: null as unknown as BulkSenderHandle };
    pair.sender = startBulkSender(plainSocketFd(client), src, PS, pages, NATIVE_QUEUE_BYTES / 2, (e) => {
      if (e.kind === "room") pair.room();
    }, 0, o.way ?? sendWayFromEnv());
    pairs.push(pair);
  }
  // Pages per frame: the engine's batchPages (16), or PPSIM_BENCH_FRAME_PAGES to see what a frame's size costs.
  const per = Number(process.env.PPSIM_BENCH_FRAME_PAGES ?? 16);
  if (!Number.isInteger(per) || per < 1 || per > 16 || pages % per !== 0) throw new Error("PPSIM_BENCH_FRAME_PAGES takes 1 … 16, dividing the page count");
  const zero = new Uint8Array(per);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  // Frames to the least queued connection, as the source link does.
  for (let p = 0; p < pages; p += per) {
    let best = pairs[0];
    for (const x of pairs) if (x.sender.queued < best.sender.queued) best = x;
    while (best.sender.queued >= NATIVE_QUEUE_BYTES) await new Promise<void>((r) => (best.room = r));
    best.sender.pages(Uint32Array.from({ length: per }, (_, i) => p + i), zero);
  }
  await finished;
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  for (const x of pairs) {
    x.sender.stop();
    x.receiver.stop();
    x.client.destroy();
    x.peer.destroy();
  }
  server.close();
  closeFd(src);
  if (guest !== null) {
    guest.table?.close();
    guest.map.unmap();
    closeFd(guest.uffd);
  }
  if (dst >= 0) closeFd(dst);
  pool?.release();
  return { mib_s: Math.round(totalBytes / MiB / secs), connections: n, cpu_ms: Math.round((cpu.user + cpu.system) / 1000) };
}

/** A guest's view of the memfd: a mapping registered MISSING (| MINOR, with a page table, for "continue"; hugetlbfs's feature for "huge"). */
function guestView(fd: number, bytes: number, minor: boolean, huge: boolean): { map: Mapping; uffd: number; table: PageTableHandle | null } {
  const C = constants();
  const map = mapShared(fd, bytes);
  const uffd = uffdCreate();
  uffdApi(uffd, (huge ? C.UFFD_FEATURE_MISSING_HUGETLBFS : C.UFFD_FEATURE_MISSING_SHMEM) | (minor ? C.UFFD_FEATURE_MINOR_SHMEM : 0));
  uffdRegister(uffd, map.address, bytes, C.UFFDIO_REGISTER_MODE_MISSING | (minor ? C.UFFDIO_REGISTER_MODE_MINOR : 0));
  return { map, uffd, table: minor ? createPageTable(fd, uffd, map.address, C.PAGE_SIZE, bytes / C.PAGE_SIZE) : null };
}

/**
 * The machine's ceiling for post-copy's background stream (issue 9), as
 * ratios of Node's loopback TCP measured in the same round:
 *
 *   npm run build && node dist/bench/loopback.js [--rounds 3] [--connections 1,2] [--mib 512] [--huge] [--json FILE]
 *
 * Per round: Node ↔ Node loopback TCP, then at each connection count the
 * data plane's bare path (senders reading 16-page frames from a memfd,
 * receivers) with the receivers dropping the pages, pwriting them into a
 * memfd (before a guest runs), and UFFDIO_COPYing them into a uffd-registered
 * mapping (what post-copy's background does once the guest runs); with
 * --huge also UFFDIO_COPY of 2 MiB pages into a hugetlbfs mapping (a huge-page
 * guest's background: the per-page kernel work over 512 times the bytes). Each with
 * the CPU seconds it cost per GiB (both ends are in this process) and the
 * cores that cost would take at 0.9 × that round's Node TCP figure — on a
 * 2-core machine, above 2 means the goal is out of reach even without an
 * engine, a guest or a second agent.
 */
async function main(): Promise<void> {
  const { benchArgs } = await import("./args.js");
  const { writeFileSync } = await import("node:fs");
  const { markdownTable, median } = await import("./table.js");
  const { values } = benchArgs({ options: { rounds: { type: "string" }, connections: { type: "string" }, mib: { type: "string" }, json: { type: "string" }, huge: { type: "boolean" } } });
  const rounds = Number(values.rounds ?? 3);
  const conns = (values.connections ?? "1,2").split(",").map(Number);
  for (const c of conns) if (!Number.isInteger(c) || c < 1 || c > 8) throw new Error("--connections takes counts from 1 to 8");
  const bytes = Number(values.mib ?? 512) * MiB;
  const GiB = 1024 * MiB;
  const from = new Date().toISOString();
  type Run = { round: number; path: string; connections: number; mib_s: number; cpu_s_per_gib: number | null; over_node: number };
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    const node = await loopback({ pings: 100, bytes });
    runs.push({ round, path: "Node TCP", connections: 1, mib_s: node.mib_s, cpu_s_per_gib: node.cpu_ms === null ? null : node.cpu_ms / 1000 / (bytes / GiB), over_node: 1 });
    for (const c of conns)
      for (const path of values.huge === true ? (["dropped", "pwrite", "copy", "huge"] as const) : (["dropped", "pwrite", "copy"] as const)) {
        const r = await loopbackNative({ install: path !== "dropped", into: path === "dropped" ? undefined : path, connections: c, bytes });
        runs.push({ round, path: `native ${path}`, connections: c, mib_s: r.mib_s, cpu_s_per_gib: r.cpu_ms / 1000 / (bytes / GiB), over_node: r.mib_s / node.mib_s });
        console.error(`round ${round}: native ${path} ×${c}: ${r.mib_s} MiB/s (Node TCP ${node.mib_s}), ${r.cpu_ms} ms CPU`);
      }
  }
  const window = { from, to: new Date().toISOString() };
  const range = (xs: number[], d: number): string => (xs.length === 0 ? "-" : `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`);
  const nodeBy = new Map(runs.filter((r) => r.path === "Node TCP").map((r) => [r.round, r.mib_s]));
  const rows = [...new Set(runs.map((r) => `${r.path}|${r.connections}`))].map((k) => {
    const rs = runs.filter((r) => `${r.path}|${r.connections}` === k);
    const cpu = rs.flatMap((r) => (r.cpu_s_per_gib === null ? [] : [r.cpu_s_per_gib]));
    // Cores busy to move 0.9 × this round's Node TCP figure at this path's CPU per GiB.
    const cores = rs.flatMap((r) => (r.cpu_s_per_gib === null ? [] : [(r.cpu_s_per_gib * 0.9 * (nodeBy.get(r.round) ?? NaN)) / 1024]));
    return { path: rs[0].path, connections: rs[0].connections, "MiB/s": range(rs.map((r) => r.mib_s), 0), "÷ Node TCP, same round": range(rs.map((r) => r.over_node), 2), "CPU s per GiB": range(cpu, 2), "cores at 0.9 × Node TCP": range(cores, 2) };
  });
  const result = { bench: "loopback", command: `node dist/bench/loopback.js ${process.argv.slice(2).join(" ")}`, window, bytes, runs };
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
  console.log("\n" + markdownTable(rows) + `\n\n(${window.from} – ${window.to})`);
}

if (process.argv[1] !== undefined && import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
