/**
 * `ppsim real --peer A --peer B`: a migration that fails with the source
 * guest still running moves on to the next destination with the same guest;
 * when the last one fails too, the agent says its guest keeps running and
 * keeps it so until told to stop (SIGINT), instead of ending it.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { BIN, ensureBuilt, until } from "./support/agent-process.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();

/** A port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof a === "object" && a !== null ? a.port : 1;
}

/** The names of a process's children (from /proc/PID/stat: "pid (comm) state ppid ..."). */
function childrenOf(pid: number): string[] {
  const names: string[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${d}/stat`, "utf8"));
      if (m !== null && Number(m[2]) === pid) names.push(m[1]);
    } catch {
      /* gone meanwhile */
    }
  }
  return names;
}

describe.skipIf(unavailable !== null)("ppsim real with fallback peers", () => {
  it("tries each peer in turn with the same running guest, then keeps the guest running until SIGINT", async () => {
    ensureBuilt();
    const [a, b] = [await deadPort(), await deadPort()];
    const child = spawn(
      process.execPath,
      [BIN, "real", "--peer", `127.0.0.1:${a}`, "--peer", `127.0.0.1:${b}`, "--trace", "examples/idle.json", "--memory", "16MiB", "--plain", "--insecure"],
      { env: process.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await until(() => /the source guest keeps running in this agent/.test(out), "the agent to say its guest keeps running", () => child.exitCode !== null);
    expect(out).toMatch(new RegExp(`migration to 127\\.0\\.0\\.1:${a} failed`));
    expect(out).toMatch(new RegExp(`migrating it to the next destination, 127\\.0\\.0\\.1:${b}`));
    expect(child.exitCode).toBe(null);
    expect(childrenOf(child.pid!)).toContain("ppsim-guest"); // the guest runs on
    child.kill("SIGINT");
    expect(await exited, out).toBe(1);
  });
});
