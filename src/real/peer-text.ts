/**
 * Text that came from a peer, made safe to print: a workload name, an error
 * reason or an address reaches logs and terminals only through here, so that
 * a peer cannot forge log lines (newlines), drive the terminal (escape
 * sequences) or reorder what is shown (bidi overrides).
 */
import type { Socket } from "node:net";

/** Longest piece of peer text shown; the rest is cut with a note. */
const MAX_SHOWN = 500;

/**
 * Control characters (C0, DEL, C1), line and paragraph separators and the
 * bidi controls become visible escapes (\x1b, \u202e); the result is cut to
 * `max` characters.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's job
export const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

export function sanitize(text: string, max = MAX_SHOWN): string {
  const safe = text.replace(UNSAFE_CHARS, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
  return safe.length <= max ? safe : `${safe.slice(0, max)}… (${safe.length - max} more characters)`;
}

export function peerName(s: Socket): string {
  const a = s.remoteAddress ?? "?";
  return `${a.includes(":") ? `[${a}]` : a}:${s.remotePort ?? "?"}`;
}
