/**
 * Finds and loads the native addon once (native.ts and its siblings each
 * type the part of it they use).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A 64-bit argument: the addon takes numbers or bigints. */
export type U64 = number | bigint;

/** The folder holding binding.gyp, found upward from this file (works from src/ and dist/src/). */
export function nativeDir(): string {
  const fromEnv = process.env.PPSIM_NATIVE_DIR;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "native");
    if (existsSync(join(candidate, "binding.gyp"))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error("ppsim: cannot find the native/ folder (binding.gyp) above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Path of the guest executable built next to the addon. */
export function guestExecutablePath(): string {
  const p = join(nativeDir(), "build", "Release", "ppsim-guest");
  if (!existsSync(p)) throw new Error(`ppsim: the guest executable ${p} is not built; run npm run build:native`);
  return p;
}

let cached: unknown;

/** The addon's exports, typed by the caller as the part it uses (native/src/*.cc). */
export function loadAddon<T>(): T {
  if (cached !== undefined) return cached as T;
  const path = join(nativeDir(), "build", "Release", "ppsim_native.node");
  if (!existsSync(path)) throw new Error(`ppsim: the native addon ${path} is not built; run npm run build:native`);
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as unknown;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`ppsim: loading the native addon ${path} failed (${msg}); run npm run build:native`);
  }
  return cached as T;
}
