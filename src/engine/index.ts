/** The migration engine: pure state machines, protocol, codec and metrics. */
export { Bitmap } from "./bitmap.js";
export { encodeMessage, encodedSize, HEADER_BYTES, MAX_PAGES_PER_MESSAGE, PAGE_ENTRY_OVERHEAD, ProtocolError } from "./codec.js";
export { decodeMessage, FrameDecoder, maxPayloadBytes, StreamError } from "./frame-decoder.js";
export { Destination, type DestinationConfig } from "./destination.js";
export { EndCause, type CommandResult, type DestinationAction, type DestinationInput, type Ending, type Outcome, type SourceAction, type SourceInput, type SourceGuestPort } from "./events.js";
export { CHANNELS, driveDestination, driveSource, type DestinationEffects, type SourceEffects } from "./drive.js";
export { PageLedger, reconcileHeld, type RecoverInput } from "./ledger.js";
export { Pacer } from "./pacer.js";
export { SwitchoverPolicy, STALLED_SHARE, type Decision, type RoundEnd } from "./switchover.js";
export { ThroughputEstimator } from "./throughput.js";
export { TimerTable } from "./timers.js";
export * from "./messages.js";
export { buildReport, buildSnapshot, emptyDestinationMetrics, newSourceMetrics, log2Histogram, percentiles, type DestinationMetrics, type PrecopyFigures, type ReportExtras, type SnapshotExtras, type SourceMetrics } from "./metrics.js";
export { batchPagesFor, DEFAULT_OPTIONS, OptionError, resolveOptions, type BackgroundOrderName, type MigrationOptions } from "./options.js";
export { LinearOrder, makeOrder, NeighbourhoodOrder, type BackgroundOrder } from "./order.js";
export type { HashReport, LinkReport, OutageReport, Percentiles, Phase, PrecopyReport, PrecopyView, Report, RoundReport, SimStats, Snapshot, SwitchoverReason } from "./report.js";
export { Source, type Layout } from "./source.js";
