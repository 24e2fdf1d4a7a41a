/**
 * Issue 16 at the destination: once the source is gone, the pages the engine
 * still misses come from the standby copy the source kept (DIR/<session id>/),
 * verified page by page, then the engine hears the fill is over.
 */
import type { DestinationInput } from "../engine/events.js";
import { messageOf } from "./errors.js";
import { StandbyReader } from "./standby-store.js";

export interface StandbyFillTarget {
  /** Where sources keep standby copies. */
  dir: string;
  sessionId: string;
  layout: { pageSize: number; pageCount: number };
  log: (line: string) => void;
  dispatch: (ev: DestinationInput<Uint8Array>) => void;
}

/** Reads `missing` from the standby copy into the engine (standbyPages batches), then standbyEnd — whatever the copy lacks or however it fails. */
export async function fillFromStandby(t: StandbyFillTarget, missing: Uint32Array): Promise<void> {
  t.log(`the source is gone; reading ${missing.length} missing pages from the standby copy`);
  try {
    const reader = await StandbyReader.open(t.dir, t.sessionId, t.layout);
    try {
      const r = await reader.read(missing, (batch) => t.dispatch({ kind: "standbyPages", batch }));
      const bad = r.bad.length;
      if (bad > 0) {
        const why = new Map<string, number>();
        for (const b of r.bad) why.set(b.why, (why.get(b.why) ?? 0) + 1);
        t.log(`the standby copy lacks ${bad} of them: ${[...why].map(([k, n]) => `${n} ${k}`).join(", ")}`);
      }
    } finally {
      await reader.close();
    }
  } catch (e) {
    t.log(`the standby copy cannot be read: ${messageOf(e)}`);
  }
  t.dispatch({ kind: "standbyEnd" });
}
