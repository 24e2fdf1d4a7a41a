/**
 * The native receiver's installed pages, booked in the destination engine a
 * slice per event-loop turn (issue 9). The receiver thread installs pages
 * itself and tells JS which (dataplane-recv.ts); a backlog of its notices
 * (after any pause of the loop) used to be booked in one callback, 5–18 ms
 * on the loop in the fault trace, and a demand fault's event or its reply
 * waited behind it. Booking later is safe: the pages are in guest memory
 * already (a fault on one cannot happen; a request the engine makes for one
 * meanwhile gets a duplicate the install discards). Any other message from
 * the receiver (hello, switchover, cancel …) first books everything before
 * it, then goes at once: its order and its synchronous handling — the
 * receiver thread waits for it — stay as they were. So does a connection's
 * end: what waits is booked before its `down`.
 */
import type { Message } from "../engine/messages.js";

/** Installed-pages notices booked per turn (each a few to a few hundred pages). */
export const BOOKINGS_PER_TURN = 8;

export class BookingQueue {
  private q: Message<Uint8Array>[] = [];
  private head = 0;
  private scheduled = false;

  constructor(
    private readonly book: (m: Message<Uint8Array>) => void,
    private readonly perTurn = BOOKINGS_PER_TURN,
  ) {}

  get waiting(): number {
    return this.q.length - this.head;
  }

  push(m: Message<Uint8Array>): void {
    if (m.type === "pages" && m.preinstalled === true) {
      this.q.push(m);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.turn());
      }
      return;
    }
    this.flush();
    this.book(m);
  }

  /** Books everything waiting, now. */
  flush(): void {
    while (this.head < this.q.length) this.book(this.take());
  }

  private take(): Message<Uint8Array> {
    const m = this.q[this.head++];
    if (this.head === this.q.length) {
      this.q = [];
      this.head = 0;
    }
    return m;
  }

  private turn(): void {
    this.scheduled = false;
    for (let i = 0; i < this.perTurn && this.head < this.q.length; i++) this.book(this.take());
    if (this.head < this.q.length) {
      this.scheduled = true;
      setImmediate(() => this.turn());
    }
  }
}
