/**
 * The README's snippets do what it says: every TypeScript block runs (its
 * asserts are the README's claims), and every ppsim command line in a shell
 * block is one the command accepts.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { compareModes } from "../src/cli/compare.js";
import { COMPARE_VARIANT_FLAGS, compareVariants, type VariantFlags } from "../src/cli/compare-variants.js";
import { main } from "../src/cli/main.js";
import { parseSimFlags, SIM_FLAGS } from "../src/cli/sim-args.js";

const README = readFileSync("README.md", "utf8");
const blocks = (lang: string) => [...README.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]);
const DIR = resolve("test/.readme");
const SRC = resolve("src");

afterAll(() => rmSync(DIR, { recursive: true, force: true }));

describe("README", () => {
  const ts = blocks("ts");
  it("has TypeScript snippets to run", () => expect(ts.length).toBeGreaterThanOrEqual(3));

  it.each(ts.map((code, i) => [i, code] as const))("TypeScript snippet %i runs", async (i, code) => {
    mkdirSync(DIR, { recursive: true });
    const file = join(DIR, `snippet-${i}.ts`);
    const source = code.replaceAll('from "ppsim/arbitraries"', `from "${SRC}/arbitraries.js"`).replaceAll('from "ppsim"', `from "${SRC}/index.js"`);
    expect(source).not.toMatch(/from "ppsim/);
    writeFileSync(file, source);
    await import(file);
  }, 60_000);

  const commands = blocks("sh")
    .flatMap((b) => b.split("\n"))
    .map((l) => l.replace(/#.*$/, "").trim())
    .flatMap((l) => l.split("&&").map((c) => c.trim()))
    .filter((c) => c.startsWith("ppsim"))
    .map((c) => [...c.replace(/\s*>.*$/, "").matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]).slice(1));

  it("has ppsim command lines", () => expect(commands.length).toBeGreaterThanOrEqual(8));

  it.each(commands.map((args) => [args.join(" "), args] as const))("ppsim %s is accepted", async (_, args) => {
    if (args[0] === "real" && args[1] === "cancel") return; // it would signal this user's running sources
    // --help after the flags: they are parsed (an unknown one throws), nothing runs.
    const lines: string[] = [];
    // ppsim record: what follows -- is the recorded command, so --help goes before it.
    const dash = args[0] === "record" ? args.indexOf("--") : -1;
    const withHelp = dash >= 0 ? [...args.slice(0, dash), "--help", ...args.slice(dash)] : [...args, "--help"];
    expect(await main(withHelp, (l) => lines.push(l))).toBe(0);
    expect(lines.join("\n")).toMatch(/usage|ppsim /);
    if (!["real", "rerun", "sweep", "advise", "record"].includes(args[0])) {
      const compare = args[0] === "compare";
      const { values } = parseArgs({ args: compare ? args.slice(1) : args, options: compare ? { ...SIM_FLAGS, ...COMPARE_VARIANT_FLAGS } : SIM_FLAGS, strict: true });
      if (compare) expect(() => compareModes(values.mode)).not.toThrow();
      if (compare) expect(() => compareVariants(values as VariantFlags)).not.toThrow();
      const { "huge-policy": _h, "async-faults": _a, ...sim } = values as typeof values & { "huge-policy"?: string; "async-faults"?: string };
      expect(() => parseSimFlags(compare ? { ...sim, mode: undefined } : sim)).not.toThrow();
    }
  });
});
