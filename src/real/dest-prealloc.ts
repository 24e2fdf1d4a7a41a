/**
 * Guest memory populated before a migration asks for it (`--prealloc SIZE`).
 *
 * Every page the destination installs with data is a first write to memory
 * the kernel allocates then; where the host hands free memory back to its
 * own host (virtio_balloon free page reporting, this development VM) that
 * first write costs 1.5–8 µs a page, inside the migration's window
 * (docs/design.md, "Fresh memory is a cost of its own"). A destination that
 * expects a guest of a known size pays it ahead: a memfd of that size with
 * every page allocated and zeroed through a mapping of it in this process
 * (Mapping.populateAsync), handed to the guest it spawns for the next
 * migration of exactly that size. The mapping stays: the receivers store each
 * page's bytes through it (no system call, no inode lock; filling its page
 * tables costs ~60 ms a GiB here, also paid ahead), and UFFDIO_CONTINUE maps
 * the page into the guest (install mode "continue", populated: a zero page is
 * mapped as it is, never written). The guest's touch of a page not here yet is
 * a MINOR fault, a demand fault like any other.
 *
 * One memfd ready at a time: the session that takes it owns it (its guest
 * holds it), and the pool populates the next one once a session ended — not
 * during the one that took it, where it would take CPU and memory from that
 * migration (other sessions may run then: a listener serves several).
 * QEMU's -mem-prealloc populates a destination too, but its post-copy needs
 * missing faults and so cannot use it; here post-copy runs over it.
 */
import { closeFd, constants, mapShared, memfdCreate, type Mapping } from "./native.js";

export interface PreallocFill {
  /** Wall time of the populate, ms. */
  ms: number;
  bytes: number;
}

/** A populated memfd and its mapping (every page mapped), now the taker's. */
export interface Populated {
  fd: number;
  alias: Mapping;
}

export class PreallocPool {
  private ready_: Populated | null = null;
  private filling: Promise<void> | null = null;
  private closed = false;
  /** Each populate's cost, in order (reports, benchmarks). */
  readonly fills: PreallocFill[] = [];

  private constructor(
    /** The size of guest this pool serves, bytes (a multiple of the host page). */
    readonly bytes: number,
    private readonly log: (line: string) => void,
  ) {}

  /** A pool with its first memfd populated (resolves once it is). */
  static async create(bytes: number, log: (line: string) => void = () => undefined): Promise<PreallocPool> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`prealloc size must be a positive number of bytes, got ${bytes}`);
    if (bytes % constants().PAGE_SIZE !== 0) throw new RangeError(`prealloc size must be a multiple of the page size (${constants().PAGE_SIZE}), got ${bytes}`);
    const p = new PreallocPool(bytes, log);
    await p.refill();
    return p;
  }

  /** Whether a populated memfd waits for a guest. */
  get ready(): boolean {
    return this.ready_ !== null;
  }

  /** Whether the pool holds memory of its own (ready, or being populated). */
  get holding(): boolean {
    return this.ready_ !== null || this.filling !== null;
  }

  /**
   * The populated memfd for a guest of `bytes` and its mapping, now the caller's to close and
   * unmap; null when none is ready or the guest is of another size (it then gets fresh memory, as
   * without a pool).
   */
  take(bytes: number): Populated | null {
    if (this.ready_ === null || bytes !== this.bytes) return null;
    const p = this.ready_;
    this.ready_ = null;
    return p;
  }

  /** Populates the next memfd unless one is ready or on its way; resolves when it is there. */
  refill(): Promise<void> {
    if (this.closed || this.ready_ !== null) return Promise.resolve();
    this.filling ??= this.fill().finally(() => (this.filling = null));
    return this.filling;
  }

  private async fill(): Promise<void> {
    const fd = memfdCreate("ppsim-prealloc", this.bytes);
    const t0 = performance.now();
    let alias: Mapping | null = null;
    try {
      alias = mapShared(fd, this.bytes);
      await alias.populateAsync();
    } catch (e) {
      alias?.unmap();
      closeFd(fd);
      throw e;
    }
    const ms = performance.now() - t0;
    this.fills.push({ ms, bytes: this.bytes });
    if (this.closed) {
      alias.unmap();
      return closeFd(fd);
    }
    this.ready_ = { fd, alias };
    this.log(`guest memory populated ahead: ${this.bytes / 2 ** 20} MiB in ${ms.toFixed(0)} ms (${((ms * 1e6) / (this.bytes / 4096)).toFixed(0)} ns per 4 KiB page)`);
  }

  /** Frees the memfd that waits (a session's own is its guest's). */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => undefined);
    if (this.ready_ !== null) {
      this.ready_.alias.unmap();
      closeFd(this.ready_.fd);
    }
    this.ready_ = null;
  }
}
