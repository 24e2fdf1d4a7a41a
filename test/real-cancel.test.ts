/**
 * Cancel, for real: a source agent in pre-copy (held to 5 MB/s by the
 * bandwidth cap, so its first pass alone takes seconds) is asked to cancel from another command, `ppsim real
 * cancel`, as an operator would. The migration ends cancelled, the source
 * agent says so, and the destination releases its session. Pass/fail waits
 * for what it must see; it never depends on timing.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real cancel: userfaultfd is unavailable here: ${unavailable}`);

describe.skipIf(unavailable !== null)("ppsim real cancel", () => {
  it("cancels a pre-copy migration from another command; the destination releases it", async () => {
    const bin = "dist/src/cli/bin.js";
    if (!existsSync(bin)) execFileSync("npm", ["run", "-s", "build"]);
    const runDir = mkdtempSync(join(tmpdir(), "ppsim-run-"));
    process.env.PPSIM_RUN_DIR = runDir;
    const destLog: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, log: (l) => destLog.push(l) });
    try {
      const child = spawn(
        process.execPath,
        [bin, "real", "--peer", `127.0.0.1:${dest.port}`, "--trace", "examples/database.json", "--memory", "64MiB", "--mode", "precopy", "--bandwidth-cap", "5MB", "--plain", "--insecure"],
        { env: { ...process.env, PPSIM_RUN_DIR: runDir }, stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      // Wait until pre-copy is under way (no deadline: a slow machine only makes this take longer).
      while (!/pre-copy r\d/.test(out)) {
        if (child.exitCode !== null) throw new Error(`source agent ended early:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const lines: string[] = [];
      expect(await main(["real", "cancel", "--pid", String(child.pid)], (l) => lines.push(l))).toBe(0);
      expect(lines.join("\n")).toMatch(new RegExp(`asked source agent ${child.pid} \\(database, precopy to 127\\.0\\.0\\.1:\\d+\\) to cancel`));
      expect(await exited, out).toBe(1);
      expect(out).toMatch(/migration cancelled: cancelled: operator quit; the source guest keeps running/);
      const ends = await dest.done;
      expect(ends.map((e) => e.outcome), destLog.join("\n")).toEqual(["cancelled"]);
      // Its record is gone: nothing left to cancel.
      await expect(main(["real", "cancel"], () => undefined)).rejects.toThrow(/no running source agent/);
    } finally {
      await dest.close();
      delete process.env.PPSIM_RUN_DIR;
    }
  });
});
