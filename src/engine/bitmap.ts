import type { PageSet } from "./page-set.js";

/** A fixed-size set of page numbers, one bit each, with a live count and fast scans. */
export class Bitmap implements PageSet {
  readonly size: number;
  private readonly words: Uint32Array;
  private population = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`bitmap size must be a non-negative integer, got ${size}`);
    this.size = size;
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  /** A bitmap from the byte form of `toBytes()` (bit i of byte j is page 8j + i). */
  static fromBytes(bytes: Uint8Array, size: number): Bitmap {
    const need = Math.ceil(size / 8);
    if (bytes.length !== need) throw new RangeError(`bitmap of ${size} pages needs ${need} bytes, got ${bytes.length}`);
    const b = new Bitmap(size);
    for (let i = 0; i < need; i++) b.words[i >>> 2] |= bytes[i] << ((i & 3) * 8);
    // Bits past `size` in the last byte are not pages: ignore them.
    const tail = size & 31;
    if (tail !== 0) b.words[b.words.length - 1] &= (1 << tail) - 1;
    b.population = 0;
    for (const w of b.words) b.population += popcount(w);
    return b;
  }

  static full(size: number): Bitmap {
    const b = new Bitmap(size);
    b.fill();
    return b;
  }

  get count(): number {
    return this.population;
  }

  has(i: number): boolean {
    return (this.words[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /** Returns true when the bit was newly set. */
  set(i: number): boolean {
    const w = i >>> 5;
    const m = 1 << (i & 31);
    if (this.words[w] & m) return false;
    this.words[w] |= m;
    this.population++;
    return true;
  }

  /** Returns true when the bit was set before. */
  clear(i: number): boolean {
    const w = i >>> 5;
    const m = 1 << (i & 31);
    if (!(this.words[w] & m)) return false;
    this.words[w] &= ~m;
    this.population--;
    return true;
  }

  /** Sets bits [from, to) (within the size); how many were newly set. Word by word: a run costs a few words, not a call per page. */
  setRange(from: number, to: number): number {
    if (from >= to) return 0;
    const words = this.words;
    const last = (to - 1) >>> 5;
    let added = 0;
    for (let w = from >>> 5; w <= last; w++) {
      const m = rangeMask(w, from, to);
      const word = words[w];
      added += popcount(m & ~word);
      words[w] = word | m;
    }
    this.population += added;
    return added;
  }

  /** Clears bits [from, to) (within the size); how many were set before. */
  clearRange(from: number, to: number): number {
    if (from >= to) return 0;
    const words = this.words;
    const last = (to - 1) >>> 5;
    let removed = 0;
    for (let w = from >>> 5; w <= last; w++) {
      const m = rangeMask(w, from, to);
      const word = words[w];
      removed += popcount(word & m);
      words[w] = word & ~m;
    }
    this.population -= removed;
    return removed;
  }

  /** Whether any bit of [from, to) (within the size) is set. */
  anyInRange(from: number, to: number): boolean {
    return anyBitIn(this.words, from, to);
  }

  /** How many bits from `from` on (a set one, within the size) are set in a row, at most `max`. */
  runFrom(from: number, max: number): number {
    const end = Math.min(this.size, from + max);
    // Only the words up to `end` are looked at: a full bitmap's next clear bit may be far away.
    const last = (end - 1) >>> 5;
    for (let w = from >>> 5; w <= last; w++) {
      const clear = ~this.words[w] & rangeMask(w, from, end);
      if (clear !== 0) return (w << 5) + ctz(clear) - from;
    }
    return end - from;
  }

  /** How many bits from `from` on (a clear one, within the size) are clear in a row, at most `max`: `runFrom` of the complement. */
  clearRunFrom(from: number, max: number): number {
    const end = Math.min(this.size, from + max);
    const last = (end - 1) >>> 5;
    for (let w = from >>> 5; w <= last; w++) {
      const set = this.words[w] & rangeMask(w, from, end);
      if (set !== 0) return (w << 5) + ctz(set) - from;
    }
    return end - from;
  }

  fill(): void {
    this.words.fill(0xffffffff);
    const tail = this.size & 31;
    if (tail !== 0) this.words[this.words.length - 1] = (1 << tail) - 1;
    this.population = this.size;
  }

  clearAll(): void {
    this.words.fill(0);
    this.population = 0;
  }

  /** The first set bit at or after `from`, or -1. */
  nextSet(from: number): number {
    if (from >= this.size) return -1;
    let w = from >>> 5;
    let word = this.words[w] & (0xffffffff << (from & 31));
    for (;;) {
      if (word !== 0) {
        const i = (w << 5) + ctz(word);
        return i < this.size ? i : -1;
      }
      if (++w >= this.words.length) return -1;
      word = this.words[w];
    }
  }

  /** The first clear bit at or after `from`, or -1. */
  nextClear(from: number): number {
    if (from >= this.size) return -1;
    let w = from >>> 5;
    let word = ~this.words[w] & (0xffffffff << (from & 31));
    for (;;) {
      if (word !== 0) {
        const i = (w << 5) + ctz(word);
        return i < this.size ? i : -1;
      }
      if (++w >= this.words.length) return -1;
      word = ~this.words[w];
    }
  }

  /** The first set bit at or after `from`, wrapping to the start; -1 when empty. */
  nextSetWrapping(from: number): number {
    if (this.population === 0) return -1;
    const i = this.nextSet(from);
    return i >= 0 ? i : this.nextSet(0);
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.size / 8));
    for (let i = 0; i < out.length; i++) out[i] = (this.words[i >>> 2] >>> ((i & 3) * 8)) & 0xff;
    return out;
  }

  /** Set bits of this bitmap that are clear in `other` (of the same size), ascending. */
  minus(other: Bitmap): Uint32Array {
    if (other.size !== this.size) throw new RangeError(`bitmaps of ${this.size} and ${other.size} pages`);
    // The switchover asks this of a post-copy's empty "ever sent" inside the downtime, where a
    // first, still interpreted, walk of a 1 GiB guest's words took 1–2 ms.
    if (this.population === 0 || other.population === this.size) return new Uint32Array(0);
    let n = 0;
    for (let w = 0; w < this.words.length; w++) n += popcount(this.words[w] & ~other.words[w]);
    const out = new Uint32Array(n);
    let k = 0;
    for (let w = 0; w < this.words.length && k < n; w++) {
      let word = this.words[w] & ~other.words[w];
      while (word !== 0) {
        out[k++] = (w << 5) + ctz(word);
        word &= word - 1;
      }
    }
    return out;
  }

  /** A bitmap of the pages this one does not hold. */
  complement(): Bitmap {
    const b = new Bitmap(this.size);
    // An empty one (post-copy's "sent" at the switchover, in the downtime): one native fill, no walk.
    if (this.population === 0) {
      b.fill();
      return b;
    }
    let population = 0;
    for (let w = 0; w < this.words.length; w++) {
      const word = ~this.words[w];
      b.words[w] = word;
      population += popcount(word);
    }
    const tail = this.size & 31;
    if (tail !== 0) {
      const last = this.words.length - 1;
      population -= popcount(b.words[last] & ~((1 << tail) - 1));
      b.words[last] &= (1 << tail) - 1;
    }
    b.population = population;
    return b;
  }

  clone(): Bitmap {
    const b = new Bitmap(this.size);
    b.words.set(this.words);
    b.population = this.population;
    return b;
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = this.nextSet(0); i >= 0; i = this.nextSet(i + 1)) yield i;
  }
}

/** The bits of word `w` that lie in [from, to) (w one of the words the range touches). */
function rangeMask(w: number, from: number, to: number): number {
  const lo = w === from >>> 5 ? 0xffffffff << (from & 31) : -1;
  const hi = w === (to - 1) >>> 5 ? 0xffffffff >>> (31 - ((to - 1) & 31)) : -1;
  return lo & hi;
}

/** Whether any bit of [from, to) is set in `words` (bit i of word i >>> 5, as Bitmap and the simulated guest keep them). */
/** The end (exclusive index) of the run of consecutive page numbers in `pages` that starts at index `i`. */
export function runEndIn(pages: ArrayLike<number>, i: number): number {
  const first = pages[i];
  let j = i + 1;
  while (j < pages.length && pages[j] === first + (j - i)) j++;
  return j;
}

export function anyBitIn(words: Uint32Array, from: number, to: number): boolean {
  if (from >= to) return false;
  const first = from >>> 5;
  const last = (to - 1) >>> 5;
  const lo = 0xffffffff << (from & 31);
  const hi = 0xffffffff >>> (31 - ((to - 1) & 31));
  if (first === last) return (words[first] & lo & hi) !== 0;
  if ((words[first] & lo) !== 0 || (words[last] & hi) !== 0) return true;
  for (let w = first + 1; w < last; w++) if (words[w] !== 0) return true;
  return false;
}

/** Sets bits [from, to) in `words` (laid out like `anyBitIn` reads them). */
export function setBitsIn(words: Uint32Array, from: number, to: number): void {
  if (from >= to) return;
  const first = from >>> 5;
  const last = (to - 1) >>> 5;
  const lo = 0xffffffff << (from & 31);
  const hi = 0xffffffff >>> (31 - ((to - 1) & 31));
  if (first === last) {
    words[first] |= lo & hi;
    return;
  }
  words[first] |= lo;
  if (last > first + 1) words.fill(0xffffffff, first + 1, last);
  words[last] |= hi;
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}
