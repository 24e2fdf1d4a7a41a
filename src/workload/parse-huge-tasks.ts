/**
 * The workload's `huge_pages` and `tasks` objects (docs/workload.md): read
 * like the rest of a file by parse.ts, every problem recorded, none fatal to
 * the others.
 */
import type { Fields, Problems } from "./parse.js";
import { describe, formatBytes, parseByteSize } from "./size.js";
import { HUGE_DEFAULTS, HUGE_POLICIES, MAX_WARMUP_MS, TASK_DEFAULTS, type HugePages, type HugePolicy, type Tasks, type WorkloadPhase } from "./types.js";

const HUGE_FIELDS = ["size", "policy", "collapse_ms", "small_page_slowdown"];
const TASKS_FIELDS = ["async_faults", "slice_steps", "switch_us", "extra"];
/** Tasks per vCPU at most (with the one running `phases`): each holds a generator, and more is a thread pool, not a vCPU. */
export const MAX_TASKS = 64;

export function parseHugePages(value: unknown, prefix: string, p: Problems, pageSize: number | undefined, memBytes: number | undefined): HugePages | undefined {
  const fields = p.fields(value, "huge_pages", prefix, HUGE_FIELDS);
  if (fields === undefined) return undefined;
  const f: Fields = fields;
  const size = p.attempt(() => {
    const bytes = parseByteSize(f.required("size"));
    if (typeof bytes === "string") f.fail("size", bytes);
    if (bytes > 2 ** 30) f.fail("size", `must be at most 1GiB, got ${formatBytes(bytes)}`);
    if ((bytes & (bytes - 1)) !== 0) f.fail("size", `must be a power of two, got ${bytes}`);
    if (pageSize !== undefined && bytes <= pageSize) f.fail("size", `must be larger than page_size (${pageSize}), got ${bytes}`);
    if (memBytes !== undefined && memBytes % bytes !== 0) f.fail("size", `must divide memory (${formatBytes(memBytes)}), got ${formatBytes(bytes)}`);
    return bytes;
  });
  const policy = p.attempt(() => {
    const v = f.string("policy", HUGE_DEFAULTS.policy);
    if (!(HUGE_POLICIES as readonly string[]).includes(v)) f.fail("policy", `must be one of ${HUGE_POLICIES.join(", ")}, got ${JSON.stringify(v)}`);
    return v as HugePolicy;
  });
  const collapseMs = p.attempt(() => {
    const ms = f.number("collapse_ms", HUGE_DEFAULTS.collapseMs);
    if (ms < 0 || ms > MAX_WARMUP_MS) f.fail("collapse_ms", `must be in [0, ${MAX_WARMUP_MS}], got ${ms}`);
    return ms;
  });
  const slowdown = p.attempt(() => {
    const x = f.number("small_page_slowdown", HUGE_DEFAULTS.smallPageSlowdown);
    if (x < 0 || x > 10) f.fail("small_page_slowdown", `must be in [0, 10] (a share of the step time), got ${x}`);
    return x;
  });
  return { size: size as number, policy: policy as HugePolicy, collapseUs: (collapseMs as number) * 1000, smallPageSlowdown: slowdown as number };
}

/** `phase(value, path)` parses one pattern phase as the top-level phases are. */
export function parseTasks(value: unknown, prefix: string, p: Problems, phase: (value: unknown, path: string) => WorkloadPhase | undefined): Tasks | undefined {
  const fields = p.fields(value, "tasks", prefix, TASKS_FIELDS);
  if (fields === undefined) return undefined;
  const f: Fields = fields;
  const asyncFaults = p.attempt(() => {
    const v = f.has("async_faults") ? f.raw("async_faults") : TASK_DEFAULTS.asyncFaults;
    if (typeof v !== "boolean") f.fail("async_faults", `must be true or false, got ${describe(v)}`);
    return v;
  });
  const sliceSteps = p.attempt(() => f.integer("slice_steps", 1, Number.MAX_SAFE_INTEGER, TASK_DEFAULTS.sliceSteps));
  const switchUs = p.attempt(() => {
    const us = f.number("switch_us", TASK_DEFAULTS.switchUs);
    if (us < 0 || us > 1e6) f.fail("switch_us", `must be in [0, 1000000], got ${us}`);
    return us;
  });
  const raw = p.attempt(() => {
    const r = f.required("extra");
    if (!Array.isArray(r) || r.length === 0 || r.length > MAX_TASKS - 1) {
      f.fail("extra", `must be an array of 1 to ${MAX_TASKS - 1} tasks, got ${Array.isArray(r) ? `${r.length} of them` : describe(r)}`);
    }
    return r as unknown[];
  });
  const extra = (raw ?? []).map((t, i) => {
    const path = `tasks.extra[${i}]`;
    const tf = p.fields(t, path, prefix, ["name", "phases"]);
    if (tf === undefined) return undefined;
    const name = p.attempt(() => (tf.has("name") ? tf.string("name") : null));
    const list = p.attempt(() => {
      const r = tf.required("phases");
      if (!Array.isArray(r) || r.length === 0) tf.fail("phases", `must be a non-empty array of phases, got ${describe(r)}`);
      return r as unknown[];
    });
    const phases = (list ?? []).map((ph, j) => {
      if (typeof ph === "object" && ph !== null && (ph as Record<string, unknown>).kind === "trace") {
        return p.attempt(() => tf.fail(`phases[${j}].kind`, "must be pattern: a task replays no trace"));
      }
      return phase(ph, `${path}.phases[${j}]`);
    });
    return { name: name ?? null, phases: phases as WorkloadPhase[] };
  });
  return { extra: extra as Tasks["extra"], asyncFaults: asyncFaults as boolean, sliceSteps: sliceSteps as number, switchUs: switchUs as number };
}

