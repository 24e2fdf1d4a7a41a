/**
 * A bounded fuzz run (100 k inputs) of what a peer reaches first: the frame
 * decoder, the preamble parser and the agent's framing (bench/fuzz-inputs.ts).
 * Every input ends in messages or a ProtocolError, never another exception,
 * and no decoder holds more than its layout's largest frame. The long run is
 * `node dist/bench/fuzz.js` (docs/security.md). Times are reported, not asserted.
 */
import { describe, expect, it } from "vitest";
import { fuzzDecoder, fuzzFraming, fuzzPreamble, type FuzzReport } from "../bench/fuzz-inputs.js";

function check(rep: FuzzReport): void {
  console.log(`${rep.target}: ${rep.inputs} inputs, ${rep.refused} refused, ${rep.messages} messages; per input p99 ${rep.p99_us} µs, max ${rep.max_us} µs`);
  expect(rep.failures).toEqual([]);
  expect(rep.buffered_bound_violations).toBe(0);
  // The inputs reach both outcomes: they are not all garbage, nor all valid.
  expect(rep.refused).toBeGreaterThan(rep.inputs / 10);
  expect(rep.messages).toBeGreaterThan(rep.inputs / 10);
}

describe("fuzz (bounded, seeded)", () => {
  it("the frame decoder: 60 k inputs", () => check(fuzzDecoder(60_000, "ci-decoder")));
  it("the preamble parser: 20 k inputs", () => check(fuzzPreamble(20_000, "ci-preamble")));
  it("the agent's framing: 20 k inputs", () => check(fuzzFraming(20_000, "ci-framing")));
});
