/** Colours and glyphs shared by the view's parts (the glyphs read without colour too). */
export const WIDTH = 80;
/** Width of the left-hand labels ("present ", "faults  "...). */
export const LABEL = 9;

export const GLYPH = { precopy: "█", dirty: "▚", background: "▓", demand: "▒", missing: "░" } as const;
export const COLOR = {
  precopy: "cyan",
  dirty: "yellow",
  background: "green",
  demand: "magenta",
  missing: "gray",
  done: "green",
  current: "cyan",
  future: "gray",
  warn: "yellow",
  bad: "red",
  label: "gray",
} as const;
