// A small client of the HTTP API, for the CLI and the demo. It keeps to the outcome rules:
// a 503 or a refused connection is a certain failure and is retried on the next endpoint;
// a 504 or a connection lost mid-request is an unknown outcome and is reported as such. By
// default that is final: a write without session headers goes under the replica's own session,
// so a blind retry could apply it twice. With `sessions: true`, write() opens a session
// (POST /v1/sessions) and sends every write with Synod-Session / Synod-Seq / Synod-Floor; a write
// whose outcome is unknown is then retried under the same (session, seq), which the replicated
// session table applies at most once, answering the retry with the original result.

import * as http from 'node:http';
import * as https from 'node:https';
import type * as tls from 'node:tls';
import { addLearnedEndpoint, LEARNED_ENDPOINTS_MAX_DEFAULT } from './client.js';

export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly endpoint: string,
    /** An earlier try of this write may have been applied (write() with sessions): the outcome is unknown whatever the status. */
    readonly maybeApplied = false,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
  /** Certainly not applied (503, refused): safe to retry anywhere. */
  get certain(): boolean {
    return this.status === 503 || this.status === 0;
  }
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  endpoint: string;
}

export interface HttpKvClientOptions {
  /** Base URLs ("http://127.0.0.1:8001") or host:port. */
  endpoints: string[];
  /** Give up on certain failures after this long. Default 10 s. */
  timeoutMs?: number;
  /** One try's time limit, from sending to the answer's last byte. Default 15 s (over the server's propose timeout). */
  requestTimeoutMs?: number;
  /**
   * HTTPS: `ca` to trust (the cluster's ca.crt), `cert`/`key` for servers with --client-auth cert.
   * With it, endpoints given without a scheme are https://.
   */
  tls?: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'checkServerIdentity'>;
  /** Sent as `Authorization: Bearer <token>` (servers started with --client-token-file). */
  token?: string;
  /**
   * Exactly-once writes: write() opens a session first (POST /v1/sessions, once per client) and
   * retries a write whose outcome is unknown (504, connection lost after sending) under the same
   * session and seq until timeoutMs. Default false: write() sends once, like call().
   */
  sessions?: boolean;
  /**
   * Most bytes of one answer's body: past it (or when its Content-Length announces more) the try
   * fails with SYNOD_ANSWER_TOO_LARGE, an unknown outcome (504: the request was sent), and the
   * connection is closed. Default ANSWER_BYTES_MAX_DEFAULT (64 MiB); raise it for a cluster whose
   * --value-max-bytes is above ~10 MiB.
   */
  answerBytesMax?: number;
}

/**
 * Default of HttpKvClientOptions.answerBytesMax. The largest answers of a cluster with default
 * limits: a GET's raw value, at most valueBytesMax (1 MiB); a scan page, whose keys and values
 * (at most the first entry plus scanBytesMax: two of the largest entries, ~2 MiB, capped at 4 MiB
 * for larger values) are JSON strings in which a byte may take 6 (a control byte as \u0001):
 * ~12.6 MiB, plus ~25 bytes of JSON for each of at most 10,000 entries; status, members and
 * metrics are kilobytes. 64 MiB is five times the largest, and holds every answer of a cluster
 * with values up to ~10 MiB (a page of 6 x 10 MiB); it bounds what a server, or a man in the
 * middle without TLS, can make the client hold.
 */
export const ANSWER_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** The session headers (docs/kv.md, "Exactly-once writes"), lower case as Node presents them; the server (./http.ts) reads these. */
export const SESSION_HEADER = 'synod-session';
export const SEQ_HEADER = 'synod-seq';
export const FLOOR_HEADER = 'synod-floor';

/**
 * A membership change's time limit, `POST|DELETE /v1/members?timeoutMs=N` (docs/kv.md): the new
 * replica's catch-up and the configuration change. Without it the server takes
 * SynodReplica.addMember's and removeMember's own default, 60 s.
 */
export const MEMBERSHIP_TIMEOUT_MS_DEFAULT = 60_000;
export const MEMBERSHIP_TIMEOUT_MS_MAX = 3_600_000;

/** Per-request options of send() and call(). */
export interface RequestOptions {
  /** This request's time limit (each try), instead of the client's requestTimeoutMs: for calls the server may take long to answer. */
  requestTimeoutMs?: number;
}

export class HttpKvClient {
  /**
   * The configured endpoints (always kept, first), then those learned from redirects and prefer()
   * (at most LEARNED_ENDPOINTS_MAX_DEFAULT, oldest first: a server naming ever new origins in its
   * 307s grew the list without end; KvClient bounds its NOT_LEADER hints the same way).
   */
  readonly endpoints: string[];
  private readonly configuredCount: number;
  private current = 0;
  private readonly agent: http.Agent;
  private readonly httpsAgent: https.Agent | null;
  private readonly timeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly answerBytesMax: number;
  private readonly scheme: 'http' | 'https';
  private readonly authorization: string | null;
  private readonly sessions: boolean;
  /** The session of write() (0: none yet, or it expired), and the registration under way. */
  private session = 0;
  private opening: Promise<number> | null = null;
  private seq = 0;
  /** Seqs of write() not yet settled, and every seq below floorSeq has settled (see floor()). */
  private readonly outstanding = new Set<number>();
  private floorSeq = 1;

  constructor(o: HttpKvClientOptions) {
    if (o.endpoints.length === 0) throw new Error('no endpoints: pass --endpoints http://HOST:PORT,...');
    this.scheme = o.tls ? 'https' : 'http';
    this.endpoints = o.endpoints.map((e) => normalizeEndpoint(e, this.scheme));
    this.configuredCount = this.endpoints.length;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 15_000;
    this.answerBytesMax = o.answerBytesMax ?? ANSWER_BYTES_MAX_DEFAULT;
    if (!Number.isSafeInteger(this.answerBytesMax) || this.answerBytesMax < 1) throw new RangeError(`answerBytesMax must be a positive integer, got ${o.answerBytesMax}`);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 5_000 });
    this.httpsAgent = o.tls ? new https.Agent({ keepAlive: true, maxSockets: 64, timeout: 5_000, ...o.tls }) : null;
    if (o.token !== undefined && !isValidToken(o.token)) throw new RangeError(TOKEN_RULE);
    this.authorization = o.token === undefined ? null : `Bearer ${o.token}`;
    this.sessions = o.sessions ?? false;
  }

  /** The session write() uses (0 before the first write, or after the session expired). */
  get sessionId(): number {
    return this.session;
  }

  /** The options a client for another endpoint of the same cluster needs (TLS, token). */
  get sameSecurity(): Pick<HttpKvClientOptions, 'tls' | 'token'> {
    return { tls: this.httpsAgent?.options as HttpKvClientOptions['tls'], token: this.authorization?.slice('Bearer '.length) };
  }

  close(): void {
    this.agent.destroy();
    this.httpsAgent?.destroy();
  }

  /** Prefer this endpoint from now on (e.g. the leader's); a new one is learned, dropping the oldest learned one past LEARNED_ENDPOINTS_MAX_DEFAULT. */
  prefer(endpoint: string): void {
    const e = normalizeEndpoint(endpoint, this.scheme);
    let i = this.endpoints.indexOf(e);
    if (i < 0) {
      addLearnedEndpoint(this.endpoints, this.configuredCount, LEARNED_ENDPOINTS_MAX_DEFAULT, e);
      i = this.endpoints.length - 1;
    }
    this.current = i;
  }

  /**
   * Sends the request; on a certain failure (503, connection refused) tries the next endpoint
   * until timeoutMs. Returns any other answer (including 4xx and 504) to the caller.
   */
  async send(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}, options: RequestOptions = {}): Promise<HttpAnswer> {
    return this.sendUntil(Date.now() + this.timeoutMs, method, path, body, headers, options.requestTimeoutMs ?? this.requestTimeoutMs);
  }

  private async sendUntil(deadline: number, method: string, path: string, body: Buffer | string | undefined, headers: Record<string, string>, requestTimeoutMs = this.requestTimeoutMs): Promise<HttpAnswer> {
    let last: HttpStatusError | null = null;
    // 307s followed since the last other answer: a redirect is followed at once, but a run of
    // them (a loop: crossed leader hints, a wrong --initial-http) counts as one certain failure.
    let redirects = 0;
    for (let attempt = 0; ; attempt++) {
      const endpoint = this.endpoints[this.current % this.endpoints.length]!;
      try {
        const a = await this.once(endpoint, method, path, body, headers, requestTimeoutMs);
        if (a.status === 307) {
          // A 307 says the request was not executed here: whatever happens next, this try is certain.
          const loc = redirectTarget(a);
          if (loc !== null && redirects < MAX_REDIRECTS) {
            redirects++;
            this.prefer(loc);
            attempt--; // a hop, not a try: no pause
            continue;
          }
          last =
            loc === null
              ? new HttpStatusError(503, 'SYNOD_BAD_REDIRECT', `${endpoint} answered 307 without a usable Location (${JSON.stringify(a.headers.location ?? null)}); the request was not executed`, endpoint)
              : new HttpStatusError(
                  503,
                  'SYNOD_REDIRECT_LOOP',
                  `${redirects + 1} redirects in a row (the last from ${endpoint} to ${loc}): the replicas do not agree on a leader, or one's --initial-http names a wrong address; the request was not executed`,
                  endpoint,
                );
        } else if (a.status !== 503) return a;
        else last = toError(a);
      } catch (e) {
        if (!(e instanceof HttpStatusError) || !e.certain) throw e;
        last = e;
      }
      redirects = 0;
      this.current = (this.current + 1) % this.endpoints.length;
      if (Date.now() >= deadline) throw last;
      if ((attempt + 1) % this.endpoints.length === 0) await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)));
    }
  }

  /** Like send(), but a non-2xx answer other than those listed in `accept` throws HttpStatusError. */
  async call(method: string, path: string, body?: Buffer | string, accept: number[] = [], options: RequestOptions = {}): Promise<HttpAnswer> {
    const a = await this.send(method, path, body, {}, options);
    if ((a.status >= 200 && a.status < 300) || accept.includes(a.status)) return a;
    throw toError(a);
  }

  /**
   * A write (PUT, DELETE, POST /v1/cas). Without `sessions`, exactly call(). With it: under this
   * client's session, with a fresh seq; an unknown outcome (504, connection lost after sending) is
   * retried with the same session and seq (the replicas apply it at most once and answer the retry
   * with the original result) until timeoutMs; then it throws with `maybeApplied`. A session the
   * replicas no longer hold (410 SYNOD_SESSION_EXPIRED) is replaced by a new one and the write
   * sent again when no earlier try can have been applied; otherwise it throws, outcome unknown.
   */
  async write(method: string, path: string, body?: Buffer | string, accept: number[] = []): Promise<HttpAnswer> {
    if (!this.sessions) return this.call(method, path, body, accept);
    const deadline = Date.now() + this.timeoutMs;
    const seq = ++this.seq;
    this.outstanding.add(seq);
    let maybeApplied = false;
    let last: HttpStatusError | null = null;
    // Every try goes under one session: a retry must be recognisable. It changes only after a 410
    // while no try can have been applied (another write may replace this.session meanwhile).
    let session = 0;
    try {
      for (let attempt = 0; Date.now() < deadline; attempt++) {
        if (session === 0) session = this.session !== 0 ? this.session : await this.register(deadline);
        const headers = { [SESSION_HEADER]: String(session), [SEQ_HEADER]: String(seq), [FLOOR_HEADER]: String(this.floor()) };
        let a: HttpAnswer;
        try {
          a = await this.sendUntil(deadline, method, path, body, headers);
        } catch (e) {
          if (!(e instanceof HttpStatusError)) throw e;
          last = e;
          if (e.certain) break; // 503s and refusals until the deadline
          maybeApplied = true; // the connection broke after sending
          await this.retryPause(attempt);
          continue;
        }
        if ((a.status >= 200 && a.status < 300) || accept.includes(a.status)) return a;
        last = toError(a);
        if (a.status === 504) {
          maybeApplied = true;
          await this.retryPause(attempt);
          continue;
        }
        if (a.status === 410 && last.code === 'SYNOD_SESSION_EXPIRED') {
          if (this.session === session) this.session = 0; // the next write opens a new one
          if (!maybeApplied) {
            session = 0; // never executed under the old session: safe to send again under a new one
            await this.retryPause(attempt);
            continue;
          }
          throw new HttpStatusError(410, last.code, `${last.message}; an earlier try may have been applied: the outcome is unknown`, a.endpoint, true);
        }
        throw last;
      }
    } finally {
      this.outstanding.delete(seq);
    }
    if (maybeApplied) {
      throw new HttpStatusError(504, last?.code ?? 'SYNOD_OUTCOME_UNKNOWN', `no answer within ${this.timeoutMs} ms; the write may have been applied (last: ${last?.message ?? 'none'})`, last?.endpoint ?? '', true);
    }
    throw last ?? new HttpStatusError(503, 'SYNOD_UNAVAILABLE', `no replica answered within ${this.timeoutMs} ms; the write was not applied`, '');
  }

  /**
   * Registers a session (POST /v1/sessions, through the log) for write(); one registration serves
   * every write waiting for it. Retried on 503 and on an unknown outcome (a registration whose
   * answer is lost may have opened a session nobody uses: it expires by itself).
   */
  openSession(): Promise<number> {
    return this.register(Date.now() + this.timeoutMs);
  }

  private register(deadline: number): Promise<number> {
    if (this.opening === null) {
      this.opening = this.openSessionLoop(deadline).finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  private async openSessionLoop(deadline: number): Promise<number> {
    let last: HttpStatusError | null = null;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      let a: HttpAnswer;
      try {
        a = await this.sendUntil(deadline, 'POST', '/v1/sessions', undefined, {});
      } catch (e) {
        if (!(e instanceof HttpStatusError)) throw e;
        if (e.certain) throw e;
        last = e;
        await this.retryPause(attempt);
        continue;
      }
      if (a.status === 200) {
        const id = (JSON.parse(a.body.toString('utf8')) as { session?: unknown }).session;
        if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw new HttpStatusError(502, 'SYNOD_BAD_ANSWER', `POST /v1/sessions answered ${a.body.toString('utf8').slice(0, 200)}`, a.endpoint);
        this.session = id;
        return id;
      }
      last = toError(a);
      if (a.status !== 504) throw last;
      await this.retryPause(attempt);
    }
    // Nothing of the write was sent yet: a certain failure for it.
    throw new HttpStatusError(503, last?.code ?? 'SYNOD_UNAVAILABLE', `no session opened within ${this.timeoutMs} ms; the write was not sent (last: ${last?.message ?? 'none'})`, last?.endpoint ?? '');
  }

  /** After an unknown outcome: the next endpoint (the leader may have moved), after a short pause. */
  private async retryPause(attempt: number): Promise<void> {
    this.current = (this.current + 1) % this.endpoints.length;
    await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)));
  }

  /** The lowest seq not yet settled: every seq below it is answered (the replicas may drop their results). */
  private floor(): number {
    while (this.floorSeq < this.seq && !this.outstanding.has(this.floorSeq)) this.floorSeq++;
    return this.floorSeq;
  }

  private once(endpoint: string, method: string, path: string, body: Buffer | string | undefined, headers: Record<string, string>, requestTimeoutMs: number): Promise<HttpAnswer> {
    const url = new URL(path, endpoint);
    if (this.authorization !== null && headers.authorization === undefined) headers = { ...headers, authorization: this.authorization };
    const secure = url.protocol === 'https:';
    if (secure && !this.httpsAgent) throw new HttpStatusError(0, 'SYNOD_NO_TLS', `${endpoint} is HTTPS: pass the cluster CA (--ca FILE)`, endpoint);
    return new Promise((resolve, reject) => {
      let sent = false;
      // The whole try, not the silence between two bytes (req.setTimeout): a server trickling its
      // headers or body a byte at a time kept a try, and a CLI command, waiting forever.
      const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${requestTimeoutMs} ms`)), requestTimeoutMs);
      const onResponse = (res: http.IncomingMessage) => {
        // Bounded in bytes as well as in time: an endless body (a broken or hostile server, a man
        // in the middle without TLS) was held whole until requestTimeoutMs. Past the bound the
        // answer is not taken, as if the connection were lost: for a write the outcome is unknown
        // (the request was sent; a 2xx status line alone is not an answer the client can use, and
        // a 503 or 307 from a server that breaks the protocol is no more to be trusted).
        const tooLarge = (what: string) => {
          clearTimeout(timer);
          reject(
            new HttpStatusError(
              504,
              'SYNOD_ANSWER_TOO_LARGE',
              `the answer from ${endpoint} to ${method} ${url.pathname} ${what} answerBytesMax (${this.answerBytesMax} bytes): not read further, the outcome is unknown (raise answerBytesMax for a cluster with larger values)`,
              endpoint,
            ),
          );
          req.destroy();
        };
        const declared = Number(res.headers['content-length']);
        if (declared > this.answerBytesMax) return tooLarge(`announces ${declared} bytes, over`);
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes > this.answerBytesMax) return tooLarge('passes');
          chunks.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), endpoint });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(new HttpStatusError(504, 'SYNOD_CONNECTION_LOST', `connection to ${endpoint} lost while reading the answer (${e.message})`, endpoint));
        });
      };
      const req = secure ? https.request(url, { method, agent: this.httpsAgent!, headers }, onResponse) : http.request(url, { method, agent: this.agent, headers }, onResponse);
      req.on('socket', (s) => {
        if (!s.connecting) sent = true;
        // Over TLS a request is sent only once the handshake is done.
        else s.once(secure ? 'secureConnect' : 'connect', () => (sent = true));
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // The server's refusal of the client certificate comes as an alert after the client's
        // side of the handshake (TLS 1.3): HTTP never saw the request. Any other TLS error once
        // the request was sent (a damaged record) says nothing about whether it ran.
        if (!sent || e.code === 'ECONNREFUSED' || (e.code !== undefined && CERTIFICATE_REFUSED.test(e.code))) reject(new HttpStatusError(0, 'SYNOD_UNREACHABLE', `cannot reach ${endpoint}: ${e.code ?? e.message}`, endpoint));
        else reject(new HttpStatusError(504, 'SYNOD_CONNECTION_LOST', `connection to ${endpoint} lost mid-request (${e.message}): the outcome is unknown`, endpoint));
      });
      req.end(body);
    });
  }
}

/** OpenSSL's codes for a peer's alert refusing this client's certificate (certificate_required, bad_certificate, unknown_ca, access_denied, ...). */
const CERTIFICATE_REFUSED = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:\w*CERTIFICATE\w*|UNKNOWN_CA|ACCESS_DENIED)$/;

/** Redirects followed in a row before a request counts as failed (certainly not executed). */
export const MAX_REDIRECTS = 5;

/** The origin a 307 points at (Location, relative to the endpoint that answered), or null if it names none. */
function redirectTarget(a: HttpAnswer): string | null {
  const location = a.headers.location;
  if (!location) return null;
  try {
    const url = new URL(location, a.endpoint);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
  } catch {
    return null;
  }
}

function toError(a: HttpAnswer): HttpStatusError {
  let code = `HTTP_${a.status}`;
  let message = a.body.toString('utf8').slice(0, 500) || `HTTP ${a.status}`;
  try {
    const j = JSON.parse(a.body.toString('utf8')) as { error?: { code?: string; message?: string } };
    if (j.error?.code) code = j.error.code;
    if (j.error?.message) message = j.error.message;
  } catch {
    // not JSON: keep the text
  }
  return new HttpStatusError(a.status, code, message, a.endpoint);
}

export const TOKEN_RULE = 'the token must be 1..4096 printable ASCII characters without spaces';

/** Whether `token` can be sent as `Authorization: Bearer <token>` (TOKEN_RULE). */
export function isValidToken(token: string): boolean {
  return /^[\x21-\x7e]{1,4096}$/.test(token);
}

/**
 * An endpoint as a URL origin; without a scheme, `scheme` (http unless the client has TLS).
 * Throws a RangeError naming the endpoint when it is not an http(s) URL or HOST:PORT.
 */
export function normalizeEndpoint(e: string, scheme: 'http' | 'https' = 'http'): string {
  const s = e.trim();
  if (s === '') throw new RangeError('an endpoint is empty: give http://HOST:PORT or HOST:PORT');
  const given = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (given && !/^https?$/i.test(given[1]!)) throw new RangeError(`endpoint ${JSON.stringify(e)}: the scheme must be http:// or https://`);
  let url: URL;
  try {
    url = new URL(given ? s : `${scheme}://${s}`);
  } catch {
    throw new RangeError(`endpoint ${JSON.stringify(e)} is not a URL or HOST:PORT (e.g. http://127.0.0.1:8001)`);
  }
  if (url.hostname === '') throw new RangeError(`endpoint ${JSON.stringify(e)} names no host (e.g. http://127.0.0.1:8001)`);
  return url.origin;
}
