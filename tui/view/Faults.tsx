import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { fmtCount, fmtUs, sparkline } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";

/** The non-empty span of a log2 histogram: [first, last] bucket indexes, or null. */
export function histogramSpan(h: readonly number[]): [number, number] | null {
  const first = h.findIndex((n) => n > 0);
  if (first < 0) return null;
  let last = h.length - 1;
  while (h[last] === 0) last--;
  return [first, last];
}

/** Demand faults: count, rate, live latency percentiles, and a log2(µs) histogram. */
export function Faults({ snapshot: s, faultsPerSec }: { snapshot: Snapshot; faultsPerSec: number | undefined }) {
  const p = s.faultLatencyUs;
  const span = histogramSpan(s.faultHistogram);
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Label>faults</Label>
        <Text bold>{fmtCount(s.demandFaults)}</Text>
        <Text color={COLOR.label}> total  </Text>
        {faultsPerSec === undefined ? "–" : faultsPerSec.toFixed(1)}/s
        {p && (
          <Text>
            <Text color={COLOR.label}>  p50 </Text>
            {fmtUs(p.p50)}
            <Text color={COLOR.label}>  p99 </Text>
            {fmtUs(p.p99)}
            <Text color={COLOR.label}>  max </Text>
            <Text bold>{fmtUs(p.max)}</Text>
          </Text>
        )}
      </Text>
      {span && (
        <Text wrap="truncate">
          <Label>latency</Label>
          <Text color={COLOR.demand}>{sparkline(s.faultHistogram.slice(span[0], span[1] + 1), { blankZero: true })}</Text>
          <Text color={COLOR.label}>
            {"  "}
            {fmtUs(2 ** span[0])} … {fmtUs(2 ** (span[1] + 1))} (log2 buckets)
          </Text>
        </Text>
      )}
    </Box>
  );
}
