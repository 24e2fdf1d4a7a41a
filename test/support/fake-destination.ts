/**
 * A scripted destination for real source agents: it takes the two
 * connections, answers the handshake as a destination would, and then does
 * what the test says at the moment it names — refuse to start its guest when
 * the switchover arrives, or cut the connections — so that a real source
 * agent meets a failure at an exact point of the protocol.
 */
import type { Socket } from "node:net";
import { encodeMessage } from "../../src/engine/codec.js";
import { FrameDecoder } from "../../src/engine/frame-decoder.js";
import { ALL_CAPABILITIES, ErrorCode, PROTOCOL_VERSION, type Channel, type Message } from "../../src/engine/messages.js";
import { Listener, type Accepted } from "../../src/real/listener.js";

export type Script =
  /** Answer the switchover with "my guest could not start". */
  | { at: "switchover"; act: "resumeFailed" }
  /** Close both connections when this message arrives (before acting on it). */
  | { at: Message<Uint8Array>["type"]; act: "cut" }
  /** Answer the hello, then close both connections at once: a post-copy source is pausing, its switchover not yet out. */
  | { at: "hello"; act: "ackThenCut" };

export class FakeDestination {
  readonly seen: Message<Uint8Array>["type"][] = [];
  private conns: Partial<Record<Channel, Socket>> = {};
  private pageSize = 4096;

  private constructor(
    private readonly listener: Listener,
    private readonly script: Script,
  ) {}

  static async listen(script: Script): Promise<FakeDestination> {
    const holder: { fake?: FakeDestination } = {};
    const l = await Listener.listen("127.0.0.1", 0, (a) => holder.fake?.onAccepted(a), () => undefined);
    holder.fake = new FakeDestination(l, script);
    return holder.fake;
  }

  get port(): number {
    return this.listener.port;
  }

  async close(): Promise<void> {
    for (const s of Object.values(this.conns)) s.destroy();
    await this.listener.close();
  }

  private onAccepted(a: Accepted): void {
    const channel = a.preamble.channel;
    this.conns[channel]?.destroy();
    this.conns[channel] = a.socket;
    const decoder = new FrameDecoder(this.pageSize);
    const take = (chunk: Buffer): void => {
      let msgs: Message<Uint8Array>[];
      try {
        msgs = decoder.push(chunk);
      } catch {
        a.socket.destroy();
        return;
      }
      for (const m of msgs) this.onMessage(m);
    };
    a.socket.on("data", take);
    a.socket.on("error", () => undefined);
    if (a.rest.length > 0) take(a.rest);
  }

  private onMessage(m: Message<Uint8Array>): void {
    this.seen.push(m.type);
    if (m.type === this.script.at && this.script.act === "cut") {
      for (const s of Object.values(this.conns)) s.destroy();
      this.conns = {};
      return;
    }
    if (m.type === "hello") {
      this.pageSize = m.pageSize;
      this.send("bulk", { type: "helloAck", version: PROTOCOL_VERSION, capabilities: ALL_CAPABILITIES });
      if (this.script.act === "ackThenCut") {
        for (const s of Object.values(this.conns)) s.end();
        this.conns = {};
      }
    } else if (m.type === "switchover" && this.script.act === "resumeFailed") {
      this.send("urgent", { type: "error", code: ErrorCode.ResumeFailed, reason: "the destination could not start its guest: scripted" });
    }
  }

  private send(channel: Channel, m: Message<Uint8Array>): void {
    this.conns[channel]?.write(encodeMessage(m, this.pageSize));
  }
}
