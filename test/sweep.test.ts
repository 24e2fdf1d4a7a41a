/** ppsim sweep: the grid's runs in a fixed order; sliced-and-merged gives the very files one whole run gives. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { parseGrid, type Grid } from "../src/sweep/grid.js";
import { inShard, mergeShards, parseShard, runSweep } from "../src/sweep/sweep.js";
import { policyArgs } from "../src/sweep/policy.js";

const EXAMPLES = resolve("examples");
const origin = join(EXAMPLES, "grid-under-test.json");

function grid(extra: Record<string, unknown> = {}): Grid {
  return parseGrid(
    {
      ppsim_sweep: 1,
      name: "test",
      workloads: ["web-server.json", "database.json"],
      memory: ["8MiB"],
      links: ["1Gbit,0.1ms"],
      modes: ["precopy", "postcopy", "hybrid"],
      policy: { "prefetch-pages": [0, 32], "auto-converge": [true, false] },
      seeds: [1, 2],
      ...extra,
    },
    origin,
  );
}

const files = (dir: string) => ["rows.jsonl", "rows.csv", "summary.md"].map((f) => readFileSync(join(dir, f), "utf8"));

describe("sweep grid", () => {
  it("runs each mode once per value of the parameters it uses, in a fixed order", () => {
    const g = grid();
    // precopy: auto-converge 2 values; postcopy: prefetch 2; hybrid: prefetch 2 — times 2 workloads and 2 seeds.
    expect(g.runs.length).toBe(2 * (2 + 2 + 2) * 2);
    expect(g.runs.map((r) => r.key.index)).toEqual(g.runs.map((_, i) => i));
    expect(g.runs[0].key).toMatchObject({ workload: "web-server", mode: "precopy", policy: { "auto-converge": "on" }, seed: 1 });
    expect(g.runs[1].key).toMatchObject({ mode: "precopy", policy: { "auto-converge": "on" }, seed: 2 });
    expect(g.runs[2].key).toMatchObject({ mode: "precopy", policy: { "auto-converge": "off" }, seed: 1 });
    expect(g.runs[2].config.options).toMatchObject({ mode: "precopy", autoConverge: false });
    expect(g.runs[4].key).toMatchObject({ mode: "postcopy", policy: { "prefetch-pages": "0" } });
    expect(g.runs[4].config.options).toMatchObject({ prefetchPages: 0 });
    expect(grid().id).toBe(g.id);
    expect(grid({ seeds: [1, 3] }).id).not.toBe(g.id);
  });

  it("varies the downtime margin in the modes with a switchover test, and turns it back into its flag", () => {
    const g = grid({ modes: ["precopy", "postcopy"], policy: { "downtime-margin": [0, 0.25] }, workloads: ["web-server.json"], seeds: [1] });
    expect(g.runs.map((r) => [r.key.mode, r.key.policy["downtime-margin"]])).toEqual([
      ["precopy", "0"],
      ["precopy", "0.25"],
      ["postcopy", undefined],
    ]);
    expect(g.runs[1].config.options).toMatchObject({ mode: "precopy", downtimeMargin: 0.25 });
    expect(policyArgs(g.runs[1].key.policy)).toEqual(["--downtime-margin", "0.25"]);
    expect(() => grid({ policy: { "downtime-margin": [1] } })).toThrow(/policy.downtime-margin\[0\] --downtime-margin must be a number in \[0, 1\)/);
  });

  it("refuses a bad grid with the field and the reason", () => {
    expect(() => grid({ linkz: [] })).toThrow(/grid-under-test.json: linkz is not a known field/);
    expect(() => grid({ links: ["1Gbit"] })).toThrow(/links\[0\] link "1Gbit": expected/);
    expect(() => grid({ policy: { "prefetch-pages": [-1] } })).toThrow(/policy.prefetch-pages\[0\] --prefetch-pages must be an integer ≥ 0/);
    expect(() => grid({ policy: { speed: [1] } })).toThrow(/policy.speed is not a policy parameter/);
    expect(() => grid({ modes: ["lazy"] })).toThrow(/modes\[0\] must be one of precopy, postcopy, hybrid/);
    expect(() => grid({ workloads: ["nope.json"] })).toThrow(/workloads\[0\] .*cannot read/);
    expect(() => grid({ memory: ["12345B"] })).toThrow(/memory\[0\] for web-server.json: memory of 12345 bytes/);
    expect(() => grid({ seeds: { count: 2e6 } })).toThrow(/seeds.count must be in/);
    expect(() => grid({ ppsim_sweep: 2 })).toThrow(/ppsim_sweep must be 1/);
    expect(() => grid({ check_memory: "no" })).toThrow(/check_memory must be true or false, got "no"/);
  });

  it("check_memory false: the same rows but verified empty, each counted ok; another grid id", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ppsim-sweep-"));
    const on = grid();
    const off = grid({ check_memory: false });
    expect(off.id).not.toBe(on.id);
    expect(off.runs.map((r) => r.config.trackContent)).toEqual(off.runs.map(() => false));
    expect(grid({ check_memory: true }).runs.every((r) => r.config.trackContent === undefined)).toBe(true);
    const a = await runSweep(on, { workers: 0, shard: null, out: join(tmp, "on"), progress: null });
    const b = await runSweep(off, { workers: 0, shard: null, out: join(tmp, "off"), progress: null });
    expect(b.rows.map((r) => r.verified)).toEqual(b.rows.map(() => null));
    expect(b.rows.map((r) => ({ ...r, verified: true }))).toEqual(a.rows);
    const okColumn = (summary: string) => summary.split("\n").slice(2).map((l) => l.split(" | ").at(-6));
    expect(okColumn(b.summary)).toEqual(okColumn(a.summary));
    expect(okColumn(a.summary)).toEqual(Array.from({ length: on.runs.length / 2 }, () => "2")); // one line per configuration, its 2 seeds
  });

  it("slices: every run in exactly one of N shards", () => {
    expect(parseShard("3/8")).toEqual({ index: 3, count: 8 });
    for (const bad of ["0/3", "4/3", "1/0", "2", "a/b"]) expect(() => parseShard(bad)).toThrow(/--shard must be I\/N/);
    for (let i = 0; i < 50; i++) expect([1, 2, 3].filter((s) => inShard(i, { index: s, count: 3 }))).toHaveLength(1);
  });
});

describe("sweep run and merge", () => {
  it("three shards on the pool, merged, equal one unsharded run on the main thread, byte for byte", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ppsim-sweep-"));
    const g = grid();
    const whole = await runSweep(g, { workers: 0, shard: null, out: join(tmp, "whole"), progress: null });
    expect(whole.rows).toHaveLength(g.runs.length);
    expect(whole.rows.every((r) => r.outcome === "completed" && r.verified === true)).toBe(true);
    const dirs: string[] = [];
    for (const index of [2, 1, 3]) {
      const dir = join(tmp, `shard-${index}`);
      await runSweep(g, { workers: 1, shard: { index, count: 3 }, out: dir, progress: null });
      dirs.push(dir);
    }
    mergeShards(dirs, join(tmp, "merged"));
    expect(files(join(tmp, "merged"))).toEqual(files(join(tmp, "whole")));
    const csv = files(join(tmp, "whole"))[1].split("\n");
    expect(csv[0]).toMatch(/^run,trace,workload,mem_bytes,vcpus,link,mode,auto-converge,prefetch-pages,seed,outcome,verified,/);
    expect(csv[1]).toMatch(/^0,web-server.json,web-server,8388608,4,"1Gbit,0.1ms",precopy,on,,1,completed,true,/);

    expect(() => mergeShards(dirs.slice(0, 2), join(tmp, "m2"))).toThrow(/slice\(s\) 3 of 3 missing/);
    expect(() => mergeShards([dirs[0], dirs[0], dirs[1]], join(tmp, "m3"))).toThrow(/slice 2 given twice/);
    const other = join(tmp, "other");
    await runSweep(grid({ seeds: [5] }), { workers: 0, shard: null, out: other, progress: null });
    expect(() => mergeShards([other, ...dirs], join(tmp, "m4"))).toThrow(/another grid/);
    writeFileSync(join(dirs[0], "rows.jsonl"), "");
    expect(() => mergeShards(dirs, join(tmp, "m5"))).toThrow(/rows.jsonl has 0 rows, sweep.json says/);
  });
});

describe("ppsim sweep command", () => {
  it("runs a grid file into a folder and prints the summary; bad input is one line", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ppsim-sweep-cli-"));
    const gridPath = join(tmp, "g.json");
    writeFileSync(gridPath, JSON.stringify({ ppsim_sweep: 1, name: "cli", workloads: [join(EXAMPLES, "idle.json")], memory: ["4MiB"], links: ["1Gbit,0.1ms"], modes: ["postcopy"] }));
    const lines: string[] = [];
    const code = await main(["sweep", gridPath, "--out", join(tmp, "out"), "--workers", "0", "--quiet"], (l) => lines.push(l));
    expect(code).toBe(0);
    expect(lines.join("\n")).toMatch(/\| idle \| 4 MiB \| 1Gbit,0.1ms \| postcopy \| 1 \| 1 \|/);
    expect(JSON.parse(readFileSync(join(tmp, "out", "sweep.json"), "utf8"))).toMatchObject({ grid: "cli", runs: 1, grid_runs: 1, shard: null });
    await expect(main(["sweep"], () => {})).rejects.toThrow(/sweep takes one grid file, got none/);
    await expect(main(["sweep", gridPath, "--shard", "3/2"], () => {})).rejects.toThrow(/--shard must be I\/N/);
    await expect(main(["sweep", gridPath, "--workers", "many"], () => {})).rejects.toThrow(/--workers must be an integer/);
    await expect(main(["sweep", "merge", tmp], () => {})).rejects.toThrow(/sweep merge needs --out/);
    await expect(main(["sweep", "merge", tmp, "--out", join(tmp, "m")], () => {})).rejects.toThrow(/no sweep.json here/);
  });
});
