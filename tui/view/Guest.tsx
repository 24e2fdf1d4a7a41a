import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { fmtDuration, fmtPercent, resample, sparkline } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";

const SPARK = 40;

/** Guest progress over the run (share of its unmigrated rate), throttle and downtime. */
export function Guest({ snapshot: s, progress }: { snapshot: Snapshot; progress: readonly { t: number; v: number }[] }) {
  const series = progress.length > 0 ? progress : [{ t: s.elapsedMs, v: s.guestProgress }];
  return (
    <Box flexDirection="column">
      <Text>
        <Label>guest</Label>
        <Text color={COLOR.current}>{sparkline(resample(series, SPARK), { max: 1 }).padEnd(SPARK)}</Text>
        <Text bold> {fmtPercent(s.guestProgress).padStart(6)}</Text>
        <Text color={COLOR.label}> of unmigrated rate</Text>
      </Text>
      {s.throttle > 0 && (
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
