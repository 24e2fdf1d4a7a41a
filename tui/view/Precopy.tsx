import { Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { fmtBytes, fmtCount, fmtDuration, fmtRate } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";

/**
 * The figures that decide whether pre-copy converges (what QEMU's
 * `info migrate` shows): the round, the pages it still has to send, how fast
 * the guest dirties pages against how fast the link drains them, and the
 * downtime the last dirty set would cost against the limit.
 */
export function Precopy({ snapshot: s }: { snapshot: Snapshot }) {
  const p = s.precopy;
  if (!p) return null;
  const rate = (x: number | null) => (x === null ? "–" : fmtRate(x));
  const expected = p.expectedDowntimeMs;
  // Against what the switch waits for (the limit less its margin), not the limit itself.
  const fits = expected !== null && p.downtimeTargetMs !== null ? expected <= p.downtimeTargetMs : null;
  return (
    <>
      <Text wrap="truncate">
        <Label>round</Label>
        <Text bold>{`r${s.round}`.padEnd(5)}</Text>
        <Text color={COLOR.label}>remaining </Text>
        <Text bold>{fmtCount(p.remainingPages)}</Text>
        <Text color={COLOR.label}> pages ({fmtBytes(p.remainingBytes)})</Text>
      </Text>
      <Text wrap="truncate">
        <Label>dirty</Label>
        <Text bold>{rate(p.dirtyRateBytesPerSec)}</Text>
        <Text color={COLOR.label}> vs bandwidth </Text>
        <Text bold>{rate(p.bandwidthBytesPerSec)}</Text>
        {s.throttle > 0 && <Text color={COLOR.warn}>{`  throttle ${Math.round(s.throttle * 100)}%`}</Text>}
      </Text>
      <Text wrap="truncate">
        <Label>expect</Label>
        <Text bold color={fits === null ? undefined : fits ? COLOR.done : COLOR.warn}>
          {expected === null ? "–" : fmtDuration(expected)}
        </Text>
        <Text color={COLOR.label}> downtime · limit </Text>
        {p.downtimeLimitMs === null ? "–" : fmtDuration(p.downtimeLimitMs)}
        {p.downtimeTargetMs !== null && p.downtimeTargetMs !== p.downtimeLimitMs && <Text color={COLOR.label}>{` (switch at ≤ ${fmtDuration(p.downtimeTargetMs)})`}</Text>}
        {fits !== null && <Text color={COLOR.label}>{fits ? "  (fits)" : "  (too long yet)"}</Text>}
      </Text>
    </>
  );
}
