/**
 * Who may migrate to whom: every connection between the agents is TLS (Node's
 * own `tls`, OpenSSL inside Node) unless the operator says `--insecure`.
 *
 * - PSK (`--psk-file`): both agents hold the same key; a file of one line
 *   `IDENTITY:HEXKEY` (QEMU's keys.psk format), at least 16 bytes of key,
 *   e.g. `printf 'ppsim:%s\n' "$(openssl rand -hex 32)" > keys.psk`. TLS 1.3
 *   with (EC)DHE: forward secrecy, and a wrong key fails the handshake.
 * - x509 (`--tls-cert/--tls-key/--tls-ca`): each side presents a certificate
 *   the other verifies against its CA; the source also checks the
 *   destination's name or address against the certificate, as a browser does.
 *
 * This module only builds socket options and names peers; transport.ts wraps
 * each TCP socket in TLS right after it connects, so the TLS layer sits
 * between the kernel socket and the framing and could move with the bytes
 * (docs/security.md).
 */
import { type ConnectionOptions, type PeerCertificate, type TLSSocket, type TlsOptions } from "node:tls";
import { readBoundedFile } from "../workload/read-bounded.js";
import { RealError } from "./errors.js";

export type Security =
  | { kind: "insecure" }
  | { kind: "psk"; identity: string; key: Buffer }
  | { kind: "x509"; cert: Buffer; key: Buffer; ca: Buffer };

export const INSECURE: Security = { kind: "insecure" };

/** TLS 1.3 suites first (AES-GCM: AES-NI makes it the cheapest), then TLS 1.2 PSK suites with ECDHE. */
const CIPHERS = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305";
const MAX_KEY_FILE_BYTES = 4096;
const MAX_PEM_BYTES = 1024 * 1024;
const MIN_PSK_BYTES = 16;

export interface SecurityFlags {
  "psk-file"?: string;
  "tls-cert"?: string;
  "tls-key"?: string;
  "tls-ca"?: string;
  insecure?: boolean;
}

/** The security the flags choose; throws a RealError for a contradiction, a missing part or a bad key file. */
export function securityFromFlags(f: SecurityFlags, defaultInsecure = false): Security {
  const x509 = [f["tls-cert"], f["tls-key"], f["tls-ca"]];
  const psk = f["psk-file"] !== undefined;
  const anyX509 = x509.some((v) => v !== undefined);
  if (f.insecure === true && (psk || anyX509)) throw new RealError("--insecure contradicts --psk-file/--tls-cert: choose one");
  if (psk && anyX509) throw new RealError("--psk-file and --tls-cert/--tls-key/--tls-ca are alternatives: choose one");
  if (psk) return loadPsk(f["psk-file"] ?? "");
  if (anyX509) {
    if (x509.some((v) => v === undefined)) throw new RealError("x509 needs all three of --tls-cert, --tls-key and --tls-ca");
    const [cert, key, ca] = x509.map((p, i) => readBoundedFile(p ?? "", MAX_PEM_BYTES, ["certificate", "private key", "CA certificate"][i]));
    return { kind: "x509", cert, key, ca };
  }
  if (f.insecure === true || defaultInsecure) return INSECURE;
  throw new RealError("no authentication chosen: give --psk-file FILE (both agents the same key) or --tls-cert/--tls-key/--tls-ca, or --insecure to move memory in the clear to any host that reaches the port");
}

export function loadPsk(path: string): Security {
  const text = readBoundedFile(path, MAX_KEY_FILE_BYTES, "pre-shared key file").toString("utf8").trim();
  const m = /^([\x21-\x39\x3b-\x7e]{1,128}):([0-9a-fA-F]+)$/.exec(text);
  if (m === null) throw new RealError(`${path}: a pre-shared key file is one line IDENTITY:HEXKEY (e.g. ppsim:$(openssl rand -hex 32))`);
  if (m[2].length % 2 !== 0 || m[2].length / 2 < MIN_PSK_BYTES) throw new RealError(`${path}: the key must be an even number of hex digits, at least ${MIN_PSK_BYTES} bytes`);
  return { kind: "psk", identity: m[1], key: Buffer.from(m[2], "hex") };
}

/** Options for `tls.connect` over an already connected socket, to `host`. */
export function clientTlsOptions(s: Exclude<Security, { kind: "insecure" }>, host: string): ConnectionOptions {
  if (s.kind === "psk") {
    return {
      ciphers: CIPHERS,
      minVersion: "TLSv1.2",
      pskCallback: () => ({ psk: s.key, identity: s.identity }),
      // PSK authenticates the server: no certificate to check a name against.
      checkServerIdentity: () => undefined,
    };
  }
  return { cert: s.cert, key: s.key, ca: s.ca, minVersion: "TLSv1.2", servername: isIp(host) ? undefined : host, rejectUnauthorized: true };
}

/**
 * Options for the destination's `tls.Server`. x509: the client's certificate
 * is requested, and verified here (`peerIdentity`), so that a refused one gets
 * an error frame saying why instead of a bare reset.
 */
export function serverTlsOptions(s: Exclude<Security, { kind: "insecure" }>, handshakeTimeoutMs: number): TlsOptions {
  if (s.kind === "psk") {
    return {
      ciphers: CIPHERS,
      minVersion: "TLSv1.2",
      handshakeTimeout: handshakeTimeoutMs,
      // A wrong identity gets no key: the handshake fails as for a wrong key.
      pskCallback: (_socket: TLSSocket, identity: string) => (identity === s.identity ? s.key : null),
    } as TlsOptions;
  }
  return { cert: s.cert, key: s.key, ca: s.ca, minVersion: "TLSv1.2", requestCert: true, rejectUnauthorized: false, handshakeTimeout: handshakeTimeoutMs };
}

/**
 * The authenticated name of the peer of a finished handshake, or a RealError
 * saying why it is not trusted. Every connection of a session must show the
 * same one.
 */
export function peerIdentity(socket: TLSSocket, s: Security): string {
  if (s.kind === "insecure") return "insecure";
  if (s.kind === "psk") return `psk:${s.identity}`;
  const cert: PeerCertificate | null = socket.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) throw new RealError("the source presented no certificate (give it --tls-cert/--tls-key)");
  if (!socket.authorized) throw new RealError(`the source's certificate is not trusted by this destination's --tls-ca: ${String(socket.authorizationError)}`);
  return `x509:${cert.fingerprint256}`;
}

/** A TLS failure as a sentence an operator can act on. */
export function describeTlsError(e: Error & { code?: string }, side: "source" | "destination"): string {
  const code = e.code ?? "";
  const first = e.message.split("\n")[0].replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[a-z_0-9]+:/, "").replace(/:\.\.\/deps\/.*$/, "");
  if (/BINDER_DOES_NOT_VERIFY|DECRYPT_ERROR|ALERT_ILLEGAL_PARAMETER|ALERT_DECRYPT|NO_SHARED_CIPHER|PSK_IDENTITY_NOT_FOUND|ALERT_HANDSHAKE_FAILURE|ALERT_UNKNOWN_PSK/.test(code)) {
    return `the pre-shared keys or identities differ (${first})`;
  }
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNEXPECTED_EOF|ECONNRESET/.test(code) && side === "source") {
    return `the destination does not speak TLS here, or hung up during the handshake (does it run with --insecure?): ${first}`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) return `the ${side === "source" ? "destination's" : "source's"} certificate is not trusted: ${first}`;
  if (code === "ERR_TLS_HANDSHAKE_TIMEOUT") return "the TLS handshake timed out";
  return first;
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}
