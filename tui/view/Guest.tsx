import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { fmtDuration, fmtPercent, resample, sparkline } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";
import { barCells } from "./width.js";

/**
 * Guest progress over the run (share of its unmigrated rate, over the recent
 * past: the report's guest_progress is the average over the whole migration),
 * throttle (outside pre-copy, which shows its own) and downtime.
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
        <Text color={COLOR.label}> of unmigrated rate now</Text>
      </Text>
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
