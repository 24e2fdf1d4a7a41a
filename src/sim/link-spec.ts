/**
 * How a simulated link is described (bandwidth, latency, shared channel,
 * packet size) and written: "1Gbit,0.1ms" and back. The link itself is
 * src/sim/link.ts.
 */

export interface LinkSpec {
  bandwidthBytesPerSec: number;
  latencyUs: number;
  sharedChannel?: boolean;
  /** Granularity at which an urgent message can cut in (default 1500 bytes). */
  segmentBytes?: number;
}

export const DEFAULT_SEGMENT_BYTES = 1500;

/** 0: source → destination, 1: destination → source. */
export type Direction = 0 | 1;

const RATE_UNITS: Record<string, number> = {
  bit: 1 / 8,
  kbit: 1e3 / 8,
  mbit: 1e6 / 8,
  gbit: 1e9 / 8,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};
const TIME_UNITS: Record<string, number> = { us: 1, µs: 1, ms: 1000, s: 1e6 };

/**
 * "1Gbit,0.1ms", "10Gbit/s,50us", "100MB/s,1ms", optionally ",shared" for one
 * FIFO for both channels. Rates in bit units are decimal (network
 * convention); MB is 10^6 bytes, MiB 2^20.
 */
export function parseLink(text: string): LinkSpec {
  const parts = text.split(",").map((s) => s.trim());
  const usage = `expected "<bandwidth>,<latency>[,shared]" like "1Gbit,0.1ms" or "100MB/s,50us"`;
  if (parts.length < 2 || parts.length > 3) throw new Error(`link "${text}": ${usage}`);
  const rate = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]+)(?:\/s)?$/.exec(parts[0]);
  const unit = rate ? RATE_UNITS[rate[2].toLowerCase()] : undefined;
  if (!rate || unit === undefined) {
    throw new Error(`link "${text}": bandwidth "${parts[0]}" must be a number with a unit (bit, Kbit, Mbit, Gbit, B, KB, MB, GB, KiB, MiB, GiB, optionally /s)`);
  }
  const bandwidthBytesPerSec = Number(rate[1]) * unit;
  if (!(bandwidthBytesPerSec > 0)) throw new Error(`link "${text}": bandwidth must be positive`);
  const lat = /^(\d+(?:\.\d+)?)\s*(us|µs|ms|s)$/.exec(parts[1]);
  if (!lat) throw new Error(`link "${text}": latency "${parts[1]}" must be a number with a unit (us, ms or s), e.g. "0.1ms"`);
  const latencyUs = Number(lat[1]) * TIME_UNITS[lat[2]];
  const spec: LinkSpec = { bandwidthBytesPerSec, latencyUs };
  if (parts.length === 3) {
    if (parts[2] !== "shared") throw new Error(`link "${text}": the third field may only be "shared", got "${parts[2]}"`);
    spec.sharedChannel = true;
  }
  return spec;
}

/** "1 Gbit/s, 100 µs" for reports and headers. */
export function formatLink(spec: LinkSpec): string {
  const bits = spec.bandwidthBytesPerSec * 8;
  const rate = bits >= 1e9 ? `${bits / 1e9} Gbit/s` : bits >= 1e6 ? `${bits / 1e6} Mbit/s` : `${bits / 1e3} Kbit/s`;
  return `${rate}, ${spec.latencyUs} µs${spec.sharedChannel ? ", shared channel" : ""}`;
}
