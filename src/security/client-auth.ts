// Client-port security: TLS for the HTTP API and the binary protocol, bearer tokens, and the
// per-client limits (docs/security.md has the threat model and the defaults).
//
// Design note
// -----------
// Both client ports share one `ClientSecurity` (TLS material, client-certificate mode, tokens)
// and one `ClientLimits`. TLS reuses the replica's certificate by default (`synod certs` puts the
// host names clients dial into it); with `clientAuth: 'cert'` a client must present a certificate
// issued by the same CA (client certificates from `synod certs`, or a replica's own, which is
// what a follower presents when it forwards a request to the leader).
//
// Tokens are compared in constant time: both sides are hashed with SHA-256 first, so
// timingSafeEqual always sees 32 bytes (it throws on a length mismatch, and a length check
// would leak the token's length), and every configured token is compared without an early exit.
//
// Connections are counted per remote address with AddressCounter; a connection over the limit
// is answered with a clear refusal (HTTP 429, binary UNAVAILABLE frame with request id 0) and
// closed, so the client learns why instead of seeing a reset.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as tls from 'node:tls';

/** Longest token accepted (in a header or a binary AUTH frame). */
export const TOKEN_BYTES_MAX = 4096;
/** Shortest token a server accepts in its token file (shorter ones are guessable). */
export const TOKEN_BYTES_MIN = 16;

export interface ClientLimits {
  /** Open connections from one remote address, per client port (HTTP and binary counted apart). */
  connectionsPerAddressMax: number;
  /** Open connections on one client port in all, whatever their address (HTTP and binary counted apart). */
  connectionsMax: number;
  /** Requests being served on one binary connection; past it the server stops reading (backpressure). */
  inflightPerConnectionMax: number;
  /** Time for a client to send the request line and headers (slowloris). */
  httpHeadersTimeoutMs: number;
  /** Time for a client to send a request body, from the end of the headers. */
  httpBodyTimeoutMs: number;
  /** Largest HTTP request body (each route also has its own bound from the value limit). */
  httpBodyBytesMax: number;
  /** Requests of one HTTP connection served at once or with answers not yet sent; later pipelined ones wait and the socket is not read. */
  httpPipelineMax: number;
  /** Answer bytes of one HTTP connection not yet taken by the client past which its next requests wait. */
  httpUnsentBytesMax: number;
  /** An HTTP connection whose answers wait and make no progress this long is closed (a client that does not read). */
  httpWriteStallTimeoutMs: number;
  /** Time for a binary client to send its AUTH frame when tokens are required. */
  binaryAuthTimeoutMs: number;
  /** Answers queued for one binary connection that its client has not read; past it the server stops reading it. */
  binaryWriteBufferBytesMax: number;
  /** A binary connection held at binaryWriteBufferBytesMax whose client reads none of its answers this long is closed. */
  binaryWriteStallTimeoutMs: number;
  /** Time for a binary frame to arrive whole once it has begun (from the end of the frame before it). */
  binaryFrameTimeoutMs: number;
  /** A binary connection with nothing in flight and no byte received or sent this long is closed. */
  binaryIdleTimeoutMs: number;
}

/**
 * Connections over a client port's connectionsMax that are still taken in to be refused with a
 * message; past this many more, the server drops new ones unanswered (a flood costs a socket each).
 */
export const REFUSING_CONNECTIONS_MAX = 256;

export const CLIENT_LIMITS_DEFAULT: Readonly<ClientLimits> = Object.freeze({
  connectionsPerAddressMax: 512,
  connectionsMax: 4096,
  inflightPerConnectionMax: 4096,
  httpHeadersTimeoutMs: 10_000,
  httpBodyTimeoutMs: 30_000,
  httpBodyBytesMax: 16 * 1024 * 1024,
  httpPipelineMax: 16,
  httpUnsentBytesMax: 1024 * 1024,
  httpWriteStallTimeoutMs: 30_000,
  binaryAuthTimeoutMs: 10_000,
  binaryWriteBufferBytesMax: 4 * 1024 * 1024,
  binaryWriteStallTimeoutMs: 30_000,
  binaryFrameTimeoutMs: 10_000,
  // Clients keep their connections (KvClient one per replica, reconnecting when one closes): long
  // enough that a client busy every few minutes keeps its connection and TLS session, short enough
  // that an abandoned one gives back its connection slot and answer buffer.
  binaryIdleTimeoutMs: 300_000,
});

const LIMIT_RANGES: Record<keyof ClientLimits, [number, number]> = {
  connectionsPerAddressMax: [1, 1_000_000],
  connectionsMax: [1, 1_000_000],
  inflightPerConnectionMax: [1, 1_000_000],
  httpHeadersTimeoutMs: [100, 3_600_000],
  httpBodyTimeoutMs: [100, 3_600_000],
  httpBodyBytesMax: [0, 1024 * 1024 * 1024],
  httpPipelineMax: [1, 65_536],
  httpUnsentBytesMax: [0, 1024 * 1024 * 1024],
  httpWriteStallTimeoutMs: [100, 3_600_000],
  binaryAuthTimeoutMs: [100, 3_600_000],
  // At least a socket's highWaterMark (16 KiB), so that a write past it is always followed by 'drain'.
  binaryWriteBufferBytesMax: [64 * 1024, 1024 * 1024 * 1024],
  binaryWriteStallTimeoutMs: [100, 3_600_000],
  binaryFrameTimeoutMs: [100, 3_600_000],
  binaryIdleTimeoutMs: [100, 86_400_000],
};

/** Defaults filled in and every value range-checked (RangeError names the setting). */
export function resolveClientLimits(partial: Partial<ClientLimits> = {}): ClientLimits {
  const out = { ...CLIENT_LIMITS_DEFAULT };
  for (const name of Object.keys(LIMIT_RANGES) as Array<keyof ClientLimits>) {
    const v = partial[name];
    if (v === undefined) continue;
    const [lo, hi] = LIMIT_RANGES[name];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in ${lo}..${hi}, got ${v}`);
    out[name] = v;
  }
  return out;
}

export interface ClientSecurity {
  /** TLS on the client ports: the server's certificate and key (PEM), and the CA for client certificates. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** 'cert': a client must present a certificate issued by `tls.ca`. Default 'none'. */
  clientAuth?: 'none' | 'cert';
  /** Bearer tokens accepted (any one of them); none: no token needed. */
  tokens?: readonly string[];
}

/** Checks a ClientSecurity for contradictions, with messages that name the flag to fix. */
export function validateClientSecurity(s: ClientSecurity | undefined): void {
  if (!s) return;
  if (s.clientAuth === 'cert') {
    if (!s.tls) throw new RangeError('--client-auth cert needs TLS on the client ports (--tls-ca/--tls-cert/--tls-key)');
    if (s.tls.ca === undefined) throw new RangeError('--client-auth cert needs a CA to verify client certificates (--tls-ca)');
  }
  if (s.clientAuth !== undefined && s.clientAuth !== 'none' && s.clientAuth !== 'cert') throw new RangeError(`clientAuth must be none or cert, got ${String(s.clientAuth)}`);
  if (s.tokens) new BearerTokens(s.tokens);
}

/** node:tls server options for a client port. */
export function clientServerTlsOptions(s: ClientSecurity): tls.TlsOptions {
  if (!s.tls) throw new RangeError('no TLS material for the client ports');
  const verify = s.clientAuth === 'cert';
  return {
    cert: s.tls.cert,
    key: s.tls.key,
    ...(s.tls.ca !== undefined ? { ca: s.tls.ca } : {}),
    // TLS 1.2 and up: clients are curl, browsers and other languages, not just this package.
    minVersion: 'TLSv1.2',
    requestCert: verify,
    rejectUnauthorized: verify,
  };
}

/** A set of accepted bearer tokens, compared in constant time. */
export class BearerTokens {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new RangeError('the token list is empty: put one token per line in the token file');
    this.digests = tokens.map((t, i) => {
      const n = Buffer.byteLength(t, 'utf8');
      if (n < TOKEN_BYTES_MIN || n > TOKEN_BYTES_MAX) throw new RangeError(`token ${i + 1} is ${n} bytes; tokens must be ${TOKEN_BYTES_MIN}..${TOKEN_BYTES_MAX} bytes (e.g. \`openssl rand -hex 32\`)`);
      if (!/^[\x21-\x7e]+$/.test(t)) throw new RangeError(`token ${i + 1} must be printable ASCII without spaces (it travels in an HTTP header)`);
      return sha256(Buffer.from(t, 'utf8'));
    });
  }

  /** Whether `presented` is one of the tokens. Time depends only on the number of tokens. */
  matches(presented: string | Uint8Array | null | undefined): boolean {
    if (presented === null || presented === undefined) return false;
    const bytes = typeof presented === 'string' ? Buffer.from(presented, 'utf8') : presented;
    if (bytes.length > TOKEN_BYTES_MAX) return false;
    const d = sha256(bytes);
    let ok = false;
    for (const t of this.digests) ok = timingSafeEqual(d, t) || ok;
    return ok;
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerOf(header: string | undefined): string | null {
  if (header === undefined || header.length > TOKEN_BYTES_MAX + 16) return null;
  const m = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i.exec(header);
  return m ? m[1]! : null;
}

/** Tokens from a file: one per line; blank lines and lines starting with '#' are skipped. */
export function readTokenFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the token file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const tokens = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (tokens.length === 0) throw new Error(`the token file ${path} holds no token: put one per line`);
  return tokens;
}

/** Open connections per remote address. */
export class AddressCounter {
  private readonly counts = new Map<string, number>();

  constructor(readonly perAddressMax: number) {
    if (!Number.isInteger(perAddressMax) || perAddressMax < 1) throw new RangeError(`perAddressMax must be a positive integer, got ${perAddressMax}`);
  }

  /** Counts one more connection from `address`; false (and nothing counted) at the limit. */
  tryAcquire(address: string): boolean {
    const n = this.counts.get(address) ?? 0;
    if (n >= this.perAddressMax) return false;
    this.counts.set(address, n + 1);
    return true;
  }

  release(address: string): void {
    const n = this.counts.get(address) ?? 0;
    if (n <= 1) this.counts.delete(address);
    else this.counts.set(address, n - 1);
  }

  count(address: string): number {
    return this.counts.get(address) ?? 0;
  }

  /** Addresses with at least one connection (a gauge for metrics). */
  get addresses(): number {
    return this.counts.size;
  }
}

function sha256(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}
