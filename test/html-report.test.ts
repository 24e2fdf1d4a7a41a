/** The HTML report opened in real headless Chromium: every chart drawn, with data, offline. */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { compareRecordings } from "../src/cli/compare.js";
import { CHART_KINDS, recordSimulation, writeHtmlReport } from "../src/html-report/index.js";
import { Simulation } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";
import { withBrowser } from "../bench/browser.js";

const dir = mkdtempSync(join(tmpdir(), "ppsim-html-"));
const WEB = new URL("../examples/web-server.json", import.meta.url).pathname;

/** Opens the file with every request other than the file itself refused; returns the points per chart and errors. */
async function open(page: Page, file: string): Promise<{ drawn: Record<string, number>; errors: string[]; requests: string[] }> {
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url === `file://${file}`) return route.continue();
    requests.push(url);
    return route.abort();
  });
  await page.goto(`file://${file}`);
  // Browser-side code as strings: this project's types have no DOM.
  await page.waitForFunction(`Object.keys(window.ppsimCharts || {}).length === ${CHART_KINDS.length}`, undefined, { timeout: 20_000 });
  const drawn = (await page.evaluate("window.ppsimCharts")) as Record<string, number>;
  return { drawn, errors, requests };
}

/** Canvas pixels that are not blank, per chart kind. */
async function inked(page: Page): Promise<Record<string, number>> {
  return (await page.evaluate(`(() => {
    const out = {};
    for (const c of document.querySelectorAll("canvas[data-chart]")) {
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
      out[c.dataset.chart] = n;
    }
    return out;
  })()`)) as Record<string, number>;
}

describe("HTML report in headless Chromium", () => {
  it("compare: every chart kind drawn with data, the modes overlaid, nothing fetched", async () => {
    const file = join(dir, "compare.html");
    const runs = compareRecordings({ trace: WEB, memory: "32MiB", link: "1Gbit,0.5ms" });
    writeHtmlReport(file, "compare", runs);
    expect(readFileSync(file, "utf8")).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    await withBrowser(async (ctx) => {
      const page = await ctx.newPage();
      const { drawn, errors, requests } = await open(page, file);
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
      for (const k of CHART_KINDS) expect(drawn[k], k).toBeGreaterThan(0);
      const ink = await inked(page);
      for (const k of CHART_KINDS) expect(ink[k], `${k} canvas is blank`).toBeGreaterThan(2000);
      const legend = await page.locator("body").innerText();
      for (const m of ["precopy", "postcopy", "hybrid"]) expect(legend).toContain(m);
    });
  }, 60_000);

  it("one post-copy run: no rounds says so instead of an empty chart; a hostile workload name stays text", async () => {
    const file = join(dir, "postcopy.html");
    const w = { ...withMemory(loadWorkload(WEB), 16 * 1048576), name: "</script><script>window.pwned=1</script>" };
    const run = recordSimulation(new Simulation({ workload: w, options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 200 }, seed: 3 }), "postcopy");
    expect(run.report.demand_faults).toBeGreaterThan(0);
    writeHtmlReport(file, `ppsim: ${w.name}`, [run]);
    await withBrowser(async (ctx) => {
      const page = await ctx.newPage();
      const { drawn, errors } = await open(page, file);
      expect(errors).toEqual([]);
      expect(drawn.rounds).toBe(0);
      expect(await page.locator(".empty").innerText()).toContain("no pre-copy rounds");
      for (const k of CHART_KINDS.filter((k) => k !== "rounds")) expect(drawn[k], k).toBeGreaterThan(0);
      expect(await page.evaluate("typeof window.pwned")).toBe("undefined");
      expect(await page.title()).toContain("</script>");
    });
  }, 60_000);
});
