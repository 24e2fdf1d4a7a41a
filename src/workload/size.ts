/** Byte sizes written by people: "256MiB", "1.5GB", "4096", or a plain number. */

const UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

/** Returns the size in bytes, or a sentence saying what is wrong with it. */
export function parseByteSize(value: unknown): number | string {
  let bytes: number;
  if (typeof value === "number") {
    bytes = value;
  } else if (typeof value === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    if (!m) return `must be a size like "1GiB", "256MiB", "1.5GB" or a number of bytes, got ${JSON.stringify(value)}`;
    const unit = m[2] === "" ? 1 : UNITS[m[2].toLowerCase()];
    if (unit === undefined) return `has an unknown unit "${m[2]}" (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`;
    bytes = Number(m[1]) * unit;
  } else {
    return `must be a size string or a number of bytes, got ${describe(value)}`;
  }
  if (!Number.isFinite(bytes) || bytes <= 0) return `must be a positive size, got ${JSON.stringify(value)}`;
  if (!Number.isSafeInteger(bytes)) return `must be a whole number of bytes, got ${JSON.stringify(value)} = ${bytes}`;
  return bytes;
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** "1GiB" for 2^30, "1.5GiB", else plain bytes: for messages and reports. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes >= size && (bytes / size) * 100 === Math.round((bytes / size) * 100)) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
