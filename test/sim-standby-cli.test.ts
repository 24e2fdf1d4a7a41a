/** `ppsim --standby-storage … --source-dies-at … --reconnect-wait …`: the simulated standby copy from the command line. */
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";

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

  it("refuses a malformed storage spec", async () => {
    await expect(main(["--trace", "examples/web-server.json", "--standby-storage", "fast"], () => undefined)).rejects.toThrow(/--standby-storage must be a rate/);
  });
});
