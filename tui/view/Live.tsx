import { useInput, useStdin } from "ink";
import { View, type ViewProps } from "./View.js";

export interface LiveProps extends ViewProps {
  onQuit: () => void;
  onPause: () => void;
}

function Keys({ onQuit, onPause }: Pick<LiveProps, "onQuit" | "onPause">) {
  useInput((input, key) => {
    if (input === "q" || (key.ctrl && input === "c")) onQuit();
    else if (input === "p") onPause();
  });
  return null;
}

/** The view plus its keys; keys only where stdin can be put in raw mode (a TTY). */
export function Live({ onQuit, onPause, ...props }: LiveProps) {
  const { isRawModeSupported } = useStdin();
  const keys = isRawModeSupported && props.snapshot.report === null;
  return (
    <>
      {keys && <Keys onQuit={onQuit} onPause={onPause} />}
      <View {...props} status={{ ...props.status, keys }} />
    </>
  );
}
