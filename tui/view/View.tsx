import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import type { History } from "../history.js";
import { Faults } from "./Faults.js";
import { Guest } from "./Guest.js";
import { Link } from "./Link.js";
import { Precopy } from "./Precopy.js";
import { Presence } from "./Presence.js";
import { ReportTable } from "./ReportTable.js";
import { Timeline } from "./Timeline.js";
import { COLOR } from "./theme.js";
import { useWidth } from "./width.js";

export interface ViewStatus {
  /** The simulated clock is paused. */
  paused?: boolean;
  /** Keys are read (stdin is a TTY). */
  keys?: boolean;
  /** p does something (the simulator). */
  canPause?: boolean;
  /** A line from the runner (e.g. why a cancel was refused). */
  notice?: string | null;
  /** The simulated clock's pace, as shown in the header ("×20", "max"). */
  speed?: string;
  /** f goes faster, e skips to the end (a paced simulation). */
  canSpeedUp?: boolean;
}

export interface ViewProps {
  snapshot: Snapshot;
  history?: History;
  status?: ViewStatus;
}

function Header({ snapshot: s, paused, speed, width }: { snapshot: Snapshot; paused: boolean; speed?: string; width: number }) {
  const clock = s.backend === "sim" ? `virtual clock${speed ? ` ${speed}` : ""}` : "wall clock";
  return (
    <Box width={width} justifyContent="space-between">
      <Text wrap="truncate">
        <Text bold>ppsim</Text> {s.backend} · {s.mode} · {s.workload}
      </Text>
      {paused ? (
        <Text bold color={COLOR.warn}>
          ‖ paused
        </Text>
      ) : (
        <Text color={COLOR.label}>{clock}</Text>
      )}
    </Box>
  );
}

function Notices({ lines }: { lines: string[] }) {
  return (
    <>
      {lines.map((l) => (
        <Text key={l} color={COLOR.warn} wrap="truncate">
          ! {l}
        </Text>
      ))}
    </>
  );
}

/** One frame of the view: everything it shows is read from the snapshot and the history. */
export function View({ snapshot: s, history, status = {} }: ViewProps) {
  const width = useWidth();
  const notices = [s.notice, status.notice].filter((n): n is string => !!n);
  const unique = [...new Set(notices)];
  const ended = s.report !== null;
  // The migration ended but the run has not (a real source waits for its guest): nothing left to quit.
  const settled = s.phase === "complete" || s.phase === "cancelled" || s.phase === "failed";
  if (settled && !ended) unique.push("migration over: waiting for the guest to finish its steps, then the report");
  const keys = ["q quit", status.canPause ? `p ${status.paused ? "resume" : "pause"}` : null, status.canSpeedUp ? "f faster · e to the end" : null];
  return (
    <Box flexDirection="column" width={width}>
      <Header snapshot={s} paused={!!status.paused} speed={status.speed} width={width} />
      <Timeline snapshot={s} seen={history?.seen} width={width} />
      <Presence snapshot={s} width={width} />
      {!ended && s.phase === "precopy" && <Precopy snapshot={s} />}
      {!ended && <Link snapshot={s} rates={history?.rates ?? null} />}
      {!ended && s.mode !== "precopy" && <Faults snapshot={s} faultsPerSec={history?.rates?.faultsPerSec} />}
      {!ended && <Guest snapshot={s} progress={history?.progress ?? []} width={width} />}
      <Notices lines={unique} />
      {s.report && <ReportTable report={s.report} width={width} />}
      {status.keys && !ended && !settled && <Text color={COLOR.label}>{keys.filter(Boolean).join(" · ")}</Text>}
    </Box>
  );
}
