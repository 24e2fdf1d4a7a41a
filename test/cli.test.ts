/** The ppsim command: reports, the comparison table, and one clear line for every kind of bad input. */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeFailure, main } from "../src/cli/main.js";

const REPORT_KEYS = [
  "mode", "workload", "mem_bytes", "page_size", "setup_ms", "rounds", "downtime_ms", "total_ms", "bytes_sent",
  "pages_sent", "pages_zero", "pages_resent", "demand_faults", "fault_latency_us", "blocktime_ms",
  "guest", "background_mib_s", "switchover_reason",
];

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (l) => lines.push(l));
  return { code, out: lines.join("\n") };
}

async function failure(argv: string[]): Promise<string> {
  try {
    await run(argv);
  } catch (e) {
    const d = describeFailure(e);
    expect(d.message).not.toMatch(/\n\s+at /); // one line, no stack trace
    return d.message;
  }
  throw new Error(`expected ${argv.join(" ")} to fail`);
}

describe("ppsim --trace", () => {
  it("prints one JSON report with every key, verified", async () => {
    const { code, out } = await run(["--trace", "examples/web-server.json", "--memory", "32MiB", "--mode", "postcopy", "--json"]);
    expect(code).toBe(0);
    const r = JSON.parse(out);
    for (const k of REPORT_KEYS) expect(r).toHaveProperty(k);
    expect(r).toMatchObject({ mode: "postcopy", outcome: "completed", verified: true, mem_bytes: 32 * 1024 * 1024 });
    expect(Object.keys(r.fault_latency_us)).toEqual(["p50", "p99", "max"]);
  });

  it("prints progress lines and the report when not on a terminal", async () => {
    const { code, out } = await run(["--trace", "examples/idle.json", "--memory", "16MiB", "--plain"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^\[\s+0 µs\]\s+setup/);
    expect(out).toMatch(/complete\s+present 100.0%/);
    expect(out).toMatch(/report: completed/);
    expect(out).toMatch(/verified\s+yes/);
  });

  it("compares the three modes in one table", async () => {
    const { code, out } = await run(["compare", "--trace", "examples/database.json", "--memory", "16MiB", "--link", "100Mbit,1ms"]);
    expect(code).toBe(0);
    expect(out.split("\n")[0]).toMatch(/^\| database @ 100 Mbit\/s, 1000 µs \|\s+precopy \|\s+postcopy \|\s+hybrid \|$/);
    expect(out).toMatch(/\| downtime\s+\|/);
    // Aligned: every line of the table is as long as the first.
    const lines = out.split("\n");
    for (const l of lines) expect(l.length).toBe(lines[0].length);
  });

  it("names the problem with each bad flag or file", async () => {
    expect(await failure([])).toMatch(/--trace FILE/);
    expect(await failure(["--trace", "no-such.json"])).toMatch(/no-such.json: cannot read the workload file/);
    expect(await failure(["--trace", "examples/idle.json", "--mode", "lazy"])).toMatch(/--mode must be one of precopy, postcopy, hybrid, got "lazy"/);
    expect(await failure(["--trace", "examples/idle.json", "--link", "fast"])).toMatch(/--link: .*expected/);
    expect(await failure(["--trace", "examples/idle.json", "--seed", "x"])).toMatch(/--seed must be an integer/);
    expect(await failure(["--trace", "examples/idle.json", "--outage", "soon"])).toMatch(/--outage must be AT:DURATION/);
    expect(await failure(["--trace", "examples/idle.json", "--memory", "lots"])).toMatch(/--memory must be a size/);
    expect(await failure(["--trace", "examples/idle.json", "--bogus"])).toMatch(/Unknown option '--bogus'/);
    const dir = mkdtempSync(join(tmpdir(), "ppsim-cli-"));
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ ppsim_workload: 1, name: "x", memory: "1MiB", phases: [{ steps: 1, compute_ns: 1, write_share: 3, pattern: { kind: "uniform" } }] }));
    expect(await failure(["--trace", bad])).toMatch(/phases\[0\]\.write_share must be in \[0, 1\], got 3/);
    writeFileSync(bad, "{ not json");
    expect(await failure(["--trace", bad])).toMatch(/not valid JSON/);
  });

  it("exits 2 with one line on stderr for bad input (the built command)", () => {
    const bin = "dist/src/cli/bin.js";
    if (!existsSync(bin)) execFileSync("npm", ["run", "-s", "build"]);
    const r = spawnSync(process.execPath, [bin, "--trace", "examples/idle.json", "--mode", "lazy"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^ppsim: --mode must be one of/);
    expect(r.stdout).toBe("");
  });
});

describe("--report FILE.html", () => {
  const dir = mkdtempSync(join(tmpdir(), "ppsim-cli-report-"));
  const data = (file: string) => {
    const html = readFileSync(file, "utf8");
    const m = /<script type="application\/json" id="ppsim-data">(.*?)<\/script>/s.exec(html);
    return JSON.parse(m?.[1] ?? "null") as { runs: { label: string; samples: unknown[]; report: { mode: string } }[] };
  };

  it("ppsim --trace --json and --plain write one run with samples", async () => {
    for (const flag of ["--json", "--plain"]) {
      const file = join(dir, `run${flag}.html`);
      const { code } = await run(["--trace", "examples/web-server.json", "--memory", "16MiB", "--mode", "hybrid", flag, "--report", file]);
      expect(code).toBe(0);
      const d = data(file);
      expect(d.runs.map((r) => r.label)).toEqual(["hybrid"]);
      expect(d.runs[0].samples.length).toBeGreaterThan(1);
    }
  });

  it("compare writes the three modes, and says where", async () => {
    const file = join(dir, "compare.html");
    const { code, out } = await run(["compare", "--trace", "examples/idle.json", "--memory", "16MiB", "--report", file]);
    expect(code).toBe(0);
    expect(out).toContain(`HTML report: ${file}`);
    expect(data(file).runs.map((r) => r.report.mode)).toEqual(["precopy", "postcopy", "hybrid"]);
  });
});
