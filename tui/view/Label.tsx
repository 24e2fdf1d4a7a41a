import { Text } from "ink";
import { LABEL, COLOR } from "./theme.js";

/** A fixed-width label at the start of a row. */
export function Label({ children }: { children: string }) {
  return <Text color={COLOR.label}>{children.padEnd(LABEL)}</Text>;
}
