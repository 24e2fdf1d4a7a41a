import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import { barWidths, fmtCount, fmtPercent } from "../format.js";
import { Label } from "./Label.js";
import { COLOR, GLYPH } from "./theme.js";
import { barCells } from "./width.js";

type Kind = "precopy" | "dirty" | "background" | "demand";
const NAMES: Record<Kind, string> = { precopy: "pre-copy", dirty: "dirty", background: "background", demand: "demand" };

/**
 * Pages at the destination by how they came, over pageCount, and a legend.
 * During pre-copy the pages dirtied since they were sent are stale copies:
 * they show as "dirty", so the bar tracks what is left to send, not only
 * what was sent once. A real run shows what the source sent ("sent") until
 * the destination reports.
 */
export function Presence({ snapshot: s, width }: { snapshot: Snapshot; width: number }) {
  const total = s.pageCount;
  const inPrecopy = s.phase === "precopy" && s.precopy;
  const dirty = inPrecopy ? Math.min(s.present.precopy, s.precopy?.remainingPages ?? 0) : 0;
  const counts: Record<Kind, number> = { precopy: s.present.precopy - dirty, dirty, background: s.present.background, demand: s.present.demand };
  // Only the kinds this phase can have: a legend that fits one line.
  const shown: Kind[] = inPrecopy ? ["precopy", "dirty"] : s.mode === "precopy" ? ["precopy"] : ["precopy", "background", "demand"];
  const values = shown.map((k) => counts[k]);
  const present = s.present.precopy + s.present.background + s.present.demand;
  const bar = barCells(width, 33);
  const widths = barWidths(values, total, bar);
  const missing = bar - widths.reduce((a, b) => a + b, 0);
  const share = (n: number) => (total > 0 ? n / total : 0);
  const label = s.presentFrom === "source" ? "sent" : "present";
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Label>{label}</Label>
        {shown.map((k, i) => (
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
      <Text wrap="truncate">
        <Label>{""}</Label>
        {shown.map((k, i) => (
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
