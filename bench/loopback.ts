/** What a loopback link between two Node processes carries, measured beside the benchmarks that use it. */
import { spawn } from "node:child_process";
import { percentiles } from "../src/engine/metrics.js";

const MiB = 1024 * 1024;

/** Loopback TCP between this process and a child: bulk MiB/s and one-byte round trip. */
export async function loopback(o: { pings?: number; bytes?: number } = {}): Promise<{ mib_s: number; rtt_us: number }> {
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
  for (let sent = 0; sent < total; sent += chunk.length) if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
  await new Promise<void>((r) => sock.end(r));
  const secs = (performance.now() - t0) / 1000;
  sock.destroy();
  p.kill();
  return { mib_s: Math.round(total / MiB / secs), rtt_us: Math.round(percentiles(rtts).p50) };
}

