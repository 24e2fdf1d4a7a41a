/**
 * The first bytes of every connection from a source (after TLS, when on):
 * which channel it is, which session and link epoch it belongs to, and — on
 * the first bulk connection — the session info the destination builds its
 * guest from.
 *
 * Preamble (little-endian, 32 bytes, then `infoLength` bytes of UTF-8 JSON):
 *
 *   0  u32 magic 0x43535050 ("PPSC")   4  u16 preamble version   6  u8 channel (0 urgent, 1 bulk, 2 the fault lane)
 *   7  u8 stream (0; a bulk connection's index, issue 9)   8  16 bytes session id   24  u32 epoch   28  u32 infoLength
 *
 * Bulk connection 0 carries every bulk frame in the engine's order; in
 * post-copy, once the destination confirmed the switchover, the source may
 * open bulk connections 1 … MAX_BULK_CONNECTIONS-1 of the same epoch and
 * spread pages frames over all of them (docs/real.md "Several connections").
 * The fault lane (issue 9, docs/real.md "The fault lane") is a connection of
 * its own, owned by native threads at both ends: page requests one way, their
 * replies the other; its frames are urgent ones, so it reads as channel
 * "urgent" with `lane` set.
 */
import { ProtocolError } from "../engine/codec.js";
import type { Channel } from "../engine/messages.js";

export const PREAMBLE_MAGIC = 0x43535050;
export const PREAMBLE_VERSION = 1;
export const PREAMBLE_BYTES = 32;
export const MAX_INFO_BYTES = 1 << 20;
export const CHANNELS: readonly Channel[] = ["urgent", "bulk"];
/** Bulk connections per epoch, at most (the stream index is below it). */
export const MAX_BULK_CONNECTIONS = 8;

export interface Preamble {
  channel: Channel;
  /** 32 hex digits. */
  session: string;
  epoch: number;
  /** Which bulk connection of the epoch (0: the ordered one); 0 for urgent. Absent: 0. */
  stream?: number;
  /** JSON (SessionInfo) on the first bulk connection; "" otherwise. */
  info: string;
  /** The fault lane (channel "urgent", stream 0). */
  lane?: boolean;
}

/** The channel byte of the fault lane. */
const LANE_BYTE = 2;

export function encodePreamble(p: Preamble): Buffer {
  const info = Buffer.from(p.info, "utf8");
  const b = Buffer.alloc(PREAMBLE_BYTES + info.length);
  b.writeUInt32LE(PREAMBLE_MAGIC, 0);
  b.writeUInt16LE(PREAMBLE_VERSION, 4);
  b.writeUInt8(p.lane === true ? LANE_BYTE : CHANNELS.indexOf(p.channel), 6);
  b.writeUInt8(p.stream ?? 0, 7);
  Buffer.from(p.session, "hex").copy(b, 8, 0, 16);
  b.writeUInt32LE(p.epoch >>> 0, 24);
  b.writeUInt32LE(info.length, 28);
  info.copy(b, PREAMBLE_BYTES);
  return b;
}

/**
 * Parses a preamble from the first bytes of a connection. Returns null while
 * incomplete; throws ProtocolError on anything that is not a ppsim preamble.
 */
export function parsePreamble(buf: Buffer): { preamble: Preamble; rest: Buffer } | null {
  if (buf.length >= 4 && buf.readUInt32LE(0) !== PREAMBLE_MAGIC) {
    throw new ProtocolError(`bad preamble magic 0x${buf.readUInt32LE(0).toString(16)}: not a ppsim source`);
  }
  if (buf.length < PREAMBLE_BYTES) return null;
  const version = buf.readUInt16LE(4);
  if (version !== PREAMBLE_VERSION) {
    throw new ProtocolError(`the source's transport preamble is version ${version}; this destination speaks ${PREAMBLE_VERSION}`);
  }
  const lane = buf.readUInt8(6) === LANE_BYTE;
  const channel = lane ? "urgent" : CHANNELS[buf.readUInt8(6)];
  if (channel === undefined) throw new ProtocolError(`preamble names unknown channel ${buf.readUInt8(6)}`);
  const stream = buf.readUInt8(7);
  if (lane && stream !== 0) throw new ProtocolError(`preamble names fault lane stream ${stream}, there is only 0`);
  if (channel === "urgent" && stream !== 0) throw new ProtocolError(`preamble names urgent stream ${stream}, there is only 0`);
  if (stream >= MAX_BULK_CONNECTIONS) throw new ProtocolError(`preamble names bulk connection ${stream}, at most ${MAX_BULK_CONNECTIONS} are allowed`);
  const infoLength = buf.readUInt32LE(28);
  if (infoLength > MAX_INFO_BYTES) throw new ProtocolError(`preamble info of ${infoLength} bytes exceeds ${MAX_INFO_BYTES}`);
  if (buf.length < PREAMBLE_BYTES + infoLength) return null;
  const preamble: Preamble = {
    channel,
    session: buf.subarray(8, 24).toString("hex"),
    epoch: buf.readUInt32LE(24),
    stream,
    info: decodeInfo(buf.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + infoLength)),
  };
  if (lane) preamble.lane = true;
  return { preamble, rest: buf.subarray(PREAMBLE_BYTES + infoLength) };
}


function decodeInfo(b: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b);
  } catch {
    throw new ProtocolError("preamble info is not valid UTF-8");
  }
}

/** Bytes the whole preamble takes, once its fixed part is there (0 before). */
export function preambleLength(buf: Buffer): number {
  if (buf.length < PREAMBLE_BYTES) return 0;
  return PREAMBLE_BYTES + Math.min(buf.readUInt32LE(28), MAX_INFO_BYTES + 1);
}
