/** `ppsim --standby-storage … --source-dies-at … --reconnect-wait …`: the simulated standby copy from the command line. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../src/cli/main.js";
import { runRerun } from "../src/cli/rerun.js";

async function json(args: string[]) {
  const lines: string[] = [];
  await main(["--trace", "examples/web-server.json", "--memory", "32MiB", "--mode", "postcopy", "--json", ...args], (l) => lines.push(l));
  return JSON.parse(lines.join("\n")) as { outcome: string; verified: boolean | null; standby?: { window_ms: number | null; fill: { lost: number } | null } };
}

describe("ppsim with a standby copy", () => {
  it("reports the window; a source death after it completes from the copy, one inside it names its lost pages", async () => {
    const alive = await json(["--standby-storage", "100MB/s,0.5ms"]);
    const window = alive.standby!.window_ms as number;
    expect(window).toBeGreaterThan(0);
    const after = await json(["--standby-storage", "100MB/s,0.5ms", "--source-dies-at", `${window + 1}ms`, "--reconnect-wait", "100ms"]);
    expect(after.outcome).toBe("completed");
    expect(after.verified).toBe(true);
    const inside = await json(["--standby-storage", "100MB/s,0.5ms", "--source-dies-at", `${window / 4}ms`, "--reconnect-wait", "100ms"]);
    expect(inside.outcome).toBe("failed");
    expect(inside.standby!.fill!.lost).toBeGreaterThan(0);
  });

  it("ppsim rerun replays the storage, the source's death and the reconnect wait", async () => {
    const lines: string[] = [];
    const args = ["--standby-storage", "100MB/s,0.5ms", "--source-dies-at", "40ms", "--reconnect-wait", "100ms"];
    await main(["--trace", "examples/web-server.json", "--memory", "32MiB", "--mode", "postcopy", "--json", ...args], (l) => lines.push(l));
    const saved = JSON.parse(lines.join("\n")) as Record<string, unknown> & { standby: Record<string, unknown>; outcome: string };
    expect(saved.source_dies_at_ms).toBe(40);
    expect(saved.standby.storage).toEqual({ write_bytes_s: 100e6, read_bytes_s: null, latency_us: 500 });
    expect(saved.outcome).toBe("failed"); // died inside the window: its lost pages named
    const dir = mkdtempSync(join(tmpdir(), "ppsim-rerun-"));
    try {
      const file = join(dir, "r.json");
      writeFileSync(file, JSON.stringify(saved));
      const out: string[] = [];
      runRerun([file], (l) => out.push(l)); // exit 1: the saved run failed (as it should); what matters is the verdict
      expect(out.at(-1)).toBe(`${file}: the same report`);
      // A report that kept a copy but lost its storage is refused, not rerun without the copy.
      writeFileSync(file, JSON.stringify({ ...saved, standby: { ...saved.standby, storage: undefined } }));
      expect(() => runRerun([file], () => undefined)).toThrow(/kept a standby copy but does not say on what storage/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a malformed storage spec", async () => {
    await expect(main(["--trace", "examples/web-server.json", "--standby-storage", "fast"], () => undefined)).rejects.toThrow(/--standby-storage must be a rate/);
  });
});
