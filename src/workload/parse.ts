/**
 * Validation of workload files. Every error names the field path and says
 * what was expected, because users write these files by hand.
 */
import { readFileSync } from "node:fs";
import { describe, formatBytes, parseByteSize } from "./size.js";
import {
  MAX_VCPUS,
  PATTERN_DEFAULTS,
  PATTERN_KINDS,
  WORKLOAD_DEFAULTS,
  WORKLOAD_SCHEMA_VERSION,
  type Pattern,
  type PatternKind,
  type Region,
  type Workload,
  type WorkloadPhase,
} from "./types.js";

export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkloadError";
  }
}

type Obj = Record<string, unknown>;

/** Reading fields of one JSON object, under a path used in every message. */
class Fields {
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
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        throw new WorkloadError(`${origin}${join(path, key)} is not a known field (expected one of: ${allowed.join(", ")})`);
      }
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

const TOP_FIELDS = ["ppsim_workload", "name", "description", "memory", "page_size", "vcpus", "zero_share", "warmup_ms", "phases"];
const PHASE_FIELDS = ["name", "steps", "compute_ns", "write_share", "pattern"];
const PATTERN_FIELDS = ["kind", "region", "stride", "hot_share", "hot_access", "exponent"];
/** Fields that only mean something for one pattern kind: naming them elsewhere is a mistake worth reporting. */
const KIND_ONLY: Record<string, PatternKind> = { stride: "sequential", hot_share: "hotcold", hot_access: "hotcold", exponent: "zipf" };

/**
 * Validates a parsed JSON workload and fills in defaults. `origin` (a file
 * name) prefixes error messages.
 */
export function parseWorkload(json: unknown, origin?: string): Workload {
  const prefix = origin ? `${origin}: ` : "";
  const top: Fields = Fields.of(json, "", prefix, TOP_FIELDS);
  const version = top.required("ppsim_workload");
  if (version !== WORKLOAD_SCHEMA_VERSION) {
    top.fail("ppsim_workload", `must be ${WORKLOAD_SCHEMA_VERSION} (the only schema version this build reads), got ${describe(version)}`);
  }
  const name = top.string("name");
  if (name.trim() === "") top.fail("name", "must not be empty");
  const description = top.string("description", "");
  const pageSize = top.integer("page_size", 512, 1 << 30, WORKLOAD_DEFAULTS.pageSize);
  if ((pageSize & (pageSize - 1)) !== 0) top.fail("page_size", `must be a power of two, got ${pageSize}`);
  const memBytes = parseByteSize(top.required("memory"));
  if (typeof memBytes === "string") top.fail("memory", memBytes);
  if (memBytes % pageSize !== 0) {
    top.fail("memory", `must be a multiple of page_size (${pageSize}), got ${memBytes} bytes (${formatBytes(memBytes)})`);
  }
  const pageCount = memBytes / pageSize;
  if (pageCount > 0xffffffff) top.fail("memory", `must hold at most 2^32-1 pages, got ${pageCount}`);
  const vcpus = top.integer("vcpus", 1, MAX_VCPUS, WORKLOAD_DEFAULTS.vcpus);
  const zeroShare = top.share("zero_share", WORKLOAD_DEFAULTS.zeroShare);
  const warmupMs = top.number("warmup_ms", WORKLOAD_DEFAULTS.warmupMs);
  if (warmupMs < 0) top.fail("warmup_ms", `must be ≥ 0, got ${warmupMs}`);
  const phasesRaw = top.required("phases");
  if (!Array.isArray(phasesRaw) || phasesRaw.length === 0) {
    top.fail("phases", `must be a non-empty array of phases, got ${Array.isArray(phasesRaw) ? "an empty array" : describe(phasesRaw)}`);
  }
  const phases = phasesRaw.map((p: unknown, i: number) => parsePhase(p, `phases[${i}]`, prefix, pageCount));
  return { name, description, memBytes, pageSize, pageCount, vcpus, zeroShare, warmupMs, phases };
}

function parsePhase(value: unknown, path: string, prefix: string, pageCount: number): WorkloadPhase {
  const f: Fields = Fields.of(value, path, prefix, PHASE_FIELDS);
  const name = f.has("name") ? f.string("name") : null;
  const steps = f.integer("steps", 1, Number.MAX_SAFE_INTEGER);
  const computeNs = f.number("compute_ns");
  if (computeNs < 0) f.fail("compute_ns", `must be ≥ 0, got ${computeNs}`);
  const writeShare = f.share("write_share");
  const pattern = parsePattern(f.required("pattern"), `${path}.pattern`, prefix, pageCount);
  return { name, steps, computeNs, writeShare, pattern };
}

function parsePattern(value: unknown, path: string, prefix: string, pageCount: number): Pattern {
  const f: Fields = Fields.of(value, path, prefix, PATTERN_FIELDS);
  const kind = f.string("kind");
  if (!(PATTERN_KINDS as readonly string[]).includes(kind)) {
    f.fail("kind", `must be one of ${PATTERN_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
  }
  for (const [key, only] of Object.entries(KIND_ONLY)) {
    if (f.has(key) && kind !== only) f.fail(key, `only applies to the ${only} pattern, not ${kind}`);
  }
  const region = f.has("region") ? parseRegion(f.raw("region"), `${path}.region`, prefix, pageCount) : { ...PATTERN_DEFAULTS.region };
  const stride = f.integer("stride", 1, Number.MAX_SAFE_INTEGER, PATTERN_DEFAULTS.stride);
  const hotShare = f.share("hot_share", PATTERN_DEFAULTS.hotShare);
  const hotAccess = f.share("hot_access", PATTERN_DEFAULTS.hotAccess);
  const exponent = f.number("exponent", PATTERN_DEFAULTS.exponent);
  if (exponent <= 0) f.fail("exponent", `must be > 0, got ${exponent}`);
  return { kind: kind as PatternKind, region, stride, hotShare, hotAccess, exponent };
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

/** Reads and validates a workload file. */
export function loadWorkload(path: string): Workload {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new WorkloadError(`${path}: cannot read the workload file: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new WorkloadError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseWorkload(json, path);
}
