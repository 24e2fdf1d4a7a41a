/** ppsim advise: objectives parsed with clear errors; the cheapest candidate that meets them, or the closest. */
import { describe, expect, it } from "vitest";
import { advise, adviceText, realCommands } from "../src/advise/advise.js";
import { candidates } from "../src/advise/candidates.js";
import { parseSlo } from "../src/advise/slo.js";
import { describeFailure, main } from "../src/cli/main.js";
import { parseLink } from "../src/sim/link.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";

const workload = withMemory(loadWorkload("examples/web-server.json"), 16 * 1048576);
const link = parseLink("1Gbit,0.1ms");
const input = (slo: string) => ({ trace: "examples/web-server.json", workload, memory: "16MiB", link, objectives: parseSlo(slo), cost: "bytes" as const, seed: 1, workers: 0 });

describe("SLO parsing", () => {
  it("reads figures, bounds and units", () => {
    const o = parseSlo("max_stall<=50ms, total<30s,downtime<=300us, bytes<=2GiB, utilization>=90%, lost_work<=1.5min");
    expect(o.map((x) => [x.figure.key, x.op, x.limit])).toEqual([
      ["max_stall", "<=", 50], ["total", "<", 30000], ["downtime", "<=", 0.3], ["bytes", "<=", 2 * 1024 ** 3], ["utilization", ">=", 0.9], ["lost_work", "<=", 90000],
    ]);
  });

  it("refuses a bad objective with one line that says what to write", () => {
    const err = (s: string) => {
      try {
        parseSlo(s);
      } catch (e) {
        expect(describeFailure(e).message).not.toMatch(/\n/);
        return (e as Error).message;
      }
      throw new Error(`expected "${s}" to be refused`);
    };
    expect(err(" , ")).toMatch(/--slo is empty/);
    expect(err("total 30s")).toMatch(/"total 30s" must be FIGURE<=VALUE/);
    expect(err("totl<=30s")).toMatch(/unknown figure "totl" \(did you mean total\?\); known: max_stall, downtime/);
    expect(err("total<=30GB")).toMatch(/total is a duration, expected a value like 30s/);
    expect(err("bytes<=fast")).toMatch(/bytes is a size, expected a value like 2GiB/);
    expect(err("utilization>=120%")).toMatch(/utilization is a share/);
    expect(err("guest_progress>=90%")).toMatch(/guest_progress is gone.*use utilization/);
    expect(err("downtime=300ms")).toMatch(/use <= or >=/);
    expect(err("total<=30s, total<10s")).toMatch(/total bounded above twice/);
  });
});

describe("advise", () => {
  it("picks the least bytes among the candidates that meet every objective, and says how to run it", async () => {
    const advice = await advise(input("max_stall<=50ms, total<=30s, downtime<=300ms"));
    expect(advice.table).toHaveLength(candidates(link, parseSlo("downtime<=300ms")).length);
    const ok = advice.table.filter((a) => a.ok);
    expect(ok.length).toBeGreaterThan(0);
    expect(advice.chosen).toBe(ok[0]);
    const fewest = Math.min(...ok.map((a) => a.report.bytes_sent));
    expect(advice.chosen!.report.bytes_sent).toBeLessThanOrEqual(fewest * 1.001);
    // The advisor's runs keep no page contents: its reports say so (verified null), never "not verified".
    for (const a of ok) expect([a.report.downtime_ms <= 300 && a.report.total_ms <= 30000, a.report.verified, a.report.sim?.content_tracked]).toEqual([true, null, false]);
    expect(advice.standIns.map((s) => s.key)).toEqual(["max_stall"]);
    const [dest, src] = realCommands(advice, advice.chosen!);
    expect(dest).toMatch(/^ppsim real --listen :7070/);
    expect(src).toContain(`--trace examples/web-server.json --mode ${advice.chosen!.candidate.mode}`);
    expect(src).toContain("--memory 16MiB");
    const text = adviceText(advice, "1Gbit,0.1ms");
    expect(text).toMatch(/^advice: /m);
    expect(text).toMatch(/\| # \| mode \| policy \| max_stall\* \| total \| downtime \|/);
    expect(text).toMatch(/max_stall: the report has no such figure yet; max\(downtime_ms, fault_latency_us.max\)/);
  });

  it("when nothing meets the objectives, names the closest candidate and what it misses", async () => {
    const advice = await advise(input("downtime<=50us, total<=30s"));
    expect(advice.chosen).toBeNull();
    expect(advice.closest).not.toBeNull();
    expect(advice.closest!.misses.map((m) => m.objective.text)).toEqual(["downtime<=50us"]);
    // Closest: the smallest relative miss, i.e. the shortest downtime (a post-copy: about one link latency).
    const shortest = Math.min(...advice.table.filter((a) => a.report.outcome === "completed").map((a) => a.report.downtime_ms));
    expect(advice.closest!.report.downtime_ms).toBe(shortest);
    expect(advice.closest!.candidate.mode).toBe("postcopy");
    expect(adviceText(advice, "1Gbit,0.1ms")).toMatch(/none of the \d+ candidates meets every objective\. Closest: .* misses downtime by \d+ %/);
  });

  it("from the command line: exit 0 with advice, 2-style one-line errors for bad input", async () => {
    const lines: string[] = [];
    const code = await main(["advise", "--trace", "examples/idle.json", "--memory", "8MiB", "--workers", "0", "--slo", "downtime<=300ms", "--json"], (l) => lines.push(l));
    expect(code).toBe(0);
    const j = JSON.parse(lines.join("\n"));
    expect(j).toMatchObject({ workload: "idle", met: true, cost: "bytes" });
    expect(j.real[1]).toContain("--trace examples/idle.json");
    await expect(main(["advise", "--trace", "examples/idle.json"], () => {})).rejects.toThrow(/advise needs --slo/);
    await expect(main(["advise", "--trace", "examples/idle.json", "--slo", "total<=1s", "--cost", "cheap"], () => {})).rejects.toThrow(/--cost must be one of bytes, total, lost_work, link_share/);
  });
});
