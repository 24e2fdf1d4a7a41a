/**
 * What the switchover's legs cost (issue 10 part 4), for the host profile's
 * switchover keys (src/sim/host-switchover.ts). The real downtime is the
 * guest's own (source-report.ts): from the source guest's last vCPU park to
 * the destination guest's first vCPU step. On that path the real back end
 * has, beside the engines' work and the link's latency:
 * - the pause: the agent's PAUSE → the last vCPU park (`park_us`, before the
 *   downtime: the vCPUs run until they see it) → the PAUSE reply at the
 *   agent (`pause_reply_us`);
 * - the switchover frame's hop: it goes on the bulk connection, through the
 *   source's sender thread, the kernel, the destination's receiver thread
 *   and its notice to the event loop (`switchover_hop_us`);
 * - the start: the destination's RESUME → its guest's first vCPU step
 *   (`first_step_us`).
 * Each is measured through the calls the agents make: a guest spawned as
 * they spawn one (its vCPUs at their nice, ppsim-guest's own stamps on the
 * agents' clock), the addon's bulk sender and receiver over loopback TCP.
 */
import { encodeMessage } from "../engine/codec.js";
import { maxPayloadBytes } from "../engine/frame-decoder.js";
import { parseWorkload } from "../workload/parse.js";
import { toGuestConfig } from "../workload/guest-config.js";
import { loopbackPair } from "./calibrate-bulk.js";
import { nowUs, sleep } from "./clock.js";
import { plainSocketFd, stopNodeReading } from "./dataplane.js";
import { GuestProcess } from "./guest-process.js";
import { startingVcpus } from "./guest-spawn.js";
import { closeFd, constants, createBulkReceiver, memfdCreate, setSendBuffer, startBulkSender } from "./native.js";
import { NATIVE_QUEUE_BYTES } from "./source-link.js";
import { BULK_KERNEL_QUEUE_BYTES } from "./transport.js";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
};

export interface GuestLegs {
  /** PAUSE asked → the last vCPU parked, µs (median). */
  parkUs: number;
  /** The last vCPU parked → the PAUSE reply here, µs (median). */
  pauseReplyUs: number;
  /** RUN asked of a guest whose vCPUs never ran → its first vCPU step, µs (the destination's RESUME starts its vCPUs so). */
  firstStepUs: number;
}

/**
 * A guest with as many vCPUs as the examples (4), spawned as the agents
 * spawn one: `pauses` PAUSEs of its running vCPUs (each after a few ms of
 * running) timed against its own park stamps, and the first step after RUN.
 */
export async function guestLegs(pauses: number): Promise<GuestLegs> {
  const w = parseWorkload(
    { ppsim_workload: 1, name: "calibrate-switchover", memory: "16MiB", vcpus: 4, phases: [{ steps: 1e12, compute_ns: 1000, write_share: 0.1, pattern: { kind: "uniform" } }] },
    "calibration guest",
  );
  const g = await GuestProcess.spawn({ role: "source", config: toGuestConfig(w, 1), noWp: true });
  try {
    const asked = nowUs();
    await startingVcpus(g, () => g.run());
    // At nice 19 on a busy host a vCPU may take a while to get its first slice: every one must have stepped (≤ 2 s).
    for (let waited = 0; waited < 2000 && (await g.progress()).vcpus.some((v) => v.steps === 0); waited += 5) await sleep(5);
    const park: number[] = [];
    const reply: number[] = [];
    let firstStepUs = NaN;
    for (let i = 0; i < pauses; i++) {
      const t = nowUs();
      await g.pause();
      const back = nowUs();
      const stamps = (await g.progressLog()).stamps;
      // A vCPU that got no slice between the last RESUME and this PAUSE keeps its earlier park: only this pause's count.
      const parks = (stamps?.lastParkUs ?? []).filter((x): x is number => x !== null && x >= t);
      if (i === 0) {
        const firsts = (stamps?.firstStepUs ?? []).filter((x): x is number => x !== null);
        if (firsts.length === 0) throw new Error("calibrate: the guest sent no first-step stamps (an older ppsim-guest?)");
        // The guest's stamps reach this clock through an offset read off a reply, good to that reply's transit
        // (µs, more under load): a leg shorter than that can read negative, and a profile's leg is never below 0.
        firstStepUs = Math.max(0, Math.min(...firsts) - asked);
      }
      if (stamps === undefined) throw new Error("calibrate: the guest sent no park stamps (an older ppsim-guest?)");
      if (parks.length > 0) {
        const last = Math.max(...parks);
        park.push(Math.max(0, last - t));
        reply.push(Math.max(0, back - last));
      }
      await startingVcpus(g, () => g.resume());
      await sleep(5);
    }
    if (park.length === 0) throw new Error(`calibrate: none of ${pauses} PAUSEs found a vCPU that parked for it`);
    return { parkUs: median(park), pauseReplyUs: median(reply), firstStepUs };
  } finally {
    await g.quit();
  }
}

/**
 * A switchover frame's hop, µs (median of `hops`): queued on a native bulk
 * sender → the native receiver's notice in JavaScript, over loopback TCP
 * with the agents' socket sizes, the threads idle before each (as at a
 * post-copy switchover), a few ms apart.
 */
export async function switchoverHop(hops: number): Promise<number> {
  const C = constants();
  const PS = C.PAGE_SIZE;
  const pages = 1024;
  const src = memfdCreate("ppsim-calibrate-hop", pages * PS);
  const { client, peer, close } = await loopbackPair();
  try {
    setSendBuffer(plainSocketFd(client), BULK_KERNEL_QUEUE_BYTES / 2);
    if (!stopNodeReading(peer)) throw new Error("calibrate: Node already read from the receiving socket");
    const limits = new Uint32Array(12);
    for (let t = 1; t < 12; t++) limits[t] = maxPayloadBytes(t, { pageSize: PS, pageCount: pages });
    let arrived: (at: number) => void = () => undefined;
    const receiver = createBulkReceiver(plainSocketFd(peer), limits, 30_000, (ns) => {
      for (const n of ns) {
        if (n.kind !== "frame") continue;
        arrived(nowUs());
        receiver.release();
      }
    });
    receiver.setTarget(src, src, 0n, PS, pages);
    receiver.start(new Uint8Array(0));
    const sender = startBulkSender(plainSocketFd(client), src, PS, pages, NATIVE_QUEUE_BYTES / 2, () => undefined);
    const frame = encodeMessage({ type: "switchover", stale: new Uint32Array(0), cpuState: new Uint8Array(64) }, PS);
    const us: number[] = [];
    try {
      for (let i = 0; i < hops; i++) {
        await sleep(3);
        const got = new Promise<number>((r) => (arrived = r));
        const t = nowUs();
        sender.frame(frame);
        us.push((await got) - t);
      }
    } finally {
      sender.stop();
      receiver.stop();
    }
    return median(us);
  } finally {
    close();
    closeFd(src);
  }
}
