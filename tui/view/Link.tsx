import { Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import type { Rates } from "../history.js";
import { fmtBytes, fmtRate } from "../format.js";
import { Label } from "./Label.js";
import { COLOR } from "./theme.js";

/** Throughput per channel (per second of the driver's clock) and bytes sent so far. */
export function Link({ snapshot: s, rates }: { snapshot: Snapshot; rates: Rates | null }) {
  const rate = (x: number | undefined) => (x === undefined ? "–" : fmtRate(x));
  return (
    <Text wrap="truncate">
      <Label>link</Label>
      <Text color={COLOR.label}>urgent </Text>
      <Text bold>{rate(rates?.urgent).padEnd(12)}</Text>
      <Text color={COLOR.label}> bulk </Text>
      <Text bold>{rate(rates?.bulk).padEnd(12)}</Text>
      <Text color={COLOR.label}> sent </Text>
      {fmtBytes(s.channelBytes.urgent + s.channelBytes.bulk)}
    </Text>
  );
}
