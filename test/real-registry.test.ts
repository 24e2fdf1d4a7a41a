/** `ppsim real cancel` finds only this user's ppsim sources, and never a process that took a dead source's PID. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isOurSource, registryDir, runningSources, startTicks, type RunningSource } from "../src/real/registry.js";

const children: ChildProcess[] = [];
const saved = process.env.PPSIM_RUN_DIR;
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  if (saved === undefined) delete process.env.PPSIM_RUN_DIR;
  else process.env.PPSIM_RUN_DIR = saved;
});

/** A process that lives until killed, with `args` on its command line. */
async function idle(args: string[]): Promise<number> {
  const c = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", ...args], { stdio: "ignore" });
  children.push(c);
  await new Promise((r) => c.once("spawn", r));
  return c.pid as number;
}

const rec = (pid: number, ticks: number | null): RunningSource => ({ pid, workload: "w", peer: "h:1", mode: "precopy", startedAt: "", startTicks: ticks });

describe.skipIf(process.platform !== "linux")("source registry", () => {
  it("is a folder of the user's own by default", () => {
    delete process.env.PPSIM_RUN_DIR;
    expect(registryDir()).toBe(join(tmpdir(), `ppsim-sources-${process.getuid?.()}`));
  });

  it("signals only a ppsim process that is still the one that wrote the record", async () => {
    const ppsim = await idle(["ppsim", "real"]);
    const ticks = startTicks(ppsim);
    expect(ticks).not.toBeNull();
    expect(isOurSource(rec(ppsim, ticks))).toBe(true);
    // The same PID, started at another time: reused by another process.
    expect(isOurSource(rec(ppsim, (ticks as number) + 1))).toBe(false);
    // A live process that is not ppsim.
    const other = await idle(["something-else"]);
    expect(isOurSource(rec(other, startTicks(other)))).toBe(false);
  });

  it("lists the live records and removes the others", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-reg-"));
    process.env.PPSIM_RUN_DIR = dir;
    const ppsim = await idle(["ppsim"]);
    const other = await idle(["not-it"]);
    writeFileSync(join(dir, `${ppsim}.json`), JSON.stringify(rec(ppsim, startTicks(ppsim))));
    writeFileSync(join(dir, `${other}.json`), JSON.stringify(rec(other, startTicks(other))));
    writeFileSync(join(dir, "12.json"), JSON.stringify(rec(13, null))); // a name that is not its pid
    expect(runningSources().map((r) => r.pid)).toEqual([ppsim]);
    expect(readdirSync(dir).sort()).toEqual([`${ppsim}.json`, "12.json"].sort());
  });

  it("refuses a folder that is a symlink", () => {
    const base = mkdtempSync(join(tmpdir(), "ppsim-reg-"));
    mkdirSync(join(base, "real"));
    symlinkSync(join(base, "real"), join(base, "link"));
    process.env.PPSIM_RUN_DIR = join(base, "link");
    expect(() => runningSources()).toThrow(/is not a folder of this user's/);
  });
});
