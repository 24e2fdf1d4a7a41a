import { Box, Text } from "ink";
import type { Report } from "../../src/engine/report.js";
import { reportRows, type Row } from "../report-rows.js";
import { COLOR } from "./theme.js";

const GAP = 2;
/** A label longer than this is cut (with "…") rather than widen the column. */
const MAX_KEY = 20;

/** The label column: the longest label plus a space, so a key never runs into its value. */
export function keyWidth(rows: readonly Row[]): number {
  return Math.min(MAX_KEY, Math.max(...rows.map(([k]) => k.length))) + 1;
}

/**
 * Lay rows out two per line when the frame is wide enough; a value too long
 * for half a line gets a whole line, after.
 */
export function layoutRows(rows: readonly Row[], width = 80, key = keyWidth(rows)): Row[][] {
  const cell = Math.floor(width / 2);
  const twoColumns = cell - key >= 14;
  const fits = ([, v]: Row) => twoColumns && key + v.length + GAP <= cell;
  const short = rows.filter(fits);
  const long = rows.filter((r) => !fits(r));
  const half = Math.ceil(short.length / 2);
  const lines: Row[][] = [];
  for (let i = 0; i < half; i++) lines.push(i + half < short.length ? [short[i], short[i + half]] : [short[i]]);
  for (const r of long) lines.push([r]);
  return lines;
}

function label(k: string, key: number): string {
  return k.length >= key ? `${k.slice(0, key - 2)}… ` : k.padEnd(key);
}

function Cell({ row: [k, v], last, keyCells, cell }: { row: Row; last: boolean; keyCells: number; cell: number }) {
  return (
    <Text>
      <Text color={COLOR.label}>{label(k, keyCells)}</Text>
      {last ? v : v.padEnd(cell - keyCells)}
    </Text>
  );
}

/** The final report: a compact table of its keys. */
export function ReportTable({ report, width = 80 }: { report: Report; width?: number }) {
  const color = report.outcome === "completed" ? COLOR.done : COLOR.bad;
  const key = keyWidth(reportRows(report));
  const rows = reportRows(report, Math.min(60, width - key));
  const cell = Math.floor(width / 2);
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text bold color={color}>
        report: {report.outcome}
      </Text>
      {layoutRows(rows, width, key).map((line, i) => (
        <Text key={i} wrap="truncate">
          {line.map((row, j) => (
            <Cell key={row[0]} row={row} last={j === line.length - 1} keyCells={key} cell={cell} />
          ))}
        </Text>
      ))}
    </Box>
  );
}
