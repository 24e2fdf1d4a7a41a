/**
 * The link's two small queues (link.ts): a FIFO of messages waiting for the
 * wire, and the planned ends of urgent messages in time order. Apart so that
 * link.ts holds the model alone, and so that the event-by-event reference
 * link of the tests (test/support/event-link.ts) queues the same way.
 */

/** A FIFO that does not shift its array on every take. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  take(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** The planned ends of urgent messages not yet counted as sent: (time, bytes) in time order, a ring. */
export class Ends {
  private at = new Float64Array(16);
  private bytes = new Float64Array(16);
  private head = 0;
  length = 0;

  get firstAt(): number {
    return this.at[this.head];
  }

  push(at: number, bytes: number): void {
    if (this.length === this.at.length) this.grow();
    const i = (this.head + this.length) & (this.at.length - 1);
    this.at[i] = at;
    this.bytes[i] = bytes;
    this.length++;
  }

  /** Removes the first end; its bytes. */
  take(): number {
    const b = this.bytes[this.head];
    this.head = (this.head + 1) & (this.at.length - 1);
    this.length--;
    return b;
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
  }

  private grow(): void {
    const at = new Float64Array(this.at.length * 2);
    const bytes = new Float64Array(this.at.length * 2);
    for (let k = 0; k < this.length; k++) {
      const i = (this.head + k) & (this.at.length - 1);
      at[k] = this.at[i];
      bytes[k] = this.bytes[i];
    }
    this.at = at;
    this.bytes = bytes;
    this.head = 0;
  }
}
