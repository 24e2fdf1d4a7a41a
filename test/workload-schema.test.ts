/** The workload files' JSON Schema agrees with the validator; a bad file gets every problem listed, a syntax error its line and column. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { loadWorkload, parseJson, parseWorkload, WorkloadError } from "../src/workload/parse.js";

const schema = JSON.parse(readFileSync("docs/workload.schema.json", "utf8")) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

const good = () => ({
  $schema: "../docs/workload.schema.json",
  ppsim_workload: 1,
  name: "w",
  memory: "1MiB",
  phases: [{ steps: 10, compute_ns: 100, write_share: 0.5, pattern: { kind: "hotcold", hot_share: 0.2 } }],
});
const phase = (over: object) => ({ ...good(), phases: [{ ...good().phases[0], ...over }] });
const pattern = (p: object) => phase({ pattern: p });

/** Files the validator refuses that the schema can express too. */
const BAD: [string, unknown][] = [
  ["no name", { ...good(), name: undefined }],
  ["empty name", { ...good(), name: " " }],
  ["version 3", { ...good(), ppsim_workload: 3 }],
  ["a phase kind in version 1", phase({ kind: "pattern" })],
  ["a trace phase without its trace", { ...good(), ppsim_workload: 2, phases: [{ kind: "trace" }] }],
  ["a trace phase with copies 0", { ...good(), ppsim_workload: 2, phases: [{ kind: "trace", trace: "x.trace.gz", copies: 0 }] }],
  ["an unknown field", { ...good(), memroy: "1MiB" }],
  ["a size with a bad unit", { ...good(), memory: "1 parsec" }],
  ["no phases", { ...good(), phases: [] }],
  ["vcpus 0", { ...good(), vcpus: 0 }],
  ["vcpus 65", { ...good(), vcpus: 65 }],
  ["zero_share 2", { ...good(), zero_share: 2 }],
  ["negative warmup", { ...good(), warmup_ms: -1 }],
  ["steps 0", phase({ steps: 0 })],
  ["fractional steps", phase({ steps: 1.5 })],
  ["negative compute", phase({ compute_ns: -1 })],
  ["write_share 3", phase({ write_share: 3 })],
  ["an unknown kind", pattern({ kind: "random" })],
  ["stride on uniform", pattern({ kind: "uniform", stride: 2 })],
  ["exponent 0", pattern({ kind: "zipf", exponent: 0 })],
  ["region offset 1", pattern({ kind: "uniform", region: { offset: 1 } })],
  ["region size 0", pattern({ kind: "uniform", region: { size: 0 } })],
  ["huge pages without a size", { ...good(), huge_pages: { policy: "whole" } }],
  ["an unknown huge-page policy", { ...good(), huge_pages: { size: "2MiB", policy: "eager" } }],
  ["a negative collapse time", { ...good(), huge_pages: { size: "2MiB", collapse_ms: -1 } }],
  ["tasks without extra ones", { ...good(), tasks: { extra: [] } }],
  ["tasks with slice_steps 0", { ...good(), tasks: { slice_steps: 0, extra: [{ phases: good().phases }] } }],
  ["a task with an unknown field", { ...good(), tasks: { extra: [{ phases: good().phases, weight: 2 }] } }],
];

describe("workload JSON Schema", () => {
  it("accepts every example, and a file naming it in $schema", () => {
    const examples = readdirSync("examples").filter((f) => f.endsWith(".json"));
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const f of examples) {
      const json = JSON.parse(readFileSync(join("examples", f), "utf8")) as unknown;
      expect(validate(json), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(() => parseWorkload(json, f)).not.toThrow();
    }
    for (const f of readdirSync("examples/traces").filter((f) => f.endsWith(".json"))) {
      const json = JSON.parse(readFileSync(join("examples/traces", f), "utf8")) as unknown;
      expect(validate(json), `traces/${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    for (const dir of ["examples/huge-pages", "examples/async-faults"]) {
      const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
      expect(files.length).toBeGreaterThanOrEqual(2);
      for (const f of files) {
        const json = JSON.parse(readFileSync(join(dir, f), "utf8")) as unknown;
        expect(validate(json), `${dir}/${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
        expect(() => parseWorkload(json, f)).not.toThrow();
      }
    }
    expect(validate(good())).toBe(true);
    expect(parseWorkload(good()).name).toBe("w");
    const both = { ...good(), memory: "4MiB", huge_pages: { size: "2MiB", policy: "split", collapse_ms: 5, small_page_slowdown: 0.2 }, tasks: { async_faults: false, slice_steps: 10, switch_us: 1, extra: [{ name: "t", phases: good().phases }] } };
    expect(validate(both), JSON.stringify(validate.errors)).toBe(true);
    expect(parseWorkload(both).tasks?.extra).toHaveLength(1);
  });

  it.each(BAD)("rejects what the validator rejects: %s", (_, json) => {
    const clean = JSON.parse(JSON.stringify(json)) as unknown; // drops the undefined fields
    expect(() => parseWorkload(clean)).toThrow(WorkloadError);
    expect(validate(clean)).toBe(false);
  });
});

describe("workload errors", () => {
  it("lists every problem of a file, not only the first", () => {
    const json = { ...good(), vcpus: 0, zero_share: 2, bogus: 1, phases: [{ steps: 0, compute_ns: 1, write_share: 3, pattern: { kind: "uniform", stride: 2 } }, "x"] };
    try {
      parseWorkload(json, "w.json");
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(WorkloadError);
      const problems = (e as WorkloadError).problems;
      expect(problems).toEqual([
        "w.json: bogus is not a known field (expected one of: $schema, ppsim_workload, name, description, memory, page_size, vcpus, zero_share, warmup_ms, phases, huge_pages, tasks)",
        "w.json: vcpus must be an integer in [1, 64], got 0",
        "w.json: zero_share must be in [0, 1], got 2",
        "w.json: phases[0].steps must be an integer ≥ 1, got 0",
        "w.json: phases[0].write_share must be in [0, 1], got 3",
        "w.json: phases[0].pattern.stride only applies to the sequential pattern, not uniform",
        'w.json: phases[1] must be an object, got string "x"',
      ]);
      expect((e as Error).message).toBe(problems.join("\n"));
    }
  });

  it("gives a JSON syntax error its line and column", () => {
    expect(() => parseJson('{\n  "name": "w",\n  oops\n}', "w.json")).toThrow(/^w\.json:3:3: not valid JSON: .* \(line 3, column 3\)$/);
    expect(() => parseJson('{\n  "name": ', "w.json")).toThrow(/^w\.json:2:11: not valid JSON: Unexpected end of JSON input/);
    const dir = mkdtempSync(join(tmpdir(), "ppsim-json-"));
    writeFileSync(join(dir, "bad.json"), '{ "ppsim_workload": 1,\n  "name": "x",, }');
    expect(() => loadWorkload(join(dir, "bad.json"))).toThrow(/bad\.json:2:15: not valid JSON/);
  });
});
