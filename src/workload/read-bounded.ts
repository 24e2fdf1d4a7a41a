/**
 * Reading a file named on the command line without trusting it: it must be a
 * regular file (a FIFO would block for ever, a device like /dev/zero would be
 * read until memory runs out) and no bigger than its kind of file needs.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

export class LocalFileError extends Error {
  override name = "LocalFileError";
  readonly userFacing = true;
}

/** Reads a whole regular file of at most maxBytes; throws a LocalFileError naming the path and the problem. */
export function readBoundedFile(path: string, maxBytes: number, what: string): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new LocalFileError(`${path}: cannot read the ${what}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isFIFO() ? "a FIFO" : st.isCharacterDevice() ? "a character device" : st.isBlockDevice() ? "a block device" : st.isDirectory() ? "a directory" : st.isSocket() ? "a socket" : "not a regular file";
      throw new LocalFileError(`${path}: the ${what} must be a regular file, this is ${kind}`);
    }
    if (st.size > maxBytes) throw new LocalFileError(`${path}: the ${what} is ${st.size} bytes; at most ${maxBytes} are accepted`);
    // Read one byte past the limit: a file that grows while we read is refused too.
    const buf = Buffer.allocUnsafe(Math.min(maxBytes, st.size) + 1);
    let n = 0;
    for (;;) {
      const k = readSync(fd, buf, n, buf.length - n, null);
      if (k === 0) break;
      n += k;
      if (n === buf.length) {
        if (n > maxBytes) throw new LocalFileError(`${path}: the ${what} grew past ${maxBytes} bytes while being read`);
        // It grew, but is still within the limit: not worth supporting, say so.
        throw new LocalFileError(`${path}: the ${what} changed while being read`);
      }
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
