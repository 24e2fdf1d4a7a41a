/**
 * The line-based config the native guest (ppsim-guest) reads: `key value`
 * lines, then one `phase k=v ...` line per phase with every key present, so
 * that the C++ side needs no defaults of its own.
 */
import type { Workload } from "./types.js";

export function toGuestConfig(w: Workload, seed: number): string {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const lines = [
    `mem_bytes ${w.memBytes}`,
    `page_size ${w.pageSize}`,
    `vcpus ${w.vcpus}`,
    `seed ${seed}`,
    `zero_share ${w.zeroShare}`,
  ];
  for (const ph of w.phases) {
    const p = ph.pattern;
    const fields: [string, number | string][] = [
      ["steps", ph.steps],
      ["compute_ns", ph.computeNs],
      ["write_share", ph.writeShare],
      ["pattern", p.kind],
      ["region_offset", p.region.offset],
      ["region_size", p.region.size],
      ["stride", p.stride],
      ["hot_share", p.hotShare],
      ["hot_access", p.hotAccess],
      ["exponent", p.exponent],
    ];
    lines.push(`phase ${fields.map(([k, v]) => `${k}=${v}`).join(" ")}`);
  }
  return lines.join("\n") + "\n";
}
