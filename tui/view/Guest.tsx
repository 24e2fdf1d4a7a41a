import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { fmtDuration, fmtNumber, fmtPercent, resample, sparkline } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";
import { barCells } from "./width.js";

/**
 * Guest speed over the run (share of its unmigrated speed over the last
 * 200 ms), work lost so far (the report's guest.work_lost_vcpu_s and
 * guest.utilization), throttle (outside pre-copy, which shows its own) and downtime.
 */
export function Guest({ snapshot: s, progress, width }: { snapshot: Snapshot; progress: readonly { t: number; v: number }[]; width: number }) {
  const series = progress.length > 0 ? progress : [{ t: s.elapsedMs, v: s.guestProgress }];
  const spark = barCells(width, 40);
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Label>guest</Label>
        <Text color={COLOR.current}>{sparkline(resample(series, spark), { max: 1 }).padEnd(spark)}</Text>
        <Text bold> {fmtPercent(s.guestProgress).padStart(6)}</Text>
        <Text color={COLOR.label}> speed (200 ms)</Text>
      </Text>
      {s.guestSoFar !== undefined && (
        <Text wrap="truncate">
          <Label>lost</Label>
          <Text bold>{fmtNumber(s.guestSoFar.workLostVcpuS)} vCPU-s</Text>
          <Text color={COLOR.label}> · </Text>
          <Text bold>{fmtPercent(s.guestSoFar.utilization)}</Text>
          <Text color={COLOR.label}> of unmigrated work so far</Text>
        </Text>
      )}
      {s.throttle > 0 && !(s.phase === "precopy" && s.precopy) && (
        <Text>
          <Label>throttle</Label>
          <Text color={COLOR.warn}>{fmtPercent(s.throttle, 0)}</Text>
          <Text color={COLOR.label}> (auto-converge)</Text>
        </Text>
      )}
      {s.downtimeMs !== null && (
        <Text>
          <Label>downtime</Label>
          <Text bold>{fmtDuration(s.downtimeMs)}</Text>
        </Text>
      )}
    </Box>
  );
}
