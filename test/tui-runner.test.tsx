import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { Pacer, nextChunk, MAX_CHUNK_MS, MIN_CHUNK_MS, watchableSpeed } from "../tui/pacer.js";
import { progressLine, runPlain } from "../tui/plain.js";
import { runTui } from "../tui/run-tui.js";
import { FakeSource, plain, snap } from "./tui-fixtures.js";

class FakeStdout extends EventEmitter {
  columns = 80;
  rows = 40;
  out = "";
  write = (s: string) => {
    this.out += s;
    return true;
  };
}

class FakeStdin extends EventEmitter {
  private data: string | null = null;
  constructor(readonly isTTY: boolean) {
    super();
  }
  press(key: string): void {
    this.data = key;
    this.emit("readable");
  }
  read = () => {
    const d = this.data;
    this.data = null;
    return d;
  };
  setEncoding() {}
  setRawMode() {}
  resume() {}
  pause() {}
  ref() {}
  unref() {}
}

function streams(tty: boolean) {
  const stdout = new FakeStdout();
  const stdin = new FakeStdin(tty);
  return {
    stdout,
    stdin,
    opts: {
      stdout: stdout as unknown as NodeJS.WriteStream,
      stdin: stdin as unknown as NodeJS.ReadStream,
      patchConsole: false,
    },
  };
}

describe("tui runPlain", () => {
  it("writes deterministic progress lines, then the report", async () => {
    const lines: string[] = [];
    const final = await runPlain(new FakeSource(5000, 2000), { write: (l) => lines.push(l), everyMs: 1000, advanceChunkMs: 250 });
    expect(final.phase).toBe("complete");
    const head = lines.slice(0, lines.indexOf("report: completed"));
    expect(head.map((l) => l.replace(/^\[[^\]]*\]\s+/, "").split(/\s{2,}/)[0])).toEqual([
      "setup", // 250
      "pre-copy r1", // 500
      "pre-copy r2", // 1000
      "pre-copy r3", // 1500
      "switchover", // 2000
      "post-copy", // 2250
      "post-copy", // 3000
      "post-copy", // 4000
      "complete", // 5000
    ]);
    expect(head[0]).toMatch(/^\[\s*250 ms\]\s+setup\s+present\s+0\.0%\s+faults 0$/);
    expect(head[2]).toMatch(/^\[\s*1\.00 s\]\s+pre-copy r2\s+present\s+20\.0%\s+faults 0 \(0\.0\/s\)\s+urgent 9\.77 KiB\/s\s+bulk 977 KiB\/s$/);
    expect(head[6]).toContain("downtime 42.0 ms");
    expect(lines).toContain("report: completed");
    expect(lines.some((l) => /^ {2}downtime\s+42\.1 ms$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {2}switchover_reason\s+hybrid-rounds$/.test(l))).toBe(true);
  });

  it("polls a real back end (no advance) until done", async () => {
    let polls = 0;
    const lines: string[] = [];
    const final = await runPlain(
      {
        snapshot: () => snap({ backend: "real", elapsedMs: polls * 10, phase: polls >= 3 ? "complete" : "setup" }),
        done: () => ++polls > 3,
        cancel: () => null,
      },
      { write: (l) => lines.push(l), everyMs: 1 },
    );
    expect(final.phase).toBe("complete");
    expect(lines.at(-1)).toContain("complete");
  });

  it("formats a progress line with rates from the previous one", () => {
    const a = snap({ phase: "postcopy", elapsedMs: 1000, demandFaults: 10, channelBytes: { urgent: 0, bulk: 0 } });
    const b = { ...a, elapsedMs: 2000, demandFaults: 60, throttle: 0.25, channelBytes: { urgent: 4096, bulk: 1048576 } };
    expect(progressLine(b, a)).toBe(
      "[  2.00 s]  post-copy      present   0.0%  faults 60 (50.0/s)  urgent 4.00 KiB/s  bulk 1.00 MiB/s  throttle 25%",
    );
  });
});

describe("tui pacer", () => {
  it("sizes chunks to about a frame of wall time, within bounds", () => {
    expect(nextChunk(10, 40, 50)).toBeCloseTo(10);
    expect(nextChunk(10, 0, 50)).toBe(40);
    expect(nextChunk(10, 1, 50)).toBe(40);
    expect(nextChunk(10, 1000, 50)).toBeCloseTo(0.4);
    expect(nextChunk(10, 1e6, 50)).toBeCloseTo(0.1);
    expect(nextChunk(MAX_CHUNK_MS, 0, 50)).toBe(MAX_CHUNK_MS);
    expect(nextChunk(MIN_CHUNK_MS, 1e9, 50)).toBe(MIN_CHUNK_MS);
  });

  it("advances speed × frameMs per frame, nothing while paused", () => {
    const src = new FakeSource(5000);
    const p = new Pacer(src, { speed: 2, frameMs: 50 });
    p.step();
    expect(src.t).toBe(100);
    p.togglePause();
    p.step();
    expect(src.t).toBe(100);
    expect(p.paused).toBe(true);
  });

  it("grows the chunk when advancing is cheap", () => {
    let clock = 0;
    const src = new FakeSource(1e9);
    const p = new Pacer(src, { frameMs: 50, now: () => clock });
    src.onAdvance = () => (clock += 10);
    p.step();
    p.step();
    expect(src.t).toBe(1 + 4);
  });
});

describe("tui runTui", () => {
  it("runs flat out to the end on a non-TTY stdin and shows the report", async () => {
    const { stdout, opts } = streams(false);
    const final = await runTui(new FakeSource(5000), { ...opts, frameMs: 5 });
    expect(final.phase).toBe("complete");
    const out = plain(stdout.out);
    expect(out).toContain("report: completed");
    expect(out).not.toContain("q quit");
  });

  it("shows a refused cancel and keeps running", async () => {
    const { stdout, stdin, opts } = streams(true);
    const src = new FakeSource(3000, 2000);
    let pressed = false;
    src.onAdvance = (t) => {
      if (t >= 2500 && !pressed) {
        pressed = true;
        setImmediate(() => stdin.press("q"));
      }
    };
    const final = await runTui(src, { ...opts, speed: 50, frameMs: 2 });
    expect(src.cancels).toBe(1);
    expect(final.phase).toBe("complete");
    const out = plain(stdout.out);
    expect(out).toContain("cancel refused: past switchover");
    expect(out).toContain("report: completed");
  });

  it("cancels before switchover on q", async () => {
    const { stdin, opts } = streams(true);
    const src = new FakeSource(Infinity, Infinity);
    src.onAdvance = () => setImmediate(() => stdin.press("q"));
    const final = await runTui(src, { ...opts, speed: 1, frameMs: 2 });
    expect(src.cancels).toBeGreaterThanOrEqual(1);
    expect(final.phase).toBe("cancelled");
  });

  it("pauses and resumes the simulated clock on p", async () => {
    const { stdout, stdin, opts } = streams(true);
    // A run too long to end by itself before the keys are seen, however slow the machine; it stops once resumed.
    class Stoppable extends FakeSource {
      stopAt = Infinity;
      override done(): boolean {
        return super.done() || this.t >= this.stopAt;
      }
    }
    const src = new Stoppable(1e12);
    let atPause = -1;
    let afterWait = -1;
    const waitFor = async (cond: () => boolean) => {
      while (!cond()) await new Promise((r) => setTimeout(r, 2));
    };
    src.onAdvance = (t) => {
      if (t < 500) return;
      src.onAdvance = null;
      setImmediate(async () => {
        stdin.press("p");
        await waitFor(() => plain(stdout.out).includes("‖ paused"));
        atPause = src.t;
        // Paused: however long we wait, the clock stands still.
        for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 3));
        afterWait = src.t;
        stdin.press("p");
        src.stopAt = afterWait + 100;
      });
    };
    await runTui(src, { ...opts, speed: 20, frameMs: 1 });
    expect(atPause).toBeGreaterThanOrEqual(500);
    expect(afterWait).toBe(atPause);
    expect(src.t).toBeGreaterThanOrEqual(afterWait + 100); // running again after the second p
  });
});

describe("tui pace and width", () => {
  it("shows its pace; f goes 4× faster, e runs flat out to the end", async () => {
    const { stdout, stdin, opts } = streams(true);
    const src = new FakeSource(1e8);
    let step = 0;
    const speeds: number[] = [];
    src.onAdvance = () => {
      step++;
      if (step === 3) setImmediate(() => stdin.press("f"));
      if (step === 30) setImmediate(() => stdin.press("e"));
    };
    const pacer = new Pacer(src, { speed: 2, frameMs: 5 });
    expect(pacer.label).toBe("×2.0");
    pacer.faster();
    expect(pacer.label).toBe("×8.0");
    pacer.toEnd();
    expect(pacer.label).toBe("max");
    expect(pacer.canSpeedUp).toBe(false);
    // The same through the keys: the run (10^8 ms, 10^7 frames at ×2) ends in time only because e lets it run flat out.
    const last = { t: 0 };
    const tracker = src.onAdvance;
    src.onAdvance = (t) => {
      speeds.push(t - last.t);
      last.t = t;
      tracker(t);
    };
    const final = await runTui(src, { ...opts, speed: 2, frameMs: 5 });
    expect(final.phase).toBe("complete");
    expect(speeds[0]).toBe(10);
    expect(speeds).toContain(40);
    const out = plain(stdout.out);
    expect(out).toContain("virtual clock ×2.0");
    expect(out).toContain("virtual clock ×8.0");
    expect(out).toContain("f faster · e to the end");
  });

  it("fits a terminal narrower than 80 columns", async () => {
    const { stdout, opts } = streams(false);
    stdout.columns = 60;
    await runTui(new FakeSource(5000), { ...opts, frameMs: 5 });
    const out = plain(stdout.out);
    expect(out).toContain("report: completed");
    for (const line of out.split("\n")) expect(line.length).toBeLessThanOrEqual(60);
  });

  it("picks a watchable pace from the predicted length", () => {
    expect(watchableSpeed(3000)).toBe(1);
    expect(watchableSpeed(150_000)).toBe(10);
    expect(watchableSpeed(NaN)).toBe(1);
  });
});
