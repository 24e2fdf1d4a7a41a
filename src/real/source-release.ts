/**
 * Memory freed as it leaves (issue 9): once the source is committed (its
 * guest paused for good, so a page's bytes are final), each bulk pages frame
 * is remembered with its connection and where it ends in that connection's
 * stream of this epoch. The destination's progress reports say how many
 * bytes of each stream it has installed (its native receivers', or Node's
 * frame handler on the JS path: TLS, huge pages); every page of a
 * frame that ends at or below that point is at the destination, and its copy
 * here is punched out of the memfd. A broken link forgets the log (what was in flight is the engine's to
 * resend; the rest is released at completion, as before). The source's
 * memory over time is sampled at each report (the memfd's allocated bytes).
 *
 * Who punches: by default a native thread of its own (native-puncher.ts):
 * freeing shmem costs about a microsecond a page, and on the event loop it
 * was two thirds of the source loop's CPU in a 1 GiB post-copy
 * (docs/real-benchmarks.md "Release punching off the loop"). The thread
 * runs at nice 0, not below the bulk threads: a punch holds the memfd's
 * inode lock, which the loop's lseek(SEEK_DATA) waits for (source-port.ts),
 * and a holder starved of the CPU at nice 19 can hold the loop up with it
 * (post-copy now learns its data map by mincore, without that lock, unless
 * swap is on; nice 10 and 19 measured no faster: docs/real-benchmarks.md,
 * stop 23). What
 * is still queued when the migration ends is freed with the memfd.
 * PPSIM_PUNCH=loop punches on the event loop instead, a slice per turn (A/B).
 */
import { fstatSync } from "node:fs";
import { niceFromEnv } from "./dataplane.js";
import { punchHole } from "./native.js";
import { startPuncher, type PuncherHandle } from "./native-puncher.js";

/** Pages punched per event-loop turn (≈ 0.5 ms of freeing), with PPSIM_PUNCH=loop. */
const PUNCH_SLICE_PAGES = 512;
/** The punching thread's nice value (PPSIM_PUNCH_NICE overrides; the header says why not lower). */
const PUNCH_THREAD_NICE = 0;

/**
 * Pages per fallocate on the thread (PPSIM_PUNCH_SLICE overrides). A punch holds the memfd's inode
 * lock, and so does lseek(SEEK_DATA), which the loop calls to learn which pages hold data in
 * post-copy (source-port.ts): a small piece bounds how long the loop can wait behind one.
 */
const PUNCH_THREAD_SLICE_PAGES = 64;

function punchSlicePages(): number {
  const n = Number(process.env.PPSIM_PUNCH_SLICE ?? "");
  return Number.isInteger(n) && n >= 1 && n <= 1 << 20 ? n : PUNCH_THREAD_SLICE_PAGES;
}

export type PunchWay = "thread" | "loop";

/** PPSIM_PUNCH=thread|loop (benchmarks, A/B), else "thread"; another value is refused. */
export function punchWayFromEnv(): PunchWay {
  const v = process.env.PPSIM_PUNCH;
  if (v === undefined || v === "" || v === "thread") return "thread";
  if (v === "loop") return "loop";
  throw new Error(`PPSIM_PUNCH must be thread or loop, not ${JSON.stringify(v)}`);
}

export interface MemorySample {
  /** µs, the source's clock. */
  at: number;
  /** Bytes the source guest's memfd holds (allocated blocks). */
  bytes: number;
}

/** One bulk connection's frames not yet known installed, in the order they went. */
interface StreamLog {
  ends: number[];
  frames: Uint32Array[];
}

export class ReleaseLog {
  private streams: StreamLog[] = [];
  private epoch = -1;
  readonly samples: MemorySample[] = [];
  /** Pages punched on the loop (PPSIM_PUNCH=loop), or by a thread already stopped. */
  private loopPunched = 0;
  /** The punching thread (started at the first punch), and the pages given to it. */
  private puncher: PuncherHandle | null = null;
  private given = 0;
  /** Runs still to punch (first page, count ≤ PUNCH_SLICE_PAGES), from `next` on. */
  private runs: [number, number][] = [];
  private next = 0;
  private draining = false;
  private stopped = false;

  constructor(
    private readonly memfd: number,
    private readonly pageSize: number,
    /** Told each set of pages before any of them is punched (the fault lane's "released" marks: fault-lane.ts). */
    private readonly beforePunch?: (pages: Uint32Array) => void,
    private readonly way: PunchWay = punchWayFromEnv(),
  ) {}

  /** Pages punched out of the memfd so far. */
  get punchedPages(): number {
    return this.loopPunched + (this.puncher?.stats().punched ?? 0);
  }

  /** Resolves once every page given to the punching thread is punched (or it stopped): tests and benchmarks. */
  async settled(timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const p = this.puncher;
      if (p === null) {
        // the loop's slices: let their turns run
        if (this.next === this.runs.length) return;
      } else {
        const s = p.stats();
        if (s.punched >= this.given || s.errno !== 0) return;
      }
      if (Date.now() > end) throw new Error("the release log's punches did not finish in time");
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** A committed bulk pages frame on connection `stream`, ending at `end` bytes of its stream in epoch `epoch`. */
  sent(epoch: number, stream: number, end: number, pages: Uint32Array): void {
    if (epoch !== this.epoch) this.forget(epoch);
    const s = (this.streams[stream] ??= { ends: [], frames: [] });
    s.ends.push(end);
    s.frames.push(pages);
  }

  forget(epoch = -1): void {
    this.epoch = epoch;
    this.streams = [];
  }

  /** The destination installed `bytes[k]` of connection k's stream in epoch `epoch`: punch what it holds. Returns those pages' frames. */
  taken(epoch: number, bytes: readonly number[], now: number): Uint32Array[] {
    const done: Uint32Array[] = [];
    if (epoch === this.epoch) {
      this.streams.forEach((s, k) => {
        const upTo = bytes[k] ?? 0;
        let n = 0;
        while (n < s.ends.length && s.ends[n] <= upTo) n++;
        if (n === 0) return;
        for (const f of s.frames.splice(0, n)) done.push(f);
        s.ends.splice(0, n);
      });
      if (done.length > 0) this.punch(done);
    }
    this.sample(now);
    return done;
  }

  sample(now: number): void {
    try {
      this.samples.push({ at: now, bytes: fstatSync(this.memfd).blocks * 512 });
    } catch {
      // the guest is gone: no more samples
    }
  }

  get peakBytes(): number {
    let m = 0;
    for (const s of this.samples) m = Math.max(m, s.bytes);
    return m;
  }

  /** No punch after this: the memfd is about to close (its number could then name another file). */
  stop(): void {
    this.stopped = true;
    this.runs = [];
    this.next = 0;
    const p = this.puncher;
    if (p === null) return;
    p.stop();
    this.loopPunched += p.stats().punched;
    this.puncher = null;
  }

  private punch(frames: Uint32Array[]): void {
    if (this.stopped) return;
    // The joined copy only for a test's hook: a report frees ~17 000 pages, and copying them each time was garbage the loop paid for.
    if (this.beforePunch !== undefined) {
      const all = new Uint32Array(frames.reduce((a, f) => a + f.length, 0));
      let o = 0;
      for (const f of frames) {
        all.set(f, o);
        o += f.length;
      }
      this.beforePunch(all);
    }
    const runs = pageRuns(frames);
    if (this.way === "thread") {
      this.punchOnThread(runs);
      return;
    }
    for (let r = 0; r < runs.length; r += 2)
      for (let a = 0; a < runs[r + 1]; a += PUNCH_SLICE_PAGES) this.runs.push([runs[r] + a, Math.min(PUNCH_SLICE_PAGES, runs[r + 1] - a)]);
    this.drainSoon();
  }

  /** Sorted [first, count] runs to the punching thread (it cuts them into slices of its own). */
  private punchOnThread(runs: Uint32Array): void {
    try {
      this.puncher ??= startPuncher(this.memfd, this.pageSize, Math.floor(fstatSync(this.memfd).size / this.pageSize), niceFromEnv("PPSIM_PUNCH_NICE", PUNCH_THREAD_NICE), punchSlicePages());
      this.given += this.puncher.punch(runs);
    } catch {
      // the guest is gone, or a punch failed (its pages stay until the memfd closes): nothing more to free
      this.stop();
    }
  }

  /**
   * Punches a slice per event-loop turn. Freeing shmem costs about a
   * microsecond a page: a progress report's worth of pages (~70 MiB) punched
   * at once held the event loop for 20 ms, and the demand replies behind it
   * made the faults' tail (docs/real-benchmarks.md).
   */
  private drainSoon(): void {
    if (this.draining || this.next === this.runs.length) return;
    this.draining = true;
    setImmediate(() => {
      this.draining = false;
      if (this.stopped) return;
      const ps = this.pageSize;
      let budget = PUNCH_SLICE_PAGES;
      while (budget > 0 && this.next < this.runs.length) {
        const [first, n] = this.runs[this.next++];
        try {
          punchHole(this.memfd, first * ps, n * ps);
        } catch {
          // the guest is gone: nothing left to free
          this.stop();
          return;
        }
        this.loopPunched += n;
        budget -= n;
      }
      if (this.next === this.runs.length) {
        this.runs = [];
        this.next = 0;
      }
      this.drainSoon();
    });
  }
}

/**
 * The frames' pages as [first, count] pairs, sorted by first page, touching or
 * overlapping runs merged. Found a frame at a time (a background frame is
 * usually one run of consecutive pages) and sorted as runs, not as pages: a
 * progress report frees ~17 000 pages, and sorting and scanning them page by
 * page was most of what freeing cost the source's loop.
 */
export function pageRuns(frames: readonly Uint32Array[]): Uint32Array {
  const firsts: number[] = [];
  const ends: number[] = [];
  for (const f of frames) {
    let i = 0;
    while (i < f.length) {
      let j = i + 1;
      while (j < f.length && f[j] === f[j - 1] + 1) j++;
      firsts.push(f[i]);
      ends.push(f[j - 1] + 1);
      i = j;
    }
  }
  // Background frames arrive in page order: sort (a closure call per comparison) only when they did not.
  let sorted = true;
  for (let k = 1; k < firsts.length && sorted; k++) sorted = firsts[k - 1] <= firsts[k];
  const order = sorted ? null : firsts.map((_, k) => k).sort((a, b) => firsts[a] - firsts[b]);
  const out: number[] = [];
  for (let i = 0; i < firsts.length; i++) {
    const k = order === null ? i : order[i];
    const n = out.length;
    if (n > 0 && firsts[k] <= out[n - 2] + out[n - 1]) out[n - 1] = Math.max(out[n - 1], ends[k] - out[n - 2]);
    else out.push(firsts[k], ends[k] - firsts[k]);
  }
  return Uint32Array.from(out);
}
