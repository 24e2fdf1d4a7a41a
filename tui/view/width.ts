import { useStdout } from "ink";
import { WIDTH } from "./theme.js";

/** Narrowest frame the view lays out for; below it rows are cut, not wrapped. */
export const MIN_WIDTH = 50;

/** The frame's width: 80 columns, or the terminal's if narrower (so rows never wrap and smear). */
export function useWidth(): number {
  const { stdout } = useStdout();
  const cols = stdout.columns;
  return typeof cols === "number" && cols > 0 ? Math.max(MIN_WIDTH, Math.min(WIDTH, cols)) : WIDTH;
}

/** Cells for a bar or sparkline in a frame `width` wide, leaving `rest` for the label and figures. */
export function barCells(width: number, rest: number, max = 40): number {
  return Math.max(10, Math.min(max, width - rest));
}
