/** Why userfaultfd cannot be used here, or null when it can: the real back end's tests skip (and say why) only then. */
import { closeFd, uffdCreate } from "../../src/real/native.js";

export function userfaultfdUnavailable(): string | null {
  try {
    closeFd(uffdCreate());
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
