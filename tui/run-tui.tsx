import { render } from "ink";
import type { Snapshot } from "../src/engine/report.js";
import { emptyHistory, observe } from "./history.js";
import { Pacer, sleep } from "./pacer.js";
import type { ViewSource } from "./source.js";
import { Live } from "./view/Live.js";

export interface TuiOptions {
  /** Virtual ms per wall ms (simulator); undefined = as fast as possible. */
  speed?: number;
  /** Wall ms between frames (default 50). */
  frameMs?: number;
  /** Streams (tests); default process.stdout / process.stdin. */
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  /** Route console output above the view (default true; off under test runners). */
  patchConsole?: boolean;
}

/**
 * Run the live view until the source is done; resolves with the final
 * snapshot once the last frame (with the report) is drawn and Ink has exited.
 * Keys (TTY only): q cancels (a refusal is shown, the run goes on), p pauses
 * the simulated clock, f makes a paced simulation 4× faster, e runs it flat
 * out to the end.
 */
export async function runTui(source: ViewSource, opts: TuiOptions = {}): Promise<Snapshot> {
  const frameMs = opts.frameMs ?? 50;
  const pacer = new Pacer(source, { speed: opts.speed, frameMs });
  let snapshot = source.snapshot();
  let history = observe(emptyHistory(), snapshot);
  let notice: string | null = null;

  const onQuit = () => {
    if (source.done()) return;
    const refused = source.cancel();
    notice = refused === null ? "cancelling…" : `cancel refused: ${refused}`;
    draw();
  };
  const onPause = () => {
    pacer.togglePause();
    draw();
  };
  const onFaster = () => {
    pacer.faster();
    draw();
  };
  const onToEnd = () => {
    pacer.toEnd();
    draw();
  };
  const element = () => (
    <Live
      snapshot={snapshot}
      history={history}
      status={{ paused: pacer.paused, canPause: pacer.canPause, notice, speed: pacer.label, canSpeedUp: pacer.canSpeedUp }}
      onQuit={onQuit}
      onPause={onPause}
      onFaster={onFaster}
      onToEnd={onToEnd}
    />
  );
  const ink = render(element(), {
    // Ink takes an explicit undefined as "no stream": pass only the given ones.
    ...(opts.stdout && { stdout: opts.stdout }),
    ...(opts.stdin && { stdin: opts.stdin }),
    exitOnCtrlC: false,
    patchConsole: opts.patchConsole ?? true,
    maxFps: Math.max(30, Math.ceil(1000 / frameMs)),
  });
  const draw = () => ink.rerender(element());

  try {
    for (;;) {
      const t0 = performance.now();
      pacer.step();
      snapshot = source.snapshot();
      history = observe(history, snapshot);
      if (source.done() && notice === "cancelling…") notice = null;
      draw();
      if (source.done()) break;
      const spent = performance.now() - t0;
      await sleep(pacer.flatOut ? 0 : Math.max(0, frameMs - spent));
    }
  } catch (err) {
    ink.unmount(err instanceof Error ? err : new Error(String(err)));
    await ink.waitUntilExit().catch(() => undefined);
    throw err;
  }
  ink.unmount();
  await ink.waitUntilExit();
  return snapshot;
}
