/**
 * TLS between the agents, the cases of QEMU's migration TLS tests: PSK that
 * matches and one that does not, x509 verified both ways, a certificate from
 * the wrong CA (either side), a plaintext source against a TLS destination,
 * every connection of a session from the same peer, and a post-copy
 * migration that loses its link and recovers with TLS on. A refused peer
 * gets a clear reason on both sides, and no guest is spawned for it.
 * Certificates: test/fixtures/tls (make.sh).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Report } from "../src/engine/report.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { INSECURE, loadPsk, securityFromFlags, type Security } from "../src/real/tls.js";
import { loadWorkload } from "../src/workload/parse.js";
import { infoFor, openPair, sessionId, watch } from "./support/hostile-peer.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping TLS migrations: userfaultfd is unavailable here: ${unavailable}`);

const MiB = 1024 * 1024;
const FIX = "test/fixtures/tls";
const tmp = process.env.TMPDIR ?? "/tmp";

function pskFile(name: string, line: string): Security {
  const p = join(tmp, `ppsim-test-${process.pid}-${name}.psk`);
  writeFileSync(p, `${line}\n`, { mode: 0o600 });
  return loadPsk(p);
}
const pskA = () => pskFile("a", `ppsim:${"11".repeat(32)}`);
const pskB = () => pskFile("b", `ppsim:${"22".repeat(32)}`);
function x509(who: string, ca = "ca"): Security {
  return { kind: "x509", cert: readFileSync(`${FIX}/${who}.crt`), key: readFileSync(`${FIX}/${who}.key`), ca: readFileSync(`${FIX}/${ca}.crt`) };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function run(dest: Security, src: Security, extra: { breakLinkAfterPostcopyBytes?: number } = {}): Promise<{ report: Report; log: string[]; source: SourceAgent }> {
  const log: string[] = [];
  const agent = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`), security: dest });
  cleanups.push(() => agent.close());
  const w = scaleWorkload(loadWorkload("examples/web-server.json"), 32 * MiB);
  const source = await SourceAgent.start({
    workload: { ...w, warmupMs: 50 },
    mode: "postcopy",
    seed: 5,
    // Short: the guest need not outlive the migration to check TLS, and each run costs its steps twice (the verification reruns them).
    steps: 40_000,
    peer: { host: "127.0.0.1", port: agent.port },
    security: src,
    log: (l) => log.push(`[src] ${l}`),
    ...extra,
  });
  cleanups.push(() => source.close());
  return { report: await source.migrate(), log, source };
}

const explain = (r: Report, log: string[]) => `${r.outcome}: ${String(r.reason)}\n${log.join("\n")}`;
const noGuest = (log: string[]) => expect(log.join("\n")).not.toMatch(/starting the destination guest/);

describe.skipIf(unavailable !== null)("migrations over TLS", () => {
  it("PSK, different keys: refused during the handshake on both sides, nothing moves", async () => {
    const { report: r, log } = await run(pskA(), pskB());
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed: the pre-shared keys or identities differ/);
    expect(log.join("\n")).toMatch(/\[dst\] connection from 127\.0\.0\.1:\d+ refused: TLS handshake failed: the pre-shared keys or identities differ/);
    expect(r.bytes_sent).toBe(0);
    noGuest(log);
  });

  it("x509 verified both ways: completes and verifies", async () => {
    const { report: r, log } = await run(x509("destination"), x509("source"));
    expect(r.outcome, explain(r, log)).toBe("completed");
    expect(r.verified, explain(r, log)).toBe(true);
  });

  it("a source certificate from the wrong CA: refused with the reason on both sides", async () => {
    const { report: r, log } = await run(x509("destination"), x509("stranger", "ca"));
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/certificate is not trusted by this destination's --tls-ca/);
    expect(log.join("\n")).toMatch(/\[dst\] connection from .* refused: the source's certificate is not trusted/);
    noGuest(log);
  });

  it("a source that trusts another CA: it refuses the destination", async () => {
    const { report: r, log } = await run(x509("destination"), x509("source", "other-ca"));
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed: the destination's certificate is not trusted/);
    noGuest(log);
  });

  it("a plaintext source against a TLS destination, and the reverse: refused, saying what is missing", async () => {
    const a = await run(pskA(), INSECURE);
    expect(String(a.report.reason)).toMatch(/the source did not use TLS, and this destination requires it/);
    noGuest(a.log);
    const b = await run(INSECURE, pskA());
    expect(String(b.report.reason)).toMatch(/TLS handshake with .* failed: the destination does not speak TLS here.*--insecure/);
    expect(b.log.join("\n")).toMatch(/\[dst\] .*refused: it opened a TLS handshake, but this destination runs --insecure/);
  });

  it("PSK, the same key: completes and verifies, and recovers from a link broken mid-way through post-copy (every new connection authenticated)", async () => {
    const { report: r, log } = await run(pskA(), pskA(), { breakLinkAfterPostcopyBytes: 8 * MiB });
    expect(r.outcome, explain(r, log)).toBe("completed");
    expect(r.recoveries, explain(r, log)).toBeGreaterThanOrEqual(1);
    expect(r.verified, explain(r, log)).toBe(true);
    expect(log.join("\n")).toMatch(/link re-established \(epoch 1\)/);
  });
});

describe("TLS admission", () => {
  it("binds a session to one peer: a connection of the same session from another certificate is refused", async () => {
    const log: string[] = [];
    const agent = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(l), security: x509("destination") });
    cleanups.push(() => agent.close());
    const session = sessionId(77);
    const { connectChannel } = await import("../src/real/transport.js");
    const urgent = await connectChannel("127.0.0.1", agent.port, { channel: "urgent", session, epoch: 0, info: "" }, 5000, undefined, x509("source"));
    // The destination's own certificate is signed by the same CA: a valid peer, but another one.
    const bulk = await connectChannel("127.0.0.1", agent.port, { channel: "bulk", session, epoch: 0, info: infoFor(16 * MiB) }, 5000, undefined, x509("destination"));
    const err = await watch(bulk).first("error");
    expect((err as { reason: string }).reason).toMatch(/session 0000004d belongs to another peer/);
    urgent.destroy();
    noGuest(log);
  });

  it("the flags: one way to authenticate, all of its parts, a well-formed key", () => {
    expect(() => securityFromFlags({})).toThrow(/no authentication chosen/);
    expect(securityFromFlags({}, true)).toEqual(INSECURE);
    expect(() => securityFromFlags({ insecure: true, "psk-file": "x" })).toThrow(/contradicts/);
    expect(() => securityFromFlags({ "tls-cert": "a" })).toThrow(/needs all three/);
    expect(() => pskFile("short", "ppsim:abcd")).toThrow(/at least 16 bytes/);
    expect(() => pskFile("bad", "just some words")).toThrow(/one line IDENTITY:HEXKEY/);
    expect(() => securityFromFlags({ "psk-file": "/dev/zero" })).toThrow(/must be a regular file, this is a character device/);
    expect(pskA()).toMatchObject({ kind: "psk", identity: "ppsim" });
  });

  it("a TLS pair that never sends its hello is closed at the setup deadline", async () => {
    const agent = await DestinationAgent.listen("127.0.0.1", 0, { security: pskA(), setupTimeoutMs: 300 });
    cleanups.push(() => agent.close());
    const { urgent, bulk } = await openPair(agent.port, sessionId(78), infoFor(16 * MiB), pskA());
    await Promise.all([watch(urgent).closed, watch(bulk).closed]);
  });
});
