/**
 * Each engine's one deadline (its `pollTimeout`) as an agenda event. The
 * agenda cannot take an event back, so a changed deadline queues a new event
 * and the old one, of an older generation, is ignored when it comes up.
 */
import type { EventQueue } from "./event-queue.js";
import type { Direction } from "./link.js";
import type { SimEvent } from "./sim-config.js";

export class EngineTimers {
  private readonly at: [number | null, number | null] = [null, null];
  private readonly generation: [number, number] = [0, 0];

  constructor(private readonly queue: EventQueue<SimEvent>) {}

  /** Sets (or with null clears) a side's deadline; a deadline already past fires at `now`. */
  set(side: Direction, at: number | null, now: number): void {
    if (at === this.at[side]) return;
    this.at[side] = at;
    const generation = ++this.generation[side];
    if (at !== null) this.queue.push(Math.max(now, at), { type: "timer", side, generation });
  }

  /** Whether a timer event that came up is its side's current deadline (it is then spent). */
  fire(ev: Extract<SimEvent, { type: "timer" }>): boolean {
    if (ev.generation !== this.generation[ev.side]) return false;
    this.at[ev.side] = null;
    return true;
  }
}
