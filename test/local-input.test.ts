/**
 * Bad local input (issue 15): a workload path that is a device, a FIFO, a
 * directory or a huge file is refused by type and size without reading it;
 * sizes and durations out of range, and negative numbers, get one line that
 * names the flag — never a stack trace, a hang or an out-of-memory kill.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeFailure, main } from "../src/cli/main.js";

async function failure(argv: string[]): Promise<string> {
  try {
    await main(argv, () => undefined);
  } catch (e) {
    const d = describeFailure(e);
    expect(d.message).not.toMatch(/\n\s+at /); // one line, no stack trace
    return d.message;
  }
  throw new Error(`expected ${argv.join(" ")} to fail`);
}

describe("bad local input", () => {
  it("workload paths that are not regular files, or too big, are refused unread", async () => {
    const dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), "ppsim-local-"));
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const huge = join(dir, "huge.json");
    writeFileSync(huge, "");
    truncateSync(huge, 17 * 1024 * 1024); // sparse: nothing to read
    expect(await failure(["--trace", "/dev/zero"])).toMatch(/\/dev\/zero: the workload file must be a regular file, this is a character device/);
    expect(await failure(["--trace", fifo])).toMatch(/must be a regular file, this is a FIFO/);
    expect(await failure(["--trace", dir])).toMatch(/must be a regular file, this is a directory/);
    expect(await failure(["--trace", huge])).toMatch(/the workload file is 17825792 bytes; at most 16777216 are accepted/);
    expect(await failure(["real", "--demo", "--trace", "/dev/zero"])).toMatch(/character device/);
  });

  it("sizes, durations and negative numbers out of range name the flag", async () => {
    const t = ["--trace", "examples/idle.json"];
    expect(await failure([...t, "--memory", "1000TiB"])).toMatch(/--memory: memory of 1099511627776000 bytes is more than the 1099511627776 \(1TiB\) a guest may have/);
    expect(await failure([...t, "--memory", "16TiB"])).toMatch(/more than the 1099511627776 \(1TiB\)/);
    expect(await failure([...t, "--max-time", "0"])).toMatch(/--max-time must be a positive duration/);
    expect(await failure([...t, "--seed", "-1"])).toMatch(/--seed must be an integer ≥ 0, got "-1"/);
    expect(await failure(["compare", ...t, "--seed", "-1"])).toMatch(/--seed must be an integer ≥ 0, got "-1"/);
    expect(await failure(["real", "--demo", ...t, "--seed", "-1"])).toMatch(/--seed must be an integer ≥ 0, got "-1"/);
    expect(await failure(["real", "--demo", ...t, "--memory", "2TiB"])).toMatch(/--memory: memory of .* more than .* \(1TiB\)/);
    expect(await failure(["real", "--demo", ...t, "--connections", "9"])).toMatch(/--connections must be an integer from 1 to 8, got "9"/);
    expect(await failure(["real", "--demo", ...t, "--connections", "0"])).toMatch(/--connections must be an integer from 1 to 8, got "0"/);
  });

  it("ppsim real: a destination or source must choose how to authenticate; limits are the destination's", async () => {
    expect(await failure(["real", "--listen", "127.0.0.1:0"])).toMatch(/no authentication chosen: give --psk-file FILE .* or --insecure/);
    expect(await failure(["real", "--peer", "127.0.0.1:1", "--trace", "examples/idle.json"])).toMatch(/no authentication chosen/);
    expect(await failure(["real", "--listen", "127.0.0.1:0", "--insecure", "--psk-file", "k"])).toMatch(/--insecure contradicts/);
    expect(await failure(["real", "--listen", "127.0.0.1:0", "--insecure", "--max-sessions", "0"])).toMatch(/--max-sessions must be an integer ≥ 1/);
    expect(await failure(["real", "--peer", "127.0.0.1:1", "--insecure", "--max-memory", "1GiB", "--trace", "examples/idle.json"])).toMatch(/are for the destination/);
    expect(await failure(["real", "--peer", "127.0.0.1:1", "--insecure", "--prealloc", "1GiB", "--trace", "examples/idle.json"])).toMatch(/--prealloc is for the destination/);
    expect(await failure(["real", "--listen", "127.0.0.1:0", "--insecure", "--prealloc", "3000"])).toMatch(/--prealloc must be a size that is a multiple of \d+ bytes, got "3000"/);
    expect(await failure(["real", "--listen", "127.0.0.1:0", "--insecure", "--prealloc", "guest"])).toMatch(/--prealloc must be a size/);
    expect(await failure(["real", "--demo", "--trace", "examples/idle.json", "--prealloc", "guest", "--install", "copy"])).toMatch(/cannot go with --install copy/);
  });
});
