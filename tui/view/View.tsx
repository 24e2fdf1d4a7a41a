import { Box, Text } from "ink";
import type { Snapshot } from "../../src/engine/report.js";
import type { History } from "../history.js";
import { Faults } from "./Faults.js";
import { Guest } from "./Guest.js";
import { Link } from "./Link.js";
import { Presence } from "./Presence.js";
import { ReportTable } from "./ReportTable.js";
import { Timeline } from "./Timeline.js";
import { COLOR, WIDTH } from "./theme.js";

export interface ViewStatus {
  /** The simulated clock is paused. */
  paused?: boolean;
  /** Keys are read (stdin is a TTY). */
  keys?: boolean;
  /** p does something (the simulator). */
  canPause?: boolean;
  /** A line from the runner (e.g. why a cancel was refused). */
  notice?: string | null;
}

export interface ViewProps {
  snapshot: Snapshot;
  history?: History;
  status?: ViewStatus;
}

function Header({ snapshot: s, paused }: { snapshot: Snapshot; paused: boolean }) {
  return (
    <Box width={WIDTH} justifyContent="space-between">
      <Text>
        <Text bold>ppsim</Text> {s.backend} · {s.mode} · {s.workload}
      </Text>
      {paused ? (
        <Text bold color={COLOR.warn}>
          ‖ paused
        </Text>
      ) : (
        <Text color={COLOR.label}>{s.backend === "sim" ? "virtual clock" : "wall clock"}</Text>
      )}
    </Box>
  );
}

function Notices({ lines }: { lines: string[] }) {
  return (
    <>
      {lines.map((l) => (
        <Text key={l} color={COLOR.warn}>
          ! {l}
        </Text>
      ))}
    </>
  );
}

/** One frame of the view: everything it shows is read from the snapshot and the history. */
export function View({ snapshot: s, history, status = {} }: ViewProps) {
  const notices = [s.notice, status.notice].filter((n): n is string => !!n);
  const unique = [...new Set(notices)];
  const ended = s.report !== null;
  return (
    <Box flexDirection="column" width={WIDTH}>
      <Header snapshot={s} paused={!!status.paused} />
      <Timeline snapshot={s} seen={history?.seen} />
      <Presence snapshot={s} />
      {!ended && <Link snapshot={s} rates={history?.rates ?? null} />}
      {!ended && <Faults snapshot={s} faultsPerSec={history?.rates?.faultsPerSec} />}
      {!ended && <Guest snapshot={s} progress={history?.progress ?? []} />}
      <Notices lines={unique} />
      {s.report && <ReportTable report={s.report} />}
      {status.keys && !ended && (
        <Text color={COLOR.label}>
          q quit{status.canPause ? ` · p ${status.paused ? "resume" : "pause"}` : ""}
        </Text>
      )}
    </Box>
  );
}
