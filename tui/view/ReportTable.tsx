import { Box, Text } from "ink";
import type { Report } from "../../src/engine/report.js";
import { reportRows, type Row } from "../report-rows.js";
import { COLOR, WIDTH } from "./theme.js";

const KEY = 19;
const CELL = WIDTH / 2;
const GAP = 2;

/** Lay rows out two per line; a value too long for half a line gets a whole line, after. */
export function layoutRows(rows: readonly Row[]): Row[][] {
  const fits = ([, v]: Row) => KEY + v.length + GAP <= CELL;
  const short = rows.filter(fits);
  const long = rows.filter((r) => !fits(r));
  const half = Math.ceil(short.length / 2);
  const lines: Row[][] = [];
  for (let i = 0; i < half; i++) lines.push(i + half < short.length ? [short[i], short[i + half]] : [short[i]]);
  for (const r of long) lines.push([r]);
  return lines;
}

function Cell({ row: [k, v], last }: { row: Row; last: boolean }) {
  return (
    <Text>
      <Text color={COLOR.label}>{k.padEnd(KEY)}</Text>
      {last ? v : v.padEnd(CELL - KEY)}
    </Text>
  );
}

/** The final report: a compact table of its keys. */
export function ReportTable({ report }: { report: Report }) {
  const color = report.outcome === "completed" ? COLOR.done : COLOR.bad;
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text bold color={color}>
        report: {report.outcome}
      </Text>
      {layoutRows(reportRows(report)).map((line, i) => (
        <Text key={i}>
          {line.map((row, j) => (
            <Cell key={row[0]} row={row} last={j === line.length - 1} />
          ))}
        </Text>
      ))}
    </Box>
  );
}
