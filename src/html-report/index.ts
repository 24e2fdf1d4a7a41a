/** The HTML report: `--report run.html` for ppsim, compare and real. */
import { writeFileSync } from "node:fs";
import { renderHtml } from "./render.js";
import type { RunRecording } from "./recording.js";

export { CHART_KINDS, renderHtml } from "./render.js";
export { MAX_SAMPLES, SampleLog, type RunRecording, type Sample } from "./recording.js";
export { recordSimulation } from "./sim.js";

export function writeHtmlReport(path: string, title: string, runs: RunRecording[]): void {
  writeFileSync(path, renderHtml(title, runs));
}
