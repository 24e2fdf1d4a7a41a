/** Tests write pages messages as lists of (page, data): these turn them into the engine's parallel arrays and back. */
import type { PageBatch, PagesMsg } from "../../src/engine/messages.js";

export function pagesMsg<P>(entries: readonly { page: number; data: P | null }[]): PagesMsg<P> {
  return { type: "pages", pages: Uint32Array.from(entries, (e) => e.page), data: entries.map((e) => e.data) };
}

export function entriesOf<P>(batch: PageBatch<P>): { page: number; data: P | null }[] {
  return Array.from(batch.pages, (page, i) => ({ page, data: batch.data[i] }));
}
