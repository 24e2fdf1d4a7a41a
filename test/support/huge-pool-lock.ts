/**
 * The test files that grow and shrink the 2 MiB huge-page pool (real-huge-*)
 * each check that the pool is back as it was; with two vitest workers, two of
 * them at once see each other's pages. Each holds this lock for its whole
 * file (beforeAll / afterAll): a directory made atomically, removed to
 * release; one left behind by a killed worker is taken over after 10 minutes.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const LOCK = join(tmpdir(), "ppsim-test-huge-pool.lock");
const STALE_MS = 10 * 60_000;

/** Resolves once this file holds the pool; call the result to let it go. */
export async function holdHugePool(): Promise<() => void> {
  for (;;) {
    try {
      mkdirSync(LOCK);
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_MS) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // gone meanwhile: try again
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
