import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Ink draws only its last frame when it believes it runs in CI; the TUI
    // tests check the frames an operator sees on a terminal, so they run as
    // on one wherever the suite runs.
    // The agents' loops ask for SCHED_RR (src/real/loop-priority.ts); a test
    // worker that started one in-process would keep it for every test after:
    // the suite leaves the class alone (test/real-priority.test.ts sets it).
    env: { CI: "0", PPSIM_LOOP_RR: "0" },
  },
});
