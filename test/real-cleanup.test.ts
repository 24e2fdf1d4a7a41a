/**
 * A guest process's folder ($TMPDIR/ppsim-guest-*: its config and control
 * socket) is gone as soon as the guest has connected, so an agent killed
 * with SIGKILL while its guest runs leaves nothing behind in $TMPDIR.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GuestProcess } from "../src/real/guest-process.js";
import { scaleWorkload } from "../src/real/plan.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { loadWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();

describe.skipIf(unavailable !== null)("guest folders", () => {
  it("a running guest has no folder left in $TMPDIR", async () => {
    const before = process.env.TMPDIR;
    const dir = mkdtempSync(join(tmpdir(), "ppsim-cleanup-"));
    process.env.TMPDIR = dir;
    try {
      const w = scaleWorkload(loadWorkload("examples/idle.json"), 8 * 1024 * 1024);
      const g = await GuestProcess.spawn({ role: "source", config: toGuestConfig(w, 1), steps: 100 });
      try {
        await g.run();
        expect((await g.progress()).vcpus.length).toBe(w.vcpus);
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        await g.quit();
      }
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
