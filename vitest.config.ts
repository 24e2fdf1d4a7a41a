import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    // vitest's default is one worker fewer than the cores: on CI's 2 cores one, every file after the other
    // (the per-file times summed to the wall time). Most of the slow files wait on guests, sockets and child
    // processes rather than compute: two workers overlap them (docs/tests.md has the measurement).
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Ink draws only its last frame when it believes it runs in CI; the TUI
    // tests check the frames an operator sees on a terminal, so they run as
    // on one wherever the suite runs.
    // PPSIM_LOOP_RR from the caller's environment would put a test worker that
    // starts an agent in-process in SCHED_RR for every test after it
    // (src/real/loop-priority.ts): the suite leaves the class alone. The switchover's window and the
    // fault lane's threads (PPSIM_SWITCHOVER_RR, PPSIM_LANE_RR) run as their defaults (empty: the
    // default, in SCHED_RR where the host allows it) whatever the caller's environment says: the suite
    // tests what ships. Both are bounded (the window's time cap, the lane's threads block on reads) and
    // the tests that care set them themselves (docs/real.md).
    env: { CI: "0", PPSIM_LOOP_RR: "0", PPSIM_SWITCHOVER_RR: "", PPSIM_LANE_RR: "" },
  },
});
