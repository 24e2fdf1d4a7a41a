/**
 * Validation of workload files. Every error names the field path and says
 * what was expected, because users write these files by hand.
 */
import { dirname } from "node:path";
import { LocalFileError, readBoundedFile } from "./read-bounded.js";
import { describe, formatBytes, parseByteSize } from "./size.js";
import {
  MAX_MEMORY_BYTES,
  MAX_VCPUS,
  MAX_WARMUP_MS,
  PATTERN_DEFAULTS,
  PATTERN_KINDS,
  WORKLOAD_DEFAULTS,
  WORKLOAD_SCHEMA_VERSIONS,
  type Pattern,
  type PatternKind,
  type Region,
  type Workload,
  type WorkloadPhase,
} from "./types.js";
import { parseTracePhase, TRACE_PHASE_FIELDS } from "./trace-phase.js";
import { parseHugePages, parseTasks } from "./parse-huge-tasks.js";

/** A bad workload: `problems` lists every one found (the message has them one a line). */
export class WorkloadError extends Error {
  readonly problems: string[];
  constructor(message: string, problems?: string[]) {
    super(message);
    this.name = "WorkloadError";
    this.problems = problems ?? [message];
  }
}

/**
 * Collects the problems of a file, so that all are reported at once: each
 * independent check runs in `attempt`, which records its failure and lets
 * the others go on.
 */
export class Problems {
  readonly list: string[] = [];

  attempt<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (e) {
      if (!(e instanceof WorkloadError)) throw e;
      this.list.push(...e.problems);
      return undefined;
    }
  }

  /** The fields of an object, its unknown keys recorded as problems; undefined (recorded) if not an object. */
  fields(value: unknown, path: string, origin: string, allowed: readonly string[]): Fields | undefined {
    try {
      return Fields.of(value, path, origin, allowed);
    } catch (e) {
      if (!(e instanceof WorkloadError)) throw e;
      this.list.push(...e.problems);
      return typeof value === "object" && value !== null && !Array.isArray(value) ? Fields.of(value, path, origin, Object.keys(value)) : undefined;
    }
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new WorkloadError(this.list.join("\n"), this.list);
  }
}

type Obj = Record<string, unknown>;

/** Reading fields of one JSON object, under a path used in every message. */
export class Fields {
  constructor(
    private readonly obj: Obj,
    readonly path: string,
    private readonly origin: string,
  ) {}

  static of(value: unknown, path: string, origin: string, allowed: readonly string[]): Fields {
    const where = path === "" ? "the workload" : path;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new WorkloadError(`${origin}${where} must be an object, got ${describe(value)}`);
    }
    const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
    if (unknown.length > 0) {
      const problems = unknown.map((key) => `${origin}${join(path, key)} is not a known field (expected one of: ${allowed.join(", ")})`);
      throw new WorkloadError(problems.join("\n"), problems);
    }
    return new Fields(value as Obj, path, origin);
  }

  fail(key: string, why: string): never {
    throw new WorkloadError(`${this.origin}${join(this.path, key)} ${why}`);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  required(key: string): unknown {
    if (!this.has(key)) this.fail(key, "is required");
    return this.obj[key];
  }

  string(key: string, fallback?: string): string {
    const v = fallback !== undefined && !this.has(key) ? fallback : this.required(key);
    if (typeof v !== "string") this.fail(key, `must be a string, got ${describe(v)}`);
    return v;
  }

  number(key: string, fallback?: number): number {
    const v = fallback !== undefined && !this.has(key) ? fallback : this.required(key);
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(key, `must be a number, got ${describe(v)}`);
    return v;
  }

  integer(key: string, min: number, max: number, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v < min || v > max) {
      this.fail(key, max === Number.MAX_SAFE_INTEGER ? `must be an integer ≥ ${min}, got ${v}` : `must be an integer in [${min}, ${max}], got ${v}`);
    }
    return v;
  }

  share(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (v < 0 || v > 1) this.fail(key, `must be in [0, 1], got ${v}`);
    return v;
  }
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** "$schema": where an editor finds the file's JSON Schema (docs/workload.schema.json); ppsim itself ignores it. */
const TOP_FIELDS = ["$schema", "ppsim_workload", "name", "description", "memory", "page_size", "vcpus", "zero_share", "warmup_ms", "phases", "huge_pages", "tasks"];
const PHASE_FIELDS = ["name", "steps", "compute_ns", "write_share", "pattern"];
/** Schema 2: a phase says its kind; "pattern" (the default) is a version 1 phase. */
const PHASE_KINDS = ["pattern", "trace"];
const PATTERN_FIELDS = ["kind", "region", "stride", "hot_share", "hot_access", "exponent"];
/** Fields that only mean something for one pattern kind: naming them elsewhere is a mistake worth reporting. */
const KIND_ONLY: Record<string, PatternKind> = { stride: "sequential", hot_share: "hotcold", hot_access: "hotcold", exponent: "zipf" };

/**
 * Validates a parsed JSON workload and fills in defaults. `origin` (a file
 * name) prefixes error messages; trace files are found relative to `baseDir`.
 */
export function parseWorkload(json: unknown, origin?: string, baseDir = process.cwd()): Workload {
  const prefix = origin ? `${origin}: ` : "";
  const p = new Problems();
  const fields = p.fields(json, "", prefix, TOP_FIELDS);
  if (fields === undefined) return p.throwIfAny() as never;
  const top: Fields = fields; // annotated: fail()'s `never` narrows only through a declared type
  const version = top.required("ppsim_workload");
  if (typeof version !== "number" || !WORKLOAD_SCHEMA_VERSIONS.includes(version)) {
    // Another version's fields mean something else: nothing more to say about them.
    top.fail("ppsim_workload", `must be ${WORKLOAD_SCHEMA_VERSIONS.join(" or ")} (the schema versions this build reads), got ${describe(version)}`);
  }
  if (top.has("$schema")) p.attempt(() => top.string("$schema"));
  const name = p.attempt(() => {
    const n = top.string("name");
    if (n.trim() === "") top.fail("name", "must not be empty");
    return n;
  });
  const description = p.attempt(() => top.string("description", ""));
  const pageSize = p.attempt(() => {
    const size = top.integer("page_size", 512, 1 << 30, WORKLOAD_DEFAULTS.pageSize);
    if ((size & (size - 1)) !== 0) top.fail("page_size", `must be a power of two, got ${size}`);
    return size;
  });
  const memBytes = p.attempt(() => {
    const bytes = parseByteSize(top.required("memory"));
    if (typeof bytes === "string") top.fail("memory", bytes);
    if (bytes > MAX_MEMORY_BYTES) top.fail("memory", `must be at most 1TiB (${MAX_MEMORY_BYTES} bytes), got ${formatBytes(bytes)}`);
    if (pageSize === undefined) return bytes;
    if (bytes % pageSize !== 0) top.fail("memory", `must be a multiple of page_size (${pageSize}), got ${bytes} bytes (${formatBytes(bytes)})`);
    if (bytes / pageSize > 0xffffffff) top.fail("memory", `must hold at most 2^32-1 pages, got ${bytes / pageSize}`);
    return bytes;
  });
  const vcpus = p.attempt(() => top.integer("vcpus", 1, MAX_VCPUS, WORKLOAD_DEFAULTS.vcpus));
  const zeroShare = p.attempt(() => top.share("zero_share", WORKLOAD_DEFAULTS.zeroShare));
  const warmupMs = p.attempt(() => {
    const ms = top.number("warmup_ms", WORKLOAD_DEFAULTS.warmupMs);
    if (ms < 0 || ms > MAX_WARMUP_MS) top.fail("warmup_ms", `must be in [0, ${MAX_WARMUP_MS}] (an hour), got ${ms}`);
    return ms;
  });
  // Regions are checked against the page count: a rough one will do while other fields are wrong.
  const pageCount = memBytes !== undefined && pageSize !== undefined ? memBytes / pageSize : 1;
  const phasesRaw = p.attempt(() => {
    const raw = top.required("phases");
    if (!Array.isArray(raw) || raw.length === 0) {
      top.fail("phases", `must be a non-empty array of phases, got ${Array.isArray(raw) ? "an empty array" : describe(raw)}`);
    }
    return raw as unknown[];
  });
  const phases = (phasesRaw ?? []).map((ph, i) => parsePhase(ph, `phases[${i}]`, prefix, pageCount, p, version, baseDir, pageSize ?? WORKLOAD_DEFAULTS.pageSize));
  const endless = phases.findIndex((ph) => ph?.trace?.loop === true);
  if (endless >= 0 && endless < phases.length - 1) {
    p.attempt(() => top.fail(`phases[${endless}]`, `replays its trace in a loop forever, so the phases after it would never run (give it "loop": false, or make it the last phase)`));
  }
  const hugePages = top.has("huge_pages") ? parseHugePages(top.raw("huge_pages"), prefix, p, pageSize, memBytes) : undefined;
  const phaseAt = (value: unknown, path: string) => parsePhase(value, path, prefix, pageCount, p, version, baseDir, pageSize ?? WORKLOAD_DEFAULTS.pageSize);
  const tasks = top.has("tasks") ? parseTasks(top.raw("tasks"), prefix, p, phaseAt) : undefined;
  if (tasks !== undefined && phases.some((ph) => ph?.trace !== undefined)) {
    p.attempt(() => top.fail("tasks", "cannot be combined with trace phases (a trace's frames are laid out per vCPU, not per task)"));
  }
  p.throwIfAny();
  return {
    ...(hugePages !== undefined ? { hugePages } : {}),
    ...(tasks !== undefined ? { tasks } : {}),
    name: name as string,
    description: description as string,
    memBytes: memBytes as number,
    pageSize: pageSize as number,
    pageCount,
    vcpus: vcpus as number,
    zeroShare: zeroShare as number,
    warmupMs: warmupMs as number,
    phases: phases as WorkloadPhase[],
  };
}

function parsePhase(value: unknown, path: string, prefix: string, pageCount: number, p: Problems, version: number, baseDir: string, pageSize: number): WorkloadPhase | undefined {
  const kind = typeof value === "object" && value !== null ? (value as Record<string, unknown>).kind : undefined;
  if (version >= 2 && kind !== undefined && (typeof kind !== "string" || !PHASE_KINDS.includes(kind))) {
    return p.attempt(() => {
      throw new WorkloadError(`${prefix}${path}.kind must be one of ${PHASE_KINDS.join(", ")}, got ${describe(kind)}`);
    });
  }
  if (version < 2 && kind !== undefined) {
    return p.attempt(() => {
      throw new WorkloadError(`${prefix}${path}.kind needs "ppsim_workload": 2 (version 1 phases are all patterns)`);
    });
  }
  if (kind === "trace") {
    const tf = p.fields(value, path, prefix, TRACE_PHASE_FIELDS);
    if (tf === undefined) return undefined;
    return p.attempt(() => parseTracePhase(tf, baseDir, pageSize, (v, at) => parseRegion(v, at, prefix, pageCount)));
  }
  const fields = p.fields(value, path, prefix, version >= 2 ? ["kind", ...PHASE_FIELDS] : PHASE_FIELDS);
  if (fields === undefined) return undefined;
  const f: Fields = fields;
  const name = p.attempt(() => (f.has("name") ? f.string("name") : null));
  const steps = p.attempt(() => f.integer("steps", 1, Number.MAX_SAFE_INTEGER));
  const computeNs = p.attempt(() => {
    const ns = f.number("compute_ns");
    if (ns < 0) f.fail("compute_ns", `must be ≥ 0, got ${ns}`);
    return ns;
  });
  const writeShare = p.attempt(() => f.share("write_share"));
  const raw = p.attempt(() => f.required("pattern"));
  const pattern = raw === undefined ? undefined : parsePattern(raw, `${path}.pattern`, prefix, pageCount, p);
  return { name: name ?? null, steps: steps as number, computeNs: computeNs as number, writeShare: writeShare as number, pattern: pattern as Pattern };
}

function parsePattern(value: unknown, path: string, prefix: string, pageCount: number, p: Problems): Pattern | undefined {
  const fields = p.fields(value, path, prefix, PATTERN_FIELDS);
  if (fields === undefined) return undefined;
  const f: Fields = fields;
  const kind = p.attempt(() => {
    const k = f.string("kind");
    if (!(PATTERN_KINDS as readonly string[]).includes(k)) f.fail("kind", `must be one of ${PATTERN_KINDS.join(", ")}, got ${JSON.stringify(k)}`);
    return k as PatternKind;
  });
  if (kind !== undefined) {
    for (const [key, only] of Object.entries(KIND_ONLY)) {
      if (f.has(key) && kind !== only) p.attempt(() => f.fail(key, `only applies to the ${only} pattern, not ${kind}`));
    }
  }
  const region = f.has("region") ? p.attempt(() => parseRegion(f.raw("region"), `${path}.region`, prefix, pageCount)) : { ...PATTERN_DEFAULTS.region };
  const stride = p.attempt(() => f.integer("stride", 1, Number.MAX_SAFE_INTEGER, PATTERN_DEFAULTS.stride));
  const hotShare = p.attempt(() => f.share("hot_share", PATTERN_DEFAULTS.hotShare));
  const hotAccess = p.attempt(() => f.share("hot_access", PATTERN_DEFAULTS.hotAccess));
  const exponent = p.attempt(() => {
    const x = f.number("exponent", PATTERN_DEFAULTS.exponent);
    if (x <= 0) f.fail("exponent", `must be > 0, got ${x}`);
    return x;
  });
  return { kind: kind as PatternKind, region: region as Region, stride: stride as number, hotShare: hotShare as number, hotAccess: hotAccess as number, exponent: exponent as number };
}

function parseRegion(value: unknown, path: string, prefix: string, pageCount: number): Region {
  const f: Fields = Fields.of(value, path, prefix, ["offset", "size"]);
  const offset = f.number("offset", 0);
  if (offset < 0 || offset >= 1) f.fail("offset", `must be in [0, 1), got ${offset}`);
  const size = f.number("size", 1 - offset);
  if (size <= 0 || size > 1) f.fail("size", `must be in (0, 1], got ${size}`);
  // A little slack: 0.7 + 0.3 is 0.99999... or 1.00000...1 in binary.
  if (offset + size > 1 + 1e-9) f.fail("size", `must satisfy offset + size ≤ 1, got ${offset} + ${size}`);
  if (Math.floor(offset * pageCount) >= pageCount) f.fail("offset", `leaves no page of memory in the region`);
  return { offset, size };
}

/** Workload files are a few KiB; this leaves room for long hand-written ones, and refuses /dev/zero. */
export const MAX_WORKLOAD_FILE_BYTES = 16 * 1024 * 1024;

/** Reads and validates a workload file (a regular file of at most MAX_WORKLOAD_FILE_BYTES). */
export function loadWorkload(path: string): Workload {
  let text: string;
  try {
    text = readBoundedFile(path, MAX_WORKLOAD_FILE_BYTES, "workload file").toString("utf8");
  } catch (e) {
    throw new WorkloadError(e instanceof LocalFileError ? e.message : `${path}: cannot read the workload file: ${(e as Error).message}`);
  }
  return parseWorkload(parseJson(text, path), path, dirname(path));
}

/** JSON.parse, with the line and column of a syntax error (V8 gives only a character offset). */
export function parseJson(text: string, origin: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const message = (e as Error).message;
    const at = /at position (\d+)/.exec(message);
    const offset = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : null;
    if (offset === null) throw new WorkloadError(`${origin}: not valid JSON: ${message}`);
    const before = text.slice(0, offset).split("\n");
    const line = before.length;
    const column = before[before.length - 1].length + 1;
    const why = message.replace(/\s*(in JSON )?at position \d+.*$/, "").replace(/\s*\(line \d+ column \d+\)/, "");
    throw new WorkloadError(`${origin}:${line}:${column}: not valid JSON: ${why} (line ${line}, column ${column})`);
  }
}
