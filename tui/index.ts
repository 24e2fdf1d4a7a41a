/** The TUI: one view for both back ends, and the runners that drive it. */
export type { ViewSource } from "./source.js";
export { runTui, type TuiOptions } from "./run-tui.js";
export { runPlain, progressLine, reportLines, type PlainOptions } from "./plain.js";
export { View, type ViewProps, type ViewStatus } from "./view/View.js";
export { emptyHistory, observe, historyOf, type History, type Rates } from "./history.js";
export * from "./format.js";
