/** CLOCK_MONOTONIC µs: process.hrtime's clock, and the native fault reader's (fault-trace.ts). */
export function monoUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}
