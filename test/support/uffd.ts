/** Why userfaultfd cannot be used here, or null when it can: the real back end's tests skip (and say why) only then. */
import { closeFd, constants, mapShared, memfdCreate, uffdApi, uffdCreate, uffdRegister, type Mapping } from "../../src/real/native.js";

export function userfaultfdUnavailable(): string | null {
  try {
    closeFd(uffdCreate());
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * A memfd of `bytes` mapped shared in this process and registered MISSING on a new uffd (shmem), as
 * the in-process tests stand in for a destination guest's memory; everything is closed by `cleanups`.
 */
export function missingMemory(cleanups: (() => void)[], name: string, bytes: number): { fd: number; map: Mapping; uffd: number } {
  const C = constants();
  const fd = memfdCreate(name, bytes);
  cleanups.push(() => closeFd(fd));
  const map = mapShared(fd, bytes);
  cleanups.push(() => map.unmap());
  const uffd = uffdCreate();
  cleanups.push(() => closeFd(uffd));
  uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM);
  uffdRegister(uffd, map.address, bytes, C.UFFDIO_REGISTER_MODE_MISSING);
  return { fd, map, uffd };
}
