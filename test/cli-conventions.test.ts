/** Conventions of the command line: --version, --help everywhere, NO_COLOR, compare's modes and exit status, named option errors. */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compareExitCode, compareModes } from "../src/cli/compare.js";
import { runShowingProgress, StderrProgress } from "../src/cli/progress.js";
import { main } from "../src/cli/main.js";
import { parseSpeed, viewOf } from "../src/cli/sim-command.js";
import { OptionError, resolveOptions } from "../src/engine/options.js";
import type { Report } from "../src/engine/report.js";
import { Simulation } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";
import { report } from "./tui-fixtures.js";

const BIN = "dist/src/cli/bin.js";
function built(): string {
  if (!existsSync(BIN)) execFileSync("npm", ["run", "-s", "build"]);
  return BIN;
}

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (l) => lines.push(l));
  return { code, out: lines.join("\n") };
}

describe("ppsim conventions", () => {
  it("prints its version, the package's", async () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    expect(await run(["--version"])).toEqual({ code: 0, out: `ppsim ${pkg.version}` });
    const r = spawnSync(process.execPath, [built(), "--version"], { encoding: "utf8" });
    expect(r.stdout.trim()).toBe(`ppsim ${pkg.version}`);
  });

  it("answers --help after a subcommand or flags too", async () => {
    const c = await run(["compare", "--help"]);
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^usage: ppsim compare --trace FILE/);
    const s = await run(["--trace", "examples/idle.json", "--help"]);
    expect(s.code).toBe(0);
    expect(s.out).toContain("--prefetch-pages N");
  });

  // The live view needs a terminal: `script` gives the built command a pseudo-terminal.
  const hasScript = spawnSync("script", ["--version"]).status === 0;
  it.skipIf(!hasScript)("honours NO_COLOR in the live view", () => {
    const bin = built();
    const cmd = `${process.execPath} ${bin} --trace examples/idle.json --memory 8MiB --speed max`;
    const live = (env: Record<string, string>) =>
      spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", env: { ...process.env, TERM: "xterm-256color", CI: "", ...env }, timeout: 60_000 });
    const sgr = new RegExp(`${String.fromCharCode(27)}\\[(3[0-9]|9[0-7])`); // a foreground colour
    const coloured = live({ FORCE_COLOR: "1" });
    expect(coloured.stdout).toContain("report: completed");
    expect(coloured.stdout).toMatch(sgr);
    const plain = live({ NO_COLOR: "1", FORCE_COLOR: "1" });
    expect(plain.stdout).toContain("report: completed");
    expect(plain.stdout).not.toMatch(sgr);
  });
});

describe("ppsim compare", () => {
  it("honours --mode: one or a list, and refuses an unknown one", async () => {
    expect(compareModes(undefined)).toEqual(["precopy", "postcopy", "hybrid"]);
    expect(compareModes("postcopy,precopy")).toEqual(["postcopy", "precopy"]);
    expect(() => compareModes("precopy,lazy")).toThrow(/--mode must be one or more of precopy, postcopy, hybrid.*"lazy"/);
    const { code, out } = await run(["compare", "--trace", "examples/idle.json", "--memory", "8MiB", "--mode", "postcopy", "--json"]);
    expect(code).toBe(0);
    const reports = JSON.parse(out) as { mode: string }[];
    expect(reports.map((r) => r.mode)).toEqual(["postcopy"]);
  });

  it("exits non-zero when a mode did not complete and verify", async () => {
    expect(compareExitCode([report(), report({ mode: "postcopy" })])).toBe(0);
    expect(compareExitCode([report(), report({ outcome: "failed", verified: null })])).toBe(1);
    expect(compareExitCode([report({ verified: false })])).toBe(1);
    // A link down for good before switchover: pre-copy fails.
    const { code } = await run(["compare", "--trace", "examples/idle.json", "--memory", "8MiB", "--mode", "precopy", "--outage", "0ms:10s"]);
    expect(code).toBe(1);
  });
});

describe("options", () => {
  it("are validated with named errors", () => {
    const err = (o: object) => {
      try {
        resolveOptions(o);
      } catch (e) {
        expect(e).toBeInstanceOf(OptionError);
        return e as OptionError;
      }
      throw new Error("accepted");
    };
    const typo = err({ prefetchh: 4 });
    expect(typo.option).toBe("prefetchh");
    expect(typo.message).toMatch(/is not an option \(did you mean prefetchPages\?\)/);
    const range = err({ prefetchPages: -1 });
    expect(range.option).toBe("prefetchPages");
    expect(range.message).toBe("option prefetchPages must be an integer ≥ 0, got -1");
    expect(err({ mode: "lazy" }).option).toBe("mode");
    expect(err({ autoConverge: "yes" }).message).toMatch(/autoConverge must be true or false, got "yes"/);
    expect(err({ throttleInitial: 0.5, throttleMax: 0.3 }).option).toBe("throttleInitial");
    expect(resolveOptions({ prefetchPages: undefined }).prefetchPages).toBe(32);
  });

  it("a simulation refuses an unknown option", () => {
    const workload = withMemory(loadWorkload("examples/idle.json"), 8 << 20);
    expect(() => new Simulation({ workload, options: { prefetchh: 4 } as object, link: { bandwidthBytesPerSec: 1e8, latencyUs: 100 } })).toThrow(OptionError);
  });
});

describe("quitting a simulation", () => {
  it("ends a simulated post-copy past switchover, and says so", () => {
    const workload = withMemory(loadWorkload("examples/web-server.json"), 64 << 20);
    const sim = new Simulation({ workload, options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 100 } });
    const view = viewOf(sim);
    sim.advanceTo(100);
    expect(sim.snapshot().phase).toBe("postcopy");
    expect(view.cancel()).toBeNull();
    expect(sim.done).toBe(true);
    const r = sim.report();
    expect(r?.outcome).toBe("cancelled");
    expect(r?.verified).toBeNull();
    expect(r?.reason).toMatch(/operator quit past switchover.*the simulation stopped/);
  });

  it("takes --speed N, max or auto", () => {
    expect(parseSpeed(undefined)).toBe("auto");
    expect(parseSpeed("max")).toBe("max");
    expect(parseSpeed("2.5")).toBe(2.5);
    expect(() => parseSpeed("0")).toThrow(/--speed must be a positive number/);
  });
});

describe("ppsim rerun", () => {
  it("reproduces a saved report exactly, and refuses one it cannot rerun", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-rerun-"));
    const saved = await run(["--trace", "examples/web-server.json", "--memory", "16MiB", "--mode", "hybrid", "--seed", "3", "--prefetch-pages", "8", "--outage", "300ms:20ms", "--json"]);
    const file = join(dir, "report.json");
    writeFileSync(file, saved.out);
    const r = JSON.parse(saved.out) as Report;
    expect(r.options?.prefetchPages).toBe(8);
    expect(r.outages).toEqual([{ atMs: 300, durationMs: 20 }]);
    expect(r.link?.text).toBe("1 Gbit/s, 100 µs");
    expect(r.workload_spec).toMatchObject({ name: "web-server" });
    const again = await run(["rerun", file, "--json"]);
    expect(JSON.parse(again.out)).toEqual(r);
    expect(again.code).toBe(saved.code);
    // A report changed by hand is not reproduced, and says where.
    writeFileSync(file, JSON.stringify({ ...r, downtime_ms: r.downtime_ms + 1 }));
    const text = await run(["rerun", file]);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(/differs in downtime_ms/);
    writeFileSync(file, JSON.stringify({ ...r, workload_spec: undefined }));
    await expect(run(["rerun", file])).rejects.toThrow(/cannot rerun: the report has no valid "workload_spec"/);
  });
});

describe("progress on stderr", () => {
  it("shows lines in place on a terminal while a simulation runs, and ends with the report one run to the end gives", () => {
    const writes: string[] = [];
    const progress = new StderrProgress({ write: (t) => writes.push(t), tty: true });
    const cfg = () => ({ workload: withMemory(loadWorkload("examples/web-server.json"), 16 << 20), options: { mode: "postcopy" as const }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 100 } });
    const stepped = runShowingProgress(new Simulation(cfg()), progress, "ppsim: test:", 0);
    progress.end();
    expect(writes.length).toBeGreaterThan(1);
    expect(writes[0].startsWith("\r\x1b[2Kppsim: test: [")).toBe(true);
    expect(writes.at(-1)).toBe("\r\x1b[2K");
    expect(stepped).toEqual(new Simulation(cfg()).runToEnd());
    // Into a pipe, transient lines are not written at all.
    const piped: string[] = [];
    const quiet = new StderrProgress({ write: (t) => piped.push(t), tty: false });
    quiet.show("running…", true);
    quiet.show("done");
    expect(piped).toEqual(["done\n"]);
  });
});

describe("ppsim real --netns", () => {
  it("is refused without a --peer, and without a description", async () => {
    await expect(run(["real", "--demo", "--trace", "examples/idle.json", "--netns", "tbf 1Gbit"])).rejects.toThrow(/--netns describes the link to a --peer/);
    await expect(run(["real", "--peer", "127.0.0.1:1", "--insecure", "--trace", "examples/idle.json", "--netns", " "])).rejects.toThrow(/--netns needs a short description/);
  });
});
