/**
 * `ppsim calibrate`'s per-page figures of each end's JS path, in runs of RUN
 * consecutive pages: the source's read, zero check and framing; the
 * destination's decode and install — into fresh memory with UFFDIO_COPY /
 * ZEROPAGE, and into memory populated ahead with stores and UFFDIO_CONTINUE.
 */
import { encodeMessage } from "../engine/codec.js";
import { FrameDecoder } from "../engine/frame-decoder.js";
import type { Message } from "../engine/messages.js";
import { closeFd, constants, mapShared, memfdCreate, pread, punchHole, pwrite, uffdApi, uffdContinue, uffdCopy, uffdCreate, uffdRegister, uffdZeropage } from "./native.js";

/** Pages per run (a frame of this many consecutive pages). */
export const RUN = 16;

function timeNs(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t);
}

/** Source side: ns per page to read a run, check it for zeros and frame it. */
export function sendPerPage(pages: number, zero: boolean): number {
  const PS = constants().PAGE_SIZE;
  const fd = memfdCreate("ppsim-calibrate-send", pages * PS);
  try {
    if (!zero) for (let p = 0; p < pages; p += RUN) pwrite(fd, p * PS, Buffer.alloc(RUN * PS, p % 251 | 1));
    const zeros = Buffer.alloc(PS);
    return (
      timeNs(() => {
        for (let p = 0; p < pages; p += RUN) {
          const chunk = pread(fd, p * PS, RUN * PS);
          const numbers = new Uint32Array(RUN);
          const data: (Uint8Array | null)[] = [];
          for (let i = 0; i < RUN; i++) {
            const bytes = chunk.subarray(i * PS, (i + 1) * PS);
            numbers[i] = p + i;
            data.push(bytes.equals(zeros) ? null : bytes);
          }
          encodeMessage({ type: "pages", pages: numbers, data }, PS);
        }
      }) / pages
    );
  } finally {
    closeFd(fd);
  }
}

/**
 * installPerPage's shape into memory populated ahead (dest-prealloc.ts): the memfd populated and
 * mapped before the clock starts; each run's bytes stored through that mapping and the run mapped
 * into the registered view with one UFFDIO_CONTINUE (a zero run: the CONTINUE alone). The stores
 * are Mapping.write's plain copy, as installPerPage's JS path copies too; the receivers' streaming
 * stores are in the stream figures (calibrate-bulk.ts `populated`).
 */
export async function installPerPagePopulated(pages: number, zero: boolean): Promise<number> {
  const C = constants();
  const PS = C.PAGE_SIZE;
  const fd = memfdCreate("ppsim-calibrate-install-populated", pages * PS);
  const map = mapShared(fd, pages * PS);
  const alias = mapShared(fd, pages * PS);
  const uffd = uffdCreate();
  try {
    await alias.populateAsync();
    uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM | C.UFFD_FEATURE_MINOR_SHMEM);
    uffdRegister(uffd, map.address, pages * PS, C.UFFDIO_REGISTER_MODE_MISSING | C.UFFDIO_REGISTER_MODE_MINOR);
    return timeInstalls(pages, zero, (first, msg) => {
      if (!zero) for (let i = 0; i < msg.pages.length; i++) alias.write((first + i) * PS, msg.data[i] as Uint8Array);
      uffdContinue(uffd, map.address + BigInt(first * PS), msg.pages.length * PS);
    });
  } finally {
    map.unmap();
    alias.unmap();
    closeFd(uffd);
    closeFd(fd);
  }
}

/** ns per page of decoding `pages` pages in frames of RUN consecutive pages (data, or every one zero) and handing each to `install`. */
function timeInstalls(pages: number, zero: boolean, install: (first: number, msg: Extract<Message<Uint8Array>, { type: "pages" }>) => void): number {
  const frames = installFrames(pages, zero);
  const decoder = new FrameDecoder(constants().PAGE_SIZE, pages);
  return (
    timeNs(() => {
      for (const f of frames) for (const msg of decoder.push(f)) if (msg.type === "pages") install(msg.pages[0], msg);
    }) / pages
  );
}

/** `pages` pages in frames of RUN consecutive pages, each with data (or every one zero). */
function installFrames(pages: number, zero: boolean): Uint8Array[] {
  const PS = constants().PAGE_SIZE;
  const frames: Uint8Array[] = [];
  for (let p = 0; p < pages; p += RUN) {
    const numbers = new Uint32Array(RUN);
    const data: (Uint8Array | null)[] = [];
    for (let i = 0; i < RUN; i++) {
      numbers[i] = p + i;
      data.push(zero ? null : Buffer.alloc(PS, (p + i) % 251 | 1));
    }
    frames.push(encodeMessage({ type: "pages", pages: numbers, data }, PS));
  }
  return frames;
}

/** Destination side: ns per page to decode a run's frame and install it into a registered mapping. */
export function installPerPage(pages: number, zero: boolean): number {
  const C = constants();
  const PS = C.PAGE_SIZE;
  const fd = memfdCreate("ppsim-calibrate-install", pages * PS);
  const map = mapShared(fd, pages * PS);
  const uffd = uffdCreate();
  try {
    uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM);
    uffdRegister(uffd, map.address, pages * PS, C.UFFDIO_REGISTER_MODE_MISSING);
    return timeInstalls(pages, zero, (first, msg) => {
      const at = map.address + BigInt(first * PS);
      if (zero) uffdZeropage(uffd, at, msg.pages.length * PS);
      else uffdCopy(uffd, at, Buffer.concat(msg.data as Uint8Array[]));
    });
  } finally {
    map.unmap();
    closeFd(uffd);
    punchHole(fd, 0, pages * PS);
    closeFd(fd);
  }
}
