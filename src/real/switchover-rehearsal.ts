/**
 * A whole migration of a few pages between two throwaway engines, in
 * memory, before the real one pauses its guest (issue 9). Why: the engine's
 * switchover code (the source's pause handling, its switchover message, the
 * destination's switchover and resume, the codec for those frames) runs
 * once per agent process, inside the downtime, and its first run compiles
 * it (V8 compiles a function lazily, at its first call) and fills its
 * inline caches: the switchover stamps (switchover-stamps.ts) showed
 * hundreds of µs of JS there on an agent just started. Rehearsed, the real
 * switchover runs code already compiled and warm.
 *
 * Pure and synchronous: no I/O, no timers, nothing shared with the real
 * engines but their code. The messages go through the real codec and frame
 * decoder, so those paths are warm too. It changes nothing the guest or a
 * peer may see: the real engines never meet these ones.
 */
import { encodeMessage } from "../engine/codec.js";
import { Destination } from "../engine/destination.js";
import { driveDestination, driveSource, type DestinationEffects, type SourceEffects } from "../engine/drive.js";
import type { DestinationInput, SourceInput } from "../engine/events.js";
import { FrameDecoder } from "../engine/frame-decoder.js";
import type { Channel, Message } from "../engine/messages.js";
import type { MigrationOptions } from "../engine/options.js";
import { Source } from "../engine/source.js";

/** Enough pages for a pages frame or two after the switchover; few enough to cost well under a millisecond. */
const PAGES = 48;
/** A bound on the rehearsal's exchanges (it completes in about a dozen). */
const MAX_TURNS = 200;

/** PPSIM_SWITCHOVER_REHEARSAL=0: no rehearsal before the real switchover, at whichever agent has it set (A/B). */
export function rehearsalWanted(): boolean {
  return process.env.PPSIM_SWITCHOVER_REHEARSAL !== "0";
}

export interface Rehearsal {
  /** Whether both engines completed (a rehearsal that did not is harmless, only less warm). */
  completed: boolean;
  switchedOver: boolean;
  turns: number;
}

/** Runs the rehearsal for `opts` (the real migration's options: the same mode takes the same paths) with pages of `pageSize`. */
export function rehearseSwitchover(opts: MigrationOptions, pageSize: number): Rehearsal {
  const layout = { pageSize, pageCount: PAGES };
  const page = new Uint8Array(pageSize);
  page[0] = 1; // one non-zero page: the pages frame's data path, not only the zero flag
  const src = new Source<Uint8Array>(opts, layout, { readPage: (p) => (p === 0 ? page : null), collectDirty: () => new Uint32Array(0) }, null);
  const dst = new Destination<Uint8Array>(opts, { expect: layout, standby: false });
  const toDst = new FrameDecoder(pageSize);
  const toSrc = new FrameDecoder(pageSize);
  toDst.setLayout(pageSize, PAGES);
  toSrc.setLayout(pageSize, PAGES);
  const srcIn: SourceInput<Uint8Array>[] = [];
  const dstIn: DestinationInput<Uint8Array>[] = [];
  let switchedOver = false;
  let done = 0;
  // Each message through the real codec, as a peer would receive it.
  const carry = (d: FrameDecoder, msg: Message<Uint8Array>): Message<Uint8Array>[] => d.push(encodeMessage(msg, pageSize));
  const srcFx: SourceEffects<Uint8Array> = {
    canSend: () => true,
    send: (channel: Channel, msg) => {
      if (msg.type === "switchover") switchedOver = true;
      for (const m of carry(toDst, msg)) dstIn.push({ kind: "message", msg: m, channel });
    },
    setTimer: () => undefined,
    finished: () => void done++,
    // The state's size does not matter to the engines: they carry it as bytes.
    pauseGuest: () => void srcIn.push({ kind: "guestPaused", cpuState: new Uint8Array(72) }),
    resumeGuest: () => undefined,
    throttleGuest: () => undefined,
    releasePages: () => undefined,
  };
  const dstFx: DestinationEffects<Uint8Array> = {
    canSend: () => true,
    send: (_channel, msg) => {
      for (const m of carry(toSrc, msg)) srcIn.push({ kind: "message", msg: m });
    },
    setTimer: () => undefined,
    finished: () => void done++,
    installPages: () => undefined,
    wake: () => undefined,
    dropPages: () => undefined,
    resumeGuest: () => void dstIn.push({ kind: "guestResumed" }),
    stopFaultHandling: () => undefined,
  };
  let now = 1;
  let turns = 0;
  src.start(now);
  driveSource(src, srcFx, now);
  while (turns < MAX_TURNS && done < 2 && (srcIn.length > 0 || dstIn.length > 0)) {
    turns++;
    now += 100;
    for (const ev of dstIn.splice(0)) dst.handle(ev, now);
    driveDestination(dst, dstFx, now);
    for (const ev of srcIn.splice(0)) src.handle(ev, now);
    driveSource(src, srcFx, now);
  }
  return { completed: done === 2, switchedOver, turns };
}
