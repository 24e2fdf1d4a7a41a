/**
 * A phase of kind "trace" (schema 2): which recorded trace(s) to replay, how
 * fast, whether it loops, how many copies. The traces are loaded here, so a
 * validated workload holds everything a replay needs.
 */
import { isAbsolute, resolve } from "node:path";
import { Fields } from "./parse.js";
import { loadTrace, TraceError, type Trace } from "./trace-format.js";
import { accessCounts } from "./trace-replay.js";
import { PATTERN_DEFAULTS, type Region, type TraceReplay, type WorkloadPhase } from "./types.js";

export const TRACE_PHASE_FIELDS = ["kind", "name", "trace", "speed", "loop", "copies", "region"];
/** Instructions per µs when a phase does not say: a 1 GHz core retiring one instruction per cycle. */
export const DEFAULT_TRACE_SPEED = 1000;

export function parseTracePhase(
  f: Fields,
  baseDir: string,
  pageSize: number,
  parseRegion: (value: unknown, path: string) => Region,
): WorkloadPhase {
  const name = f.has("name") ? f.string("name") : null;
  const raw = f.required("trace");
  const paths = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(paths) || paths.length === 0 || paths.some((p) => typeof p !== "string" || p === "")) {
    f.fail("trace", "must be a trace file name, or a non-empty array of them (vCPU v replays the (v mod n)-th)");
  }
  const speedRaw = f.raw("speed");
  if (speedRaw !== undefined && speedRaw !== "recorded" && !(typeof speedRaw === "number" && Number.isFinite(speedRaw) && speedRaw > 0)) {
    f.fail("speed", `must be instructions per µs (a number > 0) or "recorded", got ${JSON.stringify(speedRaw)}`);
  }
  const loopRaw = f.raw("loop");
  if (loopRaw !== undefined && typeof loopRaw !== "boolean") f.fail("loop", `must be true or false, got ${JSON.stringify(loopRaw)}`);
  const copiesRaw = f.raw("copies");
  if (copiesRaw !== undefined && copiesRaw !== "fill" && !(typeof copiesRaw === "number" && Number.isSafeInteger(copiesRaw) && copiesRaw >= 1)) {
    f.fail("copies", `must be an integer ≥ 1 or "fill", got ${JSON.stringify(copiesRaw)}`);
  }
  const region = f.has("region") ? parseRegion(f.raw("region"), `${f.path}.region`) : { ...PATTERN_DEFAULTS.region };
  const traces = (paths as string[]).map((p, i) => {
    const file = isAbsolute(p) ? p : resolve(baseDir, p);
    let trace: Trace;
    try {
      trace = loadTrace(file);
    } catch (e) {
      if (e instanceof TraceError) f.fail(Array.isArray(raw) ? `trace[${i}]` : "trace", `cannot be replayed: ${e.message}`);
      throw e;
    }
    if (trace.header.page_size !== pageSize) {
      f.fail(Array.isArray(raw) ? `trace[${i}]` : "trace", `was recorded in pages of ${trace.header.page_size} bytes, the workload's page_size is ${pageSize}`);
    }
    let speed: number;
    if (speedRaw === "recorded") {
      const us = trace.header.native_us;
      if (typeof us !== "number" || !(us > 0)) f.fail("speed", `is "recorded" but ${p} has no native_us in its header (record it with --time-native)`);
      speed = trace.instructions / us;
    } else {
      speed = typeof speedRaw === "number" ? speedRaw : DEFAULT_TRACE_SPEED;
    }
    return { path: file, trace, speed };
  });
  const counts = accessCounts(traces[0].trace);
  if (counts.accesses === 0) f.fail("trace", "has no accesses to replay");
  const replay: TraceReplay = { traces, loop: loopRaw !== false, copies: copiesRaw === undefined ? 1 : (copiesRaw as number | "fill") };
  return {
    trace: replay,
    name,
    steps: counts.accesses,
    computeNs: (traces[0].trace.instructions * 1000) / traces[0].speed / counts.accesses,
    writeShare: counts.writes / counts.accesses,
    pattern: { kind: "uniform", region, stride: PATTERN_DEFAULTS.stride, hotShare: PATTERN_DEFAULTS.hotShare, hotAccess: PATTERN_DEFAULTS.hotAccess, exponent: PATTERN_DEFAULTS.exponent },
  };
}
