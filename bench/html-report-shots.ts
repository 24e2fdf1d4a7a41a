/**
 * One screenshot per chart kind of the HTML report, for docs/html-report/:
 * `ppsim compare` on the database example at 256 MiB over 1 Gbit/s, 0.5 ms,
 * opened in headless Chromium.
 *
 *   npm run build && node dist/bench/html-report-shots.js
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareRecordings } from "../src/cli/compare.js";
import { CHART_KINDS, writeHtmlReport } from "../src/html-report/index.js";
import { withBrowser } from "./browser.js";

const root = new URL("../../", import.meta.url).pathname;
const out = join(root, "docs", "html-report");
mkdirSync(out, { recursive: true });
const file = join(mkdtempSync(join(tmpdir(), "ppsim-shots-")), "compare-database.html");
writeHtmlReport(file, "ppsim compare --trace examples/database.json --memory 256MiB --link 1Gbit,0.5ms", compareRecordings({ trace: join(root, "examples", "database.json"), memory: "256MiB", link: "1Gbit,0.5ms" }));
await withBrowser(async (ctx) => {
  const page = await ctx.newPage();
  await page.goto(`file://${file}`);
  await page.waitForFunction(`Object.keys(window.ppsimCharts || {}).length === ${CHART_KINDS.length}`);
  for (const kind of CHART_KINDS) {
    await page.locator(`section:has(canvas[data-chart="${kind}"])`).screenshot({ path: join(out, `${kind}.png`) });
    console.log(join(out, `${kind}.png`));
  }
});
