/** The migration engine: pure state machines, protocol, codec and metrics. */
export { Bitmap } from "./bitmap.js";
export { decodeMessage, encodeMessage, encodedSize, FrameDecoder, HEADER_BYTES, PAGE_ENTRY_OVERHEAD, ProtocolError } from "./codec.js";
export { Destination, type DestinationConfig } from "./destination.js";
export type { DestinationAction, DestinationEvent, Outcome, SourceAction, SourceEvent, SourceGuestPort } from "./events.js";
export * from "./messages.js";
export { buildReport, buildSnapshot, emptyDestinationMetrics, log2Histogram, percentiles, type DestinationMetrics, type ReportExtras, type SnapshotExtras, type SourceMetrics } from "./metrics.js";
export { DEFAULT_OPTIONS, resolveOptions, type BackgroundOrderName, type MigrationOptions } from "./options.js";
export { LinearOrder, makeOrder, NeighbourhoodOrder, type BackgroundOrder } from "./order.js";
export type { Percentiles, Phase, Report, RoundReport, Snapshot, SwitchoverReason } from "./report.js";
export { Source, type Layout } from "./source.js";
