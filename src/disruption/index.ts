/** Guest-visible disruption: the progress log, the figures derived from it, demand-fault figures. */
export { ProgressRecorder, DEFAULT_SLOT_US, DEFAULT_SLOTS, type ProgressTrace } from "./recorder.js";
export { deriveDisruption, guestUtilization, utilizationTimeline, MMU_WINDOWS_MS, type GuestDisruption, type MmuPoint, type StallFigures, type VcpuDisruption } from "./derive.js";
export { FaultLog, faultFigures, latencyBucket, LATENCY_BUCKETS, type FaultFigures } from "./faults.js";
export { checkGuestLog, logToSend, traceFromLogs, MAX_LOG_SLOTS, SENT_LOG_SLOTS, type GuestLog, type VcpuLog } from "./guest-log.js";
