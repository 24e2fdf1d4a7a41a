/** `ppsim real …`: the real back end. */
import { UsageError } from "./errors.js";

export async function runRealCommand(_argv: string[], _out: (line: string) => void): Promise<number> {
  throw new UsageError("ppsim real is being built (issue 3)");
}
