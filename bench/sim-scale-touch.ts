/**
 * What one random touch of per-page state costs at 1 TiB sizes (268 M pages):
 * a bit in one 32 MiB bit map, a page's bits in two separate maps, the same
 * two maps interleaved word by word (a page's bits in one cache line), and
 * 4 bytes in a 1 GiB array (guest memory). The touches are independent, so
 * several misses overlap, as in the simulator's loops. docs/sim-scaling.md
 * (seventh pass) uses it to bound what interleaving the bit maps could save,
 * and, run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, what huge pages do.
 *
 *   npm run build && node dist/bench/sim-scale-touch.js [TOUCHES_MILLIONS] [REPEATS]
 */
import { readFileSync } from "node:fs";
import { printBench, type Row } from "./table.js";

const PAGES = 268_435_456;
const WORDS = PAGES / 32;
const touches = Number(process.argv[2] ?? 10) * 1e6;
const repeats = Number(process.argv[3] ?? 2);
const one = new Uint32Array(WORDS);
const other = new Uint32Array(WORDS);
const paired = new Uint32Array(2 * WORDS);
const memory = new Uint32Array(PAGES);
// Touched once per 4 KiB so every page is mapped (and, with the tunable, huge) before timing.
for (const a of [one, other, paired, memory]) for (let i = 0; i < a.length; i += 1024) a[i] = 1;

// A 32-bit LCG: cheap next to a miss, and the same pages for every test.
const next = (x: number) => (Math.imul(x, 1664525) + 1013904223) | 0;
const tests: Record<string, (x: number) => number> = {
  "one bit, one 32 MiB map": (x) => {
    let s = 0;
    for (let i = 0; i < touches; i++) {
      x = next(x);
      const p = (x >>> 4) & (PAGES - 1);
      s += one[p >>> 5] & (1 << (p & 31));
    }
    return s;
  },
  "two bits, two separate maps": (x) => {
    let s = 0;
    for (let i = 0; i < touches; i++) {
      x = next(x);
      const p = (x >>> 4) & (PAGES - 1);
      s += (one[p >>> 5] & (1 << (p & 31))) + (other[p >>> 5] & (1 << (p & 31)));
    }
    return s;
  },
  "two bits, maps interleaved": (x) => {
    let s = 0;
    for (let i = 0; i < touches; i++) {
      x = next(x);
      const p = (x >>> 4) & (PAGES - 1);
      const w = (p >>> 5) << 1;
      s += (paired[w] & (1 << (p & 31))) + (paired[w + 1] & (1 << (p & 31)));
    }
    return s;
  },
  "4 bytes, one 1 GiB array": (x) => {
    let s = 0;
    for (let i = 0; i < touches; i++) {
      x = next(x);
      s += memory[(x >>> 4) & (PAGES - 1)];
    }
    return s;
  },
};

function anonHugeMiB(): number {
  try {
    return Math.round(Number(/^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

const rows: Row[] = [];
let sink = 0;
for (let r = 0; r < repeats; r++) {
  for (const [name, f] of Object.entries(tests)) {
    const t0 = process.hrtime.bigint();
    sink += f(987654321);
    rows.push({ test: name, repeat: r + 1, ns_per_touch: Number((Number(process.hrtime.bigint() - t0) / touches).toFixed(1)) });
  }
}
printBench("sim-scale-touch", `node dist/bench/sim-scale-touch.js ${touches / 1e6} ${repeats}`, { pages: PAGES, glibc_tunables: process.env.GLIBC_TUNABLES ?? null, anon_huge_mib: anonHugeMiB(), sink: sink & 1, node: process.version }, rows);
