/**
 * Flags shared by `ppsim --trace` and `ppsim compare`: they choose the
 * workload, the link and the migration policy. Every value is checked here,
 * so a bad one is reported with the flag's name before anything runs.
 */
import type { MigrationOptions } from "../engine/options.js";
import { MODES, type Mode } from "../engine/messages.js";
import { checkHostProfile, DEFAULT_HOST, type HostProfile } from "../sim/host.js";
import { parseLink, type LinkSpec } from "../sim/link.js";
import { readBoundedFile } from "../workload/read-bounded.js";
import { DEFAULT_STANDBY_SIM, type StandbySimSpec } from "../sim/standby.js";
import type { Outage } from "../sim/simulation.js";
import { parseByteSize } from "../workload/size.js";
import { UsageError } from "./errors.js";

/**
 * Policy flags, the same for the simulator and the real back end: each is
 * its option's name in kebab case (--prefetch-pages sets prefetchPages).
 */
export const POLICY_FLAGS = {
  "background-order": { type: "string" },
  "prefetch-pages": { type: "string" },
  "downtime-limit": { type: "string" },
  "downtime-margin": { type: "string" },
  "max-rounds": { type: "string" },
  "hybrid-rounds": { type: "string" },
  "bandwidth-cap": { type: "string" },
  "no-auto-converge": { type: "boolean" },
} as const;

export interface PolicyFlags {
  "background-order"?: string;
  "prefetch-pages"?: string;
  "downtime-limit"?: string;
  "downtime-margin"?: string;
  "max-rounds"?: string;
  "hybrid-rounds"?: string;
  "bandwidth-cap"?: string;
  "no-auto-converge"?: boolean;
}

export const SIM_FLAGS = {
  ...POLICY_FLAGS,
  trace: { type: "string" },
  mode: { type: "string" },
  link: { type: "string" },
  seed: { type: "string" },
  json: { type: "boolean" },
  memory: { type: "string" },
  outage: { type: "string", multiple: true },
  "shared-channel": { type: "boolean" },
  "max-time": { type: "string" },
  report: { type: "string" },
  host: { type: "string" },
  prealloc: { type: "boolean" },
  "standby-storage": { type: "string" },
  "source-dies-at": { type: "string" },
  "reconnect-wait": { type: "string" },
} as const;

export interface SimFlags extends PolicyFlags {
  trace?: string;
  mode?: string;
  link?: string;
  seed?: string;
  json?: boolean;
  memory?: string;
  outage?: string[];
  "shared-channel"?: boolean;
  "max-time"?: string;
  /** Write an HTML report (charts) to this file. */
  report?: string;
  /** A host profile: a file from `ppsim calibrate`, "default" or "none". */
  host?: string;
  /** The destination's memory populated ahead (SimConfig destPopulated). */
  prealloc?: boolean;
  "standby-storage"?: string;
  "source-dies-at"?: string;
  "reconnect-wait"?: string;
}

export const DEFAULT_LINK = "1Gbit,0.1ms";

export interface SimChoices {
  trace: string;
  mode: Mode;
  link: LinkSpec;
  seed: number;
  memoryBytes: number | null;
  outages: Outage[];
  options: Partial<MigrationOptions>;
  maxVirtualMs: number | undefined;
  /** undefined: not given (the command's own default). */
  host: HostProfile | null | undefined;
  /** The destination's memory populated ahead (SimConfig destPopulated). */
  destPopulated?: boolean;
  /** Issue 16: a standby copy on storage like this, and a source death. */
  standby?: StandbySimSpec;
  sourceDiesAtMs?: number;
}

export function parseMode(text: string | undefined): Mode {
  if (text === undefined) return "precopy";
  if (!(MODES as readonly string[]).includes(text)) throw new UsageError(`--mode must be one of ${MODES.join(", ")}, got "${text}"`);
  return text as Mode;
}

function integer(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}

/** "250ms", "1.5s", "800us", or a plain number of ms. */
export function parseDurationMs(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag} must be a duration like 250ms, 1.5s or 800us, got "${text}"`);
  const scale = m[2] === "s" ? 1000 : m[2] === "us" || m[2] === "µs" ? 0.001 : 1;
  return Number(m[1]) * scale;
}

function positiveDuration(flag: string, text: string): number {
  const ms = parseDurationMs(flag, text);
  if (!(ms > 0)) throw new UsageError(`--${flag} must be a positive duration like 30s or 600000ms, got "${text}"`);
  return ms;
}

/** "500ms:200ms": down at 500 ms after the migration starts, for 200 ms. */
export function parseOutage(text: string): Outage {
  const parts = text.split(/[:+]/);
  if (parts.length !== 2) throw new UsageError(`--outage must be AT:DURATION like 500ms:200ms, got "${text}"`);
  const atMs = parseDurationMs("outage", parts[0]);
  const durationMs = parseDurationMs("outage", parts[1]);
  if (!(durationMs > 0)) throw new UsageError(`--outage duration must be positive, got "${parts[1]}"`);
  return { atMs, durationMs };
}

function rateBytesPerSec(flag: string, text: string): number {
  try {
    return parseLink(`${text},0ms`).bandwidthBytesPerSec;
  } catch {
    throw new UsageError(`--${flag} must be a rate like 500Mbit or 50MB/s, got "${text}"`);
  }
}

/** A profile file is small: anything larger is not one. */
const MAX_PROFILE_BYTES = 64 * 1024;

/** --host FILE|default|none: a profile from `ppsim calibrate`, the shipped one, or free hosts. */
export function loadHostProfile(text: string): HostProfile | null {
  if (text === "none") return null;
  if (text === "default") return DEFAULT_HOST;
  const bytes = readBoundedFile(text, MAX_PROFILE_BYTES, "--host profile");
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new UsageError(`--host ${text}: not JSON (${(e as Error).message}); ppsim calibrate --out FILE writes a profile`);
  }
  return checkHostProfile(v, `--host ${text}`);
}

export function parseSimFlags(f: SimFlags): SimChoices {
  if (f.trace === undefined) throw new UsageError("--trace FILE is required: the workload to migrate (see examples/)");
  let link: LinkSpec;
  try {
    link = parseLink(f.link ?? DEFAULT_LINK);
  } catch (e) {
    throw new UsageError(`--link: ${(e as Error).message}`);
  }
  const options = parsePolicyFlags(f);
  if (f["reconnect-wait"] !== undefined) options.reconnectTimeoutMs = positiveDuration("reconnect-wait", f["reconnect-wait"]);
  if (f["shared-channel"]) link.sharedChannel = true;
  if (link.sharedChannel) options.urgentChannel = false;
  let memoryBytes: number | null = null;
  if (f.memory !== undefined) {
    const size = parseByteSize(f.memory);
    if (typeof size === "string") throw new UsageError(`--memory ${size}`);
    memoryBytes = size;
  }
  return {
    trace: f.trace,
    mode: parseMode(f.mode),
    link,
    seed: f.seed === undefined ? 1 : integer("seed", f.seed, 0),
    memoryBytes,
    outages: (f.outage ?? []).map(parseOutage),
    options,
    maxVirtualMs: f["max-time"] === undefined ? undefined : positiveDuration("max-time", f["max-time"]),
    host: f.host === undefined ? undefined : loadHostProfile(f.host),
    ...(f.prealloc === true ? { destPopulated: true } : {}),
    ...(f["standby-storage"] === undefined ? {} : { standby: parseStandbyStorage(f["standby-storage"]) }),
    ...(f["source-dies-at"] === undefined ? {} : { sourceDiesAtMs: parseDurationMs("source-dies-at", f["source-dies-at"]) }),
  };
}

/** "RATE[,LATENCY]": the standby copy's storage, e.g. 500MB/s,0.5ms (latency per operation, default 0.5 ms). */
export function parseStandbyStorage(text: string): StandbySimSpec {
  const [rate, latency, ...rest] = text.split(",");
  if (rest.length > 0 || rate === undefined) throw new UsageError(`--standby-storage must be RATE[,LATENCY] like 500MB/s,0.5ms, got "${text}"`);
  const writeBytesPerSec = rateBytesPerSec("standby-storage", rate);
  const latencyUs = latency === undefined ? DEFAULT_STANDBY_SIM.latencyUs : parseDurationMs("standby-storage", latency) * 1000;
  return { writeBytesPerSec, latencyUs };
}

/** The migration policy chosen by flags (what is not given keeps the engine's default). */
export function parsePolicyFlags(f: PolicyFlags): Partial<MigrationOptions> {
  const options: Partial<MigrationOptions> = {};
  const order = f["background-order"];
  if (order !== undefined) {
    if (order !== "linear" && order !== "neighbourhood") throw new UsageError(`--background-order must be linear or neighbourhood, got "${order}"`);
    options.backgroundOrder = order;
  }
  if (f["prefetch-pages"] !== undefined) options.prefetchPages = integer("prefetch-pages", f["prefetch-pages"], 0);
  if (f["downtime-limit"] !== undefined) {
    options.downtimeLimitMs = parseDurationMs("downtime-limit", f["downtime-limit"]);
    if (!(options.downtimeLimitMs > 0)) throw new UsageError("--downtime-limit must be positive");
  }
  if (f["downtime-margin"] !== undefined) {
    const m = Number(f["downtime-margin"]);
    if (f["downtime-margin"].trim() === "" || !(m >= 0 && m < 1)) throw new UsageError(`--downtime-margin must be a number in [0, 1), got "${f["downtime-margin"]}"`);
    options.downtimeMargin = m;
  }
  if (f["max-rounds"] !== undefined) options.maxRounds = integer("max-rounds", f["max-rounds"], 1);
  if (f["hybrid-rounds"] !== undefined) options.hybridRounds = integer("hybrid-rounds", f["hybrid-rounds"], 1);
  if (f["bandwidth-cap"] !== undefined) options.bandwidthCap = rateBytesPerSec("bandwidth-cap", f["bandwidth-cap"]);
  if (f["no-auto-converge"]) options.autoConverge = false;
  return options;
}
