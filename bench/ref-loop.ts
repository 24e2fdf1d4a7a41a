/** A fixed amount of typed-array work: ms per call is this process's speed right now (about 70 ms on a quiet core of the development machine). */
export function referenceLoopMs(): number {
  const a = new Uint32Array(1 << 20);
  const t0 = process.hrtime.bigint();
  let x = 1;
  for (let i = 0; i < 50_000_000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    a[x & 0xfffff] += 1;
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
