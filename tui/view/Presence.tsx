import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { barWidths, fmtCount, fmtPercent } from "../format.js";
import { Label } from "./Label.js";
import { COLOR, GLYPH } from "./theme.js";

const BAR = 40;
const KINDS = ["precopy", "background", "demand"] as const;
const NAMES = { precopy: "pre-copy", background: "background", demand: "demand" } as const;

/** Pages present at the destination, by how they came, over pageCount; and a legend. */
export function Presence({ snapshot: s }: { snapshot: Snapshot }) {
  const total = s.pageCount;
  const values = KINDS.map((k) => s.present[k]);
  const present = values.reduce((a, b) => a + b, 0);
  const widths = barWidths(values, total, BAR);
  const missing = BAR - widths.reduce((a, b) => a + b, 0);
  const share = (n: number) => (total > 0 ? n / total : 0);
  return (
    <Box flexDirection="column">
      <Text>
        <Label>present</Label>
        {KINDS.map((k, i) => (
          <Text key={k} color={COLOR[k]}>
            {GLYPH[k].repeat(widths[i])}
          </Text>
        ))}
        <Text color={COLOR.missing}>{GLYPH.missing.repeat(missing)}</Text>
        <Text bold> {fmtPercent(share(present)).padStart(6)}</Text>
        <Text color={COLOR.label}>
          {" "}
          {fmtCount(present)}/{fmtCount(total)}
        </Text>
      </Text>
      <Text>
        <Label>{""}</Label>
        {KINDS.map((k, i) => (
          <Text key={k}>
            <Text color={COLOR[k]}>{GLYPH[k]}</Text> {NAMES[k]} {fmtPercent(share(values[i]))}
            {"  "}
          </Text>
        ))}
        <Text color={COLOR.missing}>{GLYPH.missing}</Text> missing
      </Text>
    </Box>
  );
}
