/**
 * The native guest's final memory, computed in TypeScript from the
 * simulator's access streams (AccessGenerator): the initial fill and the
 * write rule of native/guest (memory.cc, vcpu.cc), hashed like HASH does
 * (docs/native.md). If ppsim-guest's HASH after N steps per vCPU equals
 * this, the guest replayed exactly the accesses the simulator replays.
 * BigInt arithmetic: for guests of a few MiB only.
 */
import { AccessGenerator, compilePhases } from "../../src/workload/generator.js";
import { isInitiallyZero, type Workload } from "../../src/workload/types.js";

const M64 = (1n << 64n) - 1n;

export function mix64(z0: bigint): bigint {
  let z = (z0 + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

function hashWords(words: BigUint64Array, bytes: number): string {
  const P1 = 0x9e3779b185ebca87n;
  const P2 = 0xc2b2ae3d27d4eb4fn;
  const acc = [(P1 + P2) & M64, P2, 0n, (0n - P1) & M64];
  for (let i = 0; i < words.length; i++) {
    let a = (acc[i & 3] + words[i] * P2) & M64;
    a = ((a << 31n) | (a >> 33n)) & M64;
    acc[i & 3] = (a * P1) & M64;
  }
  let h = BigInt(bytes);
  for (let i = 0; i < 4; i++) h = mix64(h ^ acc[i]);
  return h.toString(16).padStart(16, "0");
}

/** The hash ppsim-guest reports after every vCPU ran `steps` steps of `w` from boot with `seed`. */
export function expectedGuestHash(w: Workload, seed: number, steps: number): string {
  const wordsPerPage = w.pageSize / 8;
  const words = new BigUint64Array(w.memBytes / 8);
  const s = BigInt(seed);
  for (let p = 0; p < w.pageCount; p++) {
    if (isInitiallyZero(p, w.zeroShare)) continue;
    const x = mix64(s ^ mix64(BigInt(p)));
    for (let i = 0; i < wordsPerPage; i++) words[p * wordsPerPage + i] = mix64((x + BigInt(i)) & M64);
    words[p * wordsPerPage] |= 1n;
  }
  const phases = compilePhases(w);
  for (let v = 0; v < w.vcpus; v++) {
    const g = new AccessGenerator(phases, w.vcpus, v, seed);
    for (let step = 0; step < steps; step++) {
      const p = g.next();
      if (!g.isWrite) continue;
      const st = BigInt(step);
      const off = Number(mix64(st * 2n + 1n) % BigInt(wordsPerPage));
      words[p * wordsPerPage + off] = mix64(s ^ mix64(((BigInt(v) << 56n) & M64) ^ mix64(st)));
    }
  }
  return hashWords(words, w.memBytes);
}
