/**
 * `ppsim compare --real --demo` on a small guest: the simulator and a real
 * migration (both agents on loopback, real guest processes) of the same
 * workload, mode and seed; the table has every figure with both values, the
 * real report says what link it ran over, and both verify. Needs
 * userfaultfd; pass/fail never depends on timing.
 */
import { describe, expect, it } from "vitest";
import { compareReal, compareRealTable, FIGURES, relativeError } from "../src/cli/compare-real.js";
import { main } from "../src/cli/main.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping compare --real: userfaultfd is unavailable here: ${unavailable}`);
const WEB = new URL("../examples/web-server.json", import.meta.url).pathname;

describe("relativeError", () => {
  it("is (sim − real) / real, and says nothing when it cannot", () => {
    expect(relativeError(110, 100)).toBeCloseTo(0.1, 9);
    expect(relativeError(50, 100)).toBeCloseTo(-0.5, 9);
    expect(relativeError(0, 0)).toBe(0);
    expect(relativeError(3, 0)).toBeNull();
    expect(relativeError(null, 3)).toBeNull();
  });
  it("refuses --real without one of --peer or --demo, and --peer without --real", async () => {
    await expect(main(["compare", "--trace", WEB, "--real"], () => undefined)).rejects.toThrow(/exactly one of --peer HOST:PORT or --demo/);
    await expect(main(["compare", "--trace", WEB, "--demo"], () => undefined)).rejects.toThrow(/go with compare --real/);
  });
});

describe.skipIf(unavailable !== null)("ppsim compare --real --demo", () => {
  it("runs both with one seed and options and tabulates every figure", async () => {
    const { sim, real } = await compareReal({ trace: WEB, memory: "16MiB", mode: "postcopy", seed: "5", link: "10Gbit,0.02ms", demo: true }, () => undefined);
    expect(real.report.backend).toBe("real");
    expect(sim.report.backend).toBe("sim");
    expect(real.report.outcome).toBe("completed");
    expect(real.report.verified).toBe(true);
    expect(sim.report.verified).toBe(true);
    expect(real.report.seed).toBe(5);
    expect(sim.report.seed).toBe(5);
    expect(real.report.real_link).toEqual({ kind: "loopback", text: "loopback (ppsim real --demo)" });
    // Same layout, so the same pages cross once each in post-copy.
    expect(real.report.pages_sent).toBe(sim.report.pages_sent);
    expect(real.report.guest?.work_lost_vcpu_s).toBeGreaterThanOrEqual(0);
    expect(real.samples.length).toBeGreaterThan(0);
    const table = compareRealTable(sim.report, real.report).split("\n");
    expect(table[0]).toBe("| web-server, postcopy | simulated (10 Gbit/s, 20 µs) | real (loopback (ppsim real --demo)) | relative error |");
    for (const [name] of FIGURES) expect(table.some((l) => l.startsWith(`| ${name} |`)), name).toBe(true);
    expect(table.find((l) => l.startsWith("| pages sent |"))).toBe(`| pages sent | ${sim.report.pages_sent} | ${real.report.pages_sent} | +0.0 % |`);
  }, 120_000);
});
