/**
 * The line-based config the native guest (ppsim-guest) reads: `key value`
 * lines, then one `phase k=v ...` line per phase with every key present, so
 * that the C++ side needs no defaults of its own.
 */
import { MAX_PAYLOAD_BYTES } from "../engine/codec.js";
import { batchPagesFor, DEFAULT_OPTIONS } from "../engine/options.js";
import { compilePhases } from "./generator.js";
import type { ReplayProgram } from "./trace-replay.js";
import type { Workload, WorkloadPhase } from "./types.js";

/** Frames [from, to) as the guest reads a list: the first absolute, then differences (the list is ascending). */
function deltas(frames: Uint32Array, from: number, to: number): string {
  let out = "";
  let prev = 0;
  for (let i = from; i < to; i++) {
    out += ` ${frames[i] - prev}`;
    prev = frames[i];
  }
  return out;
}

/** `trace windows=N accesses=A`, then per window `tw WINDOW_NS N_CODE N_READ N_WRITE` and the three lists. */
function traceBlock(p: ReplayProgram): string[] {
  const lines = [`trace windows=${p.windows} accesses=${p.accesses}`];
  for (let r = 0; r < p.windows; r++) {
    const a = p.start[r];
    const rf = a + p.readFrom[r];
    const wf = a + p.writeFrom[r];
    const b = p.start[r + 1];
    lines.push(`tw ${p.windowNs[r]} ${rf - a} ${wf - rf} ${b - wf}${deltas(p.frames, a, rf)}${deltas(p.frames, rf, wf)}${deltas(p.frames, wf, b)}`);
  }
  return lines;
}

export function toGuestConfig(w: Workload, seed: number): string {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  if (w.hugePages?.policy === "split") {
    throw new Error(`workload "${w.name}": the real back end moves huge pages whole (hugetlbfs); the split policy is the simulator's only (docs/huge-pages.md)`);
  }
  if (w.hugePages !== undefined && w.hugePages.size * batchPagesFor(DEFAULT_OPTIONS, w.hugePages.size) > MAX_PAYLOAD_BYTES) {
    throw new Error(
      `workload "${w.name}": huge pages of ${w.hugePages.size} bytes do not fit the real back end's pages messages (${batchPagesFor(DEFAULT_OPTIONS, w.hugePages.size)} pages within the protocol's ${MAX_PAYLOAD_BYTES / 2 ** 20} MiB frame bound); the simulator takes them`,
    );
  }
  const lines = [
    `mem_bytes ${w.memBytes}`,
    `page_size ${w.pageSize}`,
    `vcpus ${w.vcpus}`,
    `seed ${seed}`,
    `zero_share ${w.zeroShare}`,
  ];
  // Guest RAM on hugetlbfs; only then the line, so that other configs read as before.
  if (w.hugePages !== undefined) lines.push(`huge_page_size ${w.hugePages.size}`);
  // Tasks per vCPU: `tasks T ASYNC SLICE`, then the extra tasks' phases tagged task=K after task 0's (switch_us is the simulator's: the real switch costs what it costs).
  if (w.tasks !== undefined) lines.push(`tasks ${1 + w.tasks.extra.length} ${w.tasks.asyncFaults ? 1 : 0} ${w.tasks.sliceSteps}`);
  // Trace phases: their programs first (numbered in order), then a `tphase` line in the phase's place.
  const compiled = compilePhases(w);
  for (const c of compiled) for (const p of c.trace?.programs ?? []) lines.push(...traceBlock(p));
  let program = 0;
  for (const [i, ph] of w.phases.entries()) {
    const t = compiled[i].trace;
    if (t !== null) {
      const ids = t.programs.map(() => program++);
      lines.push(`tphase traces=${ids.join(",")} copies=${t.copies} base=${t.base} slot=${t.slot} loop=${t.loop ? 1 : 0}`);
      continue;
    }
    lines.push(phaseLine(ph));
  }
  for (const [k, t] of (w.tasks?.extra ?? []).entries()) for (const ph of t.phases) lines.push(`${phaseLine(ph)} task=${k + 1}`);
  return lines.join("\n") + "\n";
}

function phaseLine(ph: WorkloadPhase): string {
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
  return `phase ${fields.map(([k, v]) => `${k}=${v}`).join(" ")}`;
}
