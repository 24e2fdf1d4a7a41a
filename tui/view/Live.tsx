import { useInput, useStdin } from "ink";
import { View, type ViewProps } from "./View.js";

export interface LiveProps extends ViewProps {
  onQuit: () => void;
  onPause: () => void;
  /** f: faster; e: to the end (a paced simulation). */
  onFaster?: () => void;
  onToEnd?: () => void;
}

function Keys({ onQuit, onPause, onFaster, onToEnd }: Pick<LiveProps, "onQuit" | "onPause" | "onFaster" | "onToEnd">) {
  useInput((input, key) => {
    if (input === "q" || (key.ctrl && input === "c")) onQuit();
    else if (input === "p") onPause();
    else if (input === "f") onFaster?.();
    else if (input === "e") onToEnd?.();
  });
  return null;
}

/** The view plus its keys; keys only where stdin can be put in raw mode (a TTY). */
export function Live({ onQuit, onPause, onFaster, onToEnd, ...props }: LiveProps) {
  const { isRawModeSupported } = useStdin();
  const keys = isRawModeSupported && props.snapshot.report === null;
  return (
    <>
      {keys && <Keys onQuit={onQuit} onPause={onPause} onFaster={onFaster} onToEnd={onToEnd} />}
      <View {...props} status={{ ...props.status, keys }} />
    </>
  );
}
