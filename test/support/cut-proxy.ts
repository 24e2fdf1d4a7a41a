/**
 * A TCP proxy between a real source agent and a real destination agent that
 * cuts every connection at moments named by what crosses it: it decodes the
 * destination's frames (they carry no preamble) and counts the source's
 * bytes, so a test can break the link while the destination's recover is on
 * its way, or a given number of bytes into the resend that follows it.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { FrameDecoder } from "../../src/engine/frame-decoder.js";
import type { Message } from "../../src/engine/messages.js";

export interface CutRule {
  /** Called for each frame the destination sends; true: cut now (the frame is not forwarded). */
  onDestFrame?(m: Message<Uint8Array>, proxy: CutProxy): boolean;
  /** Called after each chunk the source sends was forwarded; true: cut now. */
  onSourceBytes?(total: number, proxy: CutProxy): boolean;
}

export class CutProxy {
  /** Bytes from the source since the last cut. */
  sourceBytes = 0;
  /** Cuts so far. */
  cuts = 0;
  /** Connections the source opened through the proxy, in all. */
  accepted = 0;
  /** Message types the destination sent since the last cut, in order. */
  destFrames: string[] = [];
  private readonly pairs = new Set<[Socket, Socket]>();
  private server: Server | null = null;
  port = 0;

  constructor(
    private readonly destPort: number,
    private readonly rule: CutRule,
  ) {}

  async listen(): Promise<void> {
    this.server = createServer((client) => this.onClient(client));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    const a = this.server.address();
    this.port = typeof a === "object" && a !== null ? a.port : 0;
  }

  /** Destroys every connection now, both sides (the source sees its link fail and reconnects). */
  cut(): void {
    this.cuts++;
    this.sourceBytes = 0;
    this.destFrames = [];
    for (const [c, d] of this.pairs) {
      c.destroy();
      d.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    for (const [c, d] of this.pairs) {
      c.destroy();
      d.destroy();
    }
    await new Promise<void>((r) => (this.server === null ? r() : this.server.close(() => r())));
  }

  private onClient(client: Socket): void {
    this.accepted++;
    const dest = connect(this.destPort, "127.0.0.1");
    const pair: [Socket, Socket] = [client, dest];
    this.pairs.add(pair);
    const drop = () => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      dest.destroy();
    };
    client.on("error", drop).on("close", drop);
    dest.on("error", drop).on("close", drop);
    client.on("data", (chunk: Buffer) => {
      dest.write(chunk);
      this.sourceBytes += chunk.length;
      if (this.rule.onSourceBytes?.(this.sourceBytes, this) === true) this.cut();
    });
    const decoder = new FrameDecoder(4096);
    dest.on("data", (chunk: Buffer) => {
      if (!this.pairs.has(pair)) return;
      // A cut at a frame drops the whole chunk it came in (what went before it in that chunk too).
      let frames: Message<Uint8Array>[];
      try {
        frames = decoder.push(chunk);
      } catch {
        return drop();
      }
      for (const m of frames) {
        this.destFrames.push(m.type);
        if (this.rule.onDestFrame?.(m, this) === true) return this.cut();
      }
      client.write(chunk);
    });
  }
}
