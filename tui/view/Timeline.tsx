import { Box, Text } from "ink";
import type { Mode } from "../../src/engine/messages.js";
import type { Phase, Snapshot } from "../../src/engine/report.js";
import { fmtDuration } from "../format.js";
import { COLOR } from "./theme.js";

type Stage = "setup" | "precopy" | "switchover" | "postcopy" | "end";

const STAGES: Record<Mode, Stage[]> = {
  precopy: ["setup", "precopy", "switchover", "end"],
  postcopy: ["setup", "switchover", "postcopy", "end"],
  hybrid: ["setup", "precopy", "switchover", "postcopy", "end"],
};

function stageOf(phase: Phase): Stage {
  if (phase === "recovering") return "postcopy";
  if (phase === "complete" || phase === "cancelled" || phase === "failed") return "end";
  return phase;
}

function label(stage: Stage, s: Snapshot): string {
  switch (stage) {
    case "precopy":
      return s.round > 0 ? `pre-copy r${s.round}` : "pre-copy";
    case "postcopy":
      return s.phase === "recovering" ? "recovering" : "post-copy";
    case "end":
      return s.phase === "cancelled" || s.phase === "failed" ? s.phase : "complete";
    default:
      return stage;
  }
}

/** Whether a run that ended (cancelled/failed) went through this stage. */
function reached(stage: Stage, s: Snapshot, seen: readonly Phase[]): boolean {
  if (stage === "setup") return true;
  if (seen.some((p) => stageOf(p) === stage)) return true;
  if (stage === "precopy") return s.round > 0;
  return s.downtimeMs !== null;
}

/** setup › pre-copy r3 › [switchover] › post-copy › complete        12.34 s */
export function Timeline({ snapshot: s, seen = [], width }: { snapshot: Snapshot; seen?: readonly Phase[]; width: number }) {
  const stages = STAGES[s.mode];
  const cur = stages.indexOf(stageOf(s.phase));
  const ended = s.phase === "cancelled" || s.phase === "failed";
  return (
    <Box width={width} justifyContent="space-between">
      <Text wrap="truncate">
        {stages.map((st, i) => {
          const text = label(st, s);
          const sep = i > 0 ? <Text color={COLOR.future}> › </Text> : null;
          let el;
          if (i === cur) {
            const color = ended ? COLOR.bad : s.phase === "recovering" ? COLOR.warn : COLOR.current;
            el = <Text bold color={color}>[{text}]</Text>;
          } else if (i < cur && (!ended || reached(st, s, seen))) {
            el = <Text color={COLOR.done}>{text}</Text>;
          } else {
            el = <Text color={COLOR.future} dimColor>{text}</Text>;
          }
          return (
            <Text key={st}>
              {sep}
              {el}
            </Text>
          );
        })}
      </Text>
      <Text bold>{fmtDuration(s.elapsedMs)}</Text>
    </Box>
  );
}
