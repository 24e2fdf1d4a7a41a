/**
 * What the real-agent failure tests share: a guest that outlives its
 * migration yet keeps the runs after it short, and teardown in reverse order
 * after each test.
 */
import { afterEach } from "vitest";
import { chooseSteps, scaleWorkload } from "../../src/real/plan.js";
import { loadWorkload } from "../../src/workload/parse.js";

/** A third of what a source would choose: the guest outlives the migration, and the runs after it are short. */
export function shortSteps(file: string, mem: number): number {
  return Math.ceil(chooseSteps(scaleWorkload(loadWorkload(file), mem)) / 3);
}

/** Registers an afterEach that runs what the test pushed, last first; returns the list to push to. */
export function cleanupAfterEach(): (() => Promise<void>)[] {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}
