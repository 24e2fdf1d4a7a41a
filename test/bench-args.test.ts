/** The benches read their flags as the CLI does: --help lists them; an unknown flag is one line and exit 2, not a stack trace. */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";

const BENCH = "dist/bench/sim-vs-real.js";
function built(): string {
  if (!existsSync(BENCH)) execFileSync("npm", ["run", "-s", "build"]);
  return BENCH;
}

describe("bench flags", () => {
  it("--help lists the flags and names the file that says what they mean", () => {
    const r = spawnSync(process.execPath, [built(), "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--merge VALUE");
    expect(r.stdout).toContain("[--repredict]");
    expect(r.stdout).toContain("bench/sim-vs-real.ts");
  });

  it("an unknown flag is one named line and the usage on stderr, exit 2", () => {
    const r = spawnSync(process.execPath, [built(), "--bogus"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.split("\n")[0]).toBe("sim-vs-real: Unknown option '--bogus'");
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
  });
});
