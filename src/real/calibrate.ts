/**
 * `ppsim calibrate`: measures on this machine what the simulator's host
 * profile (src/sim/host.ts) charges, through the same addon calls and code
 * paths the real agents use, and writes the profile.
 *
 * Each figure is the median of `reps` timed repetitions (a shared machine is
 * noisy: the spread is reported beside it):
 * - send, per page: pread of a 16-page run from a memfd, the zero check, the
 *   codec's frame — as the source port and transport do; pages with data,
 *   and holes (zero pages);
 * - install, per page: decoding that frame and UFFDIO_COPY (UFFDIO_ZEROPAGE
 *   for zeros) into a userfaultfd-registered memfd mapping, as the
 *   destination installs once its guest runs; and into memory populated
 *   ahead (stores, UFFDIO_CONTINUE) — send and install: calibrate-pages.ts;
 * - per message: one small frame encoded, written to a loopback TCP socket,
 *   read and decoded in this process, halved (one end's share);
 * - fault delivery: a thread of the addon touches a missing page, the fault
 *   reader hands it to JavaScript, which answers with UFFDIO_COPY; each
 *   fault minus its own install (timed inside it);
 * - pause and resume: PAUSE and RESUME through a spawned guest's control
 *   socket; guest start: spawning a destination guest until it connected;
 * - the switchover's legs (a 4-vCPU guest's park and PAUSE reply, the
 *   switchover frame's hop through the data plane's threads, the first vCPU
 *   step after RUN): calibrate-switchover.ts;
 * - the cores as a migration finds them (the native stream's CPU, the
 *   engines' work, the cores available, a nice-19 vCPU's share and the
 *   urgent round trip while the stream runs): calibrate-cpu.ts;
 * - the stream's cost per install call (runs of 1, 2, 4 and 16 pages, fitted
 *   per call + per page): calibrate-runs.ts.
 */
import { availableParallelism, cpus, release } from "node:os";
import { encodeMessage } from "../engine/codec.js";
import { percentiles } from "../engine/metrics.js";
import { laneRoundTrip } from "./calibrate-lane.js";
import { FrameDecoder } from "../engine/frame-decoder.js";
import type { Message } from "../engine/messages.js";
import { DEFAULT_HOST, HOST_PROFILE_VERSION, type HostProfile } from "../sim/host.js";
import { toGuestConfig } from "../workload/guest-config.js";
import { parseWorkload } from "../workload/parse.js";
import { faultLoop, framePages, loopbackPair } from "./calibrate-bulk.js";
import { coresAvailable, enginePerPageNs, streaming } from "./calibrate-cpu.js";
import { runCosts } from "./calibrate-runs.js";
import { guestLegs, switchoverHop } from "./calibrate-switchover.js";
import { BULK_SLICE } from "./dest-session.js";
import { GuestProcess } from "./guest-process.js";
import { startingVcpus } from "./guest-spawn.js";
import { installPerPage, installPerPagePopulated, sendPerPage } from "./calibrate-pages.js";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface Calibration {
  profile: HostProfile;
  /** Every figure's spread over the repetitions, in the profile's units. */
  spread: Record<string, Spread>;
  host: { cpus: number; cpu: string; kernel: string; node: string };
}

function spreadOf(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x: number) => (Math.abs(x) >= 10 ? Math.round(x * 10) / 10 : Math.round(x * 1000) / 1000);
  return { median: r(s[Math.floor((s.length - 1) / 2)]), min: r(s[0]), max: r(s[s.length - 1]) };
}

/** One end's ns per small message: encode, write, read, decode over loopback TCP, halved. */
async function perMessage(count: number): Promise<number> {
  const { client, peer, close } = await loopbackPair();
  try {
    client.setNoDelay(true);
    const decoder = new FrameDecoder(4096, 1 << 20);
    let got = 0;
    const done = new Promise<void>((r) =>
      peer.on("data", (chunk: Buffer) => {
        got += decoder.push(chunk).length;
        if (got >= count) r();
      }),
    );
    const t = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const msg: Message<Uint8Array> = { type: "pageRequest", page: i };
      if (!client.write(encodeMessage(msg, 4096))) await new Promise((r) => client.once("drain", r));
    }
    await done;
    return Number(process.hrtime.bigint() - t) / count / 2;
  } finally {
    close();
  }
}

/**
 * µs from a thread's fault to JavaScript's UFFDIO_COPY waking it: the floor under a demand fault's latency (also
 * bench/real-postcopy). `delivery_p50_us`: the same round trips each without its own UFFDIO_COPY (the profile's
 * fault_delivery_us: the simulator charges the install apart) — a difference taken fault by fault, not the round
 * trip's p50 minus an install timed elsewhere: load that struck one measurement and not the other made that
 * difference 0 (clamped) or negative, a fault delivered for free.
 */
export async function faultRoundTrip(faults: number): Promise<{ p50_us: number; p99_us: number; delivery_p50_us: number }> {
  const loop = faultLoop(faults, "ppsim-calibrate-fault");
  await loop.finished.catch(() => undefined); // stop() cleans up, then throws what the loop threw
  const us = await loop.stop();
  const p = percentiles(us);
  // Every fault finished was answered first, so its install is timed; each difference is the hand-offs alone (> 0).
  const delivery = percentiles(us.map((rt, i) => rt - loop.installUs[i]));
  return { p50_us: Math.round(p.p50), p99_us: Math.round(p.p99), delivery_p50_us: Math.round(delivery.p50 * 10) / 10 };
}

/** µs for PAUSE and RESUME of a running one-vCPU guest through its control socket, and for starting one (medians). */
async function guestCosts(count: number): Promise<{ pauseUs: number; resumeUs: number; startUs: number }> {
  const w = parseWorkload(
    { ppsim_workload: 1, name: "calibrate", memory: "16MiB", vcpus: 1, phases: [{ steps: 1e12, compute_ns: 1000, write_share: 0.1, pattern: { kind: "uniform" } }] },
    "calibration guest",
  );
  const config = toGuestConfig(w, 1);
  const start: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const d = await GuestProcess.spawn({ role: "destination", config });
    start.push((performance.now() - t) * 1000);
    await d.quit();
  }
  const g = await GuestProcess.spawn({ role: "source", config, noWp: true });
  try {
    await startingVcpus(g, () => g.run());
    const pause: number[] = [];
    const resume: number[] = [];
    for (let i = 0; i < count; i++) {
      await new Promise((r) => setTimeout(r, 5));
      let t = performance.now();
      await g.pause();
      pause.push((performance.now() - t) * 1000);
      t = performance.now();
      await g.resume();
      resume.push((performance.now() - t) * 1000);
    }
    return { pauseUs: spreadOf(pause).median, resumeUs: spreadOf(resume).median, startUs: spreadOf(start).median };
  } finally {
    await g.quit();
  }
}

export interface CalibrateOptions {
  /** Repetitions of each figure (default 5). */
  reps?: number;
  /** Pages per send/install repetition (default 16384: 64 MiB); the native stream moves 4× as many. */
  pages?: number;
  /** Only the CPU figures (calibrate-cpu.ts), beside the shipped profile's others: a quick measurement beside a benchmark. */
  cpuOnly?: boolean;
  log?: (line: string) => void;
}

export async function calibrate(o: CalibrateOptions = {}): Promise<Calibration> {
  const reps = o.reps ?? 5;
  const pages = o.pages ?? 16384;
  const log = o.log ?? (() => undefined);
  const runs: Record<string, number[]> = {
    send_ns_per_page: [],
    send_ns_per_zero_page: [],
    install_ns_per_page: [],
    install_ns_per_zero_page: [],
    install_ns_per_page_populated: [],
    install_ns_per_zero_page_populated: [],
    message_ns: [],
    fault_delivery_us: [],
    fault_lane_us: [],
    pause_us: [],
    resume_us: [],
    guest_start_us: [],
    park_us: [],
    pause_reply_us: [],
    switchover_hop_us: [],
    first_step_us: [],
    cores_available: [],
    bulk_cpu_ns_per_page: [],
    stream_ns_per_page: [],
    stream_ns_per_zero_page: [],
    stream_ns_per_page_running: [],
    stream_ns_per_zero_page_running: [],
    stream_ns_per_page_populated: [],
    stream_ns_per_zero_page_populated: [],
    stream_ns_per_page_running_populated: [],
    stream_ns_per_zero_page_running_populated: [],
    engine_ns_per_page: [],
    guest_share_streaming: [],
    urgent_extra_us: [],
    fault_wake_us: [],
    stream_ns_per_run: [],
    stream_ns_per_zero_run: [],
    stream_ns_per_run_running: [],
    stream_ns_per_zero_run_running: [],
  };
  const cores = availableParallelism();
  for (let i = 0; i < reps; i++) {
    log(`repetition ${i + 1} of ${reps}`);
    runs.cores_available.push(await coresAvailable(cores));
    runs.engine_ns_per_page.push(enginePerPageNs());
    const st = await streaming(pages * 4, Math.max(1, 2 * cores));
    runs.bulk_cpu_ns_per_page.push(st.bulk.cpuNsPerPage);
    runs.stream_ns_per_page.push(st.streamNsPerPage);
    runs.stream_ns_per_zero_page.push(st.streamNsPerZeroPage);
    runs.stream_ns_per_page_running.push(st.streamNsPerPageRunning);
    runs.stream_ns_per_zero_page_running.push(st.streamNsPerZeroPageRunning);
    runs.stream_ns_per_page_populated.push(st.streamNsPerPagePopulated);
    runs.stream_ns_per_zero_page_populated.push(st.streamNsPerZeroPagePopulated);
    runs.stream_ns_per_page_running_populated.push(st.streamNsPerPageRunningPopulated);
    runs.stream_ns_per_zero_page_running_populated.push(st.streamNsPerZeroPageRunningPopulated);
    runs.guest_share_streaming.push(st.guestShare);
    runs.urgent_extra_us.push(st.urgentExtraUs);
    if (st.faultWakeUs !== null) runs.fault_wake_us.push(st.faultWakeUs);
    if (o.cpuOnly === true) continue;
    const rc = await runCosts(pages);
    runs.stream_ns_per_run.push(rc.data.perRunNs);
    runs.stream_ns_per_zero_run.push(rc.zero.perRunNs);
    runs.stream_ns_per_run_running.push(rc.dataRunning.perRunNs);
    runs.stream_ns_per_zero_run_running.push(rc.zeroRunning.perRunNs);
    log(`  runs of 1, 2, 4, 16 pages, ns a page: ${JSON.stringify(rc.points)}`);
    runs.send_ns_per_page.push(sendPerPage(pages, false));
    runs.send_ns_per_zero_page.push(sendPerPage(pages, true));
    const install = installPerPage(pages, false);
    runs.install_ns_per_page.push(install);
    runs.install_ns_per_zero_page.push(installPerPage(pages, true));
    runs.install_ns_per_page_populated.push(await installPerPagePopulated(pages, false));
    runs.install_ns_per_zero_page_populated.push(await installPerPagePopulated(pages, true));
    runs.message_ns.push(await perMessage(20_000));
    runs.fault_delivery_us.push((await faultRoundTrip(2000)).delivery_p50_us);
    // The lane's own stamps (read → install), as the real destination books a lane fault: not the touch's hand-offs.
    const lane = await laneRoundTrip(2000);
    runs.fault_lane_us.push(lane.native_p50_us ?? lane.p50_us);
    const g = await guestCosts(10);
    runs.pause_us.push(g.pauseUs);
    runs.resume_us.push(g.resumeUs);
    runs.guest_start_us.push(g.startUs);
    const legs = await guestLegs(10);
    runs.park_us.push(legs.parkUs);
    runs.pause_reply_us.push(legs.pauseReplyUs);
    runs.first_step_us.push(legs.firstStepUs);
    runs.switchover_hop_us.push(await switchoverHop(50));
  }
  const spread: Record<string, Spread> = {};
  for (const [k, xs] of Object.entries(runs)) if (xs.length > 0) spread[k] = spreadOf(xs);
  const host = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "?", kernel: release(), node: process.version };
  // cpuOnly: the shipped profile's other figures.
  const m = (k: string) => spread[k]?.median ?? (DEFAULT_HOST as unknown as Record<string, number>)[k];
  const profile: HostProfile = {
    ppsim_host_profile: HOST_PROFILE_VERSION,
    measured_on: `${host.cpus} CPUs (${host.cpu}), Linux ${host.kernel}, Node ${host.node}, ppsim calibrate ${new Date().toISOString().slice(0, 10)}, median of ${reps}`,
    send_ns_per_page: m("send_ns_per_page"),
    send_ns_per_zero_page: m("send_ns_per_zero_page"),
    install_ns_per_page: m("install_ns_per_page"),
    install_ns_per_zero_page: m("install_ns_per_zero_page"),
    install_ns_per_page_populated: m("install_ns_per_page_populated"),
    install_ns_per_zero_page_populated: m("install_ns_per_zero_page_populated"),
    message_ns: m("message_ns"),
    fault_delivery_us: m("fault_delivery_us"),
    pause_us: m("pause_us"),
    resume_us: m("resume_us"),
    guest_start_us: m("guest_start_us"),
    // The real back end's default has the fault lane (PPSIM_FAULT_LANE=0 turns it off: drop this key to simulate that).
    fault_lane_us: spread.fault_lane_us?.median ?? DEFAULT_HOST.fault_lane_us,
    park_us: m("park_us"),
    pause_reply_us: m("pause_reply_us"),
    switchover_hop_us: m("switchover_hop_us"),
    first_step_us: m("first_step_us"),
    cores_available: Math.max(0.01, m("cores_available")),
    bulk_cpu_ns_per_page: m("bulk_cpu_ns_per_page"),
    stream_ns_per_page: m("stream_ns_per_page"),
    stream_ns_per_zero_page: m("stream_ns_per_zero_page"),
    stream_ns_per_page_running: m("stream_ns_per_page_running"),
    stream_ns_per_zero_page_running: m("stream_ns_per_zero_page_running"),
    // Into memory populated ahead (host-populated.ts): what a destination with --prealloc streams at.
    stream_ns_per_page_populated: m("stream_ns_per_page_populated"),
    stream_ns_per_zero_page_populated: m("stream_ns_per_zero_page_populated"),
    stream_ns_per_page_running_populated: m("stream_ns_per_page_running_populated"),
    stream_ns_per_zero_page_running_populated: m("stream_ns_per_zero_page_running_populated"),
    engine_ns_per_page: m("engine_ns_per_page"),
    guest_share_streaming: Math.min(1, Math.max(1e-3, m("guest_share_streaming"))),
    urgent_extra_us: m("urgent_extra_us"),
    fault_wake_us: m("fault_wake_us"),
    // cpuOnly: the shipped profile's (undefined there: per page only, as before the keys existed).
    stream_ns_per_run: m("stream_ns_per_run"),
    stream_ns_per_zero_run: m("stream_ns_per_zero_run"),
    stream_ns_per_run_running: m("stream_ns_per_run_running"),
    stream_ns_per_zero_run_running: m("stream_ns_per_zero_run_running"),
    // Not measured: the real agent's bulk slice (messages a turn, dest-session.ts) × the engine's default batch.
    loop_turn_pages: BULK_SLICE * framePages(),
  };
  return { profile, spread, host };
}
