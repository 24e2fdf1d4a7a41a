import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Ink draws only its last frame when it believes it runs in CI; the TUI
    // tests check the frames an operator sees on a terminal, so they run as
    // on one wherever the suite runs.
    // PPSIM_LOOP_RR from the caller's environment would put a test worker that
    // starts an agent in-process in SCHED_RR for every test after it
    // (src/real/loop-priority.ts): the suite leaves the class alone.
    env: { CI: "0", PPSIM_LOOP_RR: "0" },
  },
});
