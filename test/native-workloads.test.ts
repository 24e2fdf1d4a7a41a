/**
 * Every example workload, rendered by toGuestConfig (shrunk to 16 MiB so the
 * test stays light), is accepted by ppsim-guest and runs deterministically.
 * Needs `npm run build:native`.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWorkload, toGuestConfig } from "../src/workload/index.js";
import { GuestProcess } from "../src/real/guest-process.js";

const examples = join(import.meta.dirname, "..", "examples");
const STEPS = 500;

async function finalHash(config: string): Promise<string> {
  const g = await GuestProcess.spawn({ role: "source", config, steps: STEPS });
  try {
    await g.run();
    for (;;) {
      const p = await g.progress();
      if (p.vcpus.every((v) => v.finished)) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    return await g.hash();
  } finally {
    await g.quit();
  }
}

describe("examples through toGuestConfig", () => {
  for (const file of readdirSync(examples).filter((f) => f.endsWith(".json"))) {
    it(`${file} runs in ppsim-guest, deterministically`, async () => {
      const w = loadWorkload(join(examples, file));
      const small = { ...w, memBytes: 16 << 20, pageCount: (16 << 20) / w.pageSize };
      const config = toGuestConfig(small, 42);
      const a = await finalHash(config);
      expect(await finalHash(config)).toBe(a);
    });
  }
});
