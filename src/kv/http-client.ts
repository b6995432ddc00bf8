// A small client of the HTTP API, for the CLI and the demo. It keeps to the outcome rules:
// a 503 or a refused connection is a certain failure and is retried on the next endpoint;
// a 504 or a connection lost mid-request is an unknown outcome and is reported as such (not
// retried here: the HTTP API uses the replica's own session, so a blind retry could apply a
// write twice; the binary client has sessions for that).

import * as http from 'node:http';
import * as https from 'node:https';
import type * as tls from 'node:tls';

export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly endpoint: string,
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
  /** One request's time limit. Default 15 s (over the server's propose timeout). */
  requestTimeoutMs?: number;
  /**
   * HTTPS: `ca` to trust (the cluster's ca.crt), `cert`/`key` for servers with --client-auth cert.
   * With it, endpoints given without a scheme are https://.
   */
  tls?: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'checkServerIdentity'>;
  /** Sent as `Authorization: Bearer <token>` (servers started with --client-token-file). */
  token?: string;
}

export class HttpKvClient {
  readonly endpoints: string[];
  private current = 0;
  private readonly agent: http.Agent;
  private readonly httpsAgent: https.Agent | null;
  private readonly timeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly scheme: 'http' | 'https';
  private readonly authorization: string | null;

  constructor(o: HttpKvClientOptions) {
    if (o.endpoints.length === 0) throw new Error('no endpoints: pass --endpoints http://HOST:PORT,...');
    this.scheme = o.tls ? 'https' : 'http';
    this.endpoints = o.endpoints.map((e) => normalizeEndpoint(e, this.scheme));
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 15_000;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 5_000 });
    this.httpsAgent = o.tls ? new https.Agent({ keepAlive: true, maxSockets: 64, timeout: 5_000, ...o.tls }) : null;
    if (o.token !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(o.token)) throw new RangeError('the token must be 1..4096 printable ASCII characters without spaces');
    this.authorization = o.token === undefined ? null : `Bearer ${o.token}`;
  }

  /** The options a client for another endpoint of the same cluster needs (TLS, token). */
  get sameSecurity(): Pick<HttpKvClientOptions, 'tls' | 'token'> {
    return { tls: this.httpsAgent?.options as HttpKvClientOptions['tls'], token: this.authorization?.slice('Bearer '.length) };
  }

  close(): void {
    this.agent.destroy();
    this.httpsAgent?.destroy();
  }

  /** Prefer this endpoint from now on (e.g. the leader's). */
  prefer(endpoint: string): void {
    const e = normalizeEndpoint(endpoint, this.scheme);
    let i = this.endpoints.indexOf(e);
    if (i < 0) i = this.endpoints.push(e) - 1;
    this.current = i;
  }

  /**
   * Sends the request; on a certain failure (503, connection refused) tries the next endpoint
   * until timeoutMs. Returns any other answer (including 4xx and 504) to the caller.
   */
  async send(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    const deadline = Date.now() + this.timeoutMs;
    let last: HttpStatusError | null = null;
    for (let attempt = 0; ; attempt++) {
      const endpoint = this.endpoints[this.current % this.endpoints.length]!;
      try {
        const a = await this.once(endpoint, method, path, body, headers);
        if (a.status === 307 && a.headers.location) {
          const loc = new URL(a.headers.location);
          this.prefer(loc.origin);
          continue;
        }
        if (a.status !== 503) return a;
        last = toError(a);
      } catch (e) {
        if (!(e instanceof HttpStatusError) || !e.certain) throw e;
        last = e;
      }
      this.current = (this.current + 1) % this.endpoints.length;
      if (Date.now() >= deadline) throw last;
      if ((attempt + 1) % this.endpoints.length === 0) await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)));
    }
  }

  /** Like send(), but a non-2xx answer other than those listed in `accept` throws HttpStatusError. */
  async call(method: string, path: string, body?: Buffer | string, accept: number[] = []): Promise<HttpAnswer> {
    const a = await this.send(method, path, body);
    if ((a.status >= 200 && a.status < 300) || accept.includes(a.status)) return a;
    throw toError(a);
  }

  private once(endpoint: string, method: string, path: string, body: Buffer | string | undefined, headers: Record<string, string>): Promise<HttpAnswer> {
    const url = new URL(path, endpoint);
    if (this.authorization !== null && headers.authorization === undefined) headers = { ...headers, authorization: this.authorization };
    const secure = url.protocol === 'https:';
    if (secure && !this.httpsAgent) throw new HttpStatusError(0, 'SYNOD_NO_TLS', `${endpoint} is HTTPS: pass the cluster CA (--ca FILE)`, endpoint);
    return new Promise((resolve, reject) => {
      let sent = false;
      const onResponse = (res: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), endpoint }));
        res.on('error', (e) => reject(new HttpStatusError(504, 'SYNOD_CONNECTION_LOST', `connection to ${endpoint} lost while reading the answer (${e.message})`, endpoint)));
      };
      const req = secure ? https.request(url, { method, agent: this.httpsAgent!, headers }, onResponse) : http.request(url, { method, agent: this.agent, headers }, onResponse);
      req.on('socket', (s) => {
        if (!s.connecting) sent = true;
        // Over TLS a request is sent only once the handshake is done.
        else s.once(secure ? 'secureConnect' : 'connect', () => (sent = true));
      });
      req.setTimeout(this.requestTimeoutMs, () => req.destroy(new Error(`no answer within ${this.requestTimeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        // A TLS alert (e.g. a client certificate refused) ends the handshake: HTTP never saw the request.
        if (!sent || e.code === 'ECONNREFUSED' || e.code?.startsWith('ERR_SSL_')) reject(new HttpStatusError(0, 'SYNOD_UNREACHABLE', `cannot reach ${endpoint}: ${e.code ?? e.message}`, endpoint));
        else reject(new HttpStatusError(504, 'SYNOD_CONNECTION_LOST', `connection to ${endpoint} lost mid-request (${e.message}): the outcome is unknown`, endpoint));
      });
      req.end(body);
    });
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

/** An endpoint as a URL origin; without a scheme, `scheme` (http unless the client has TLS). */
export function normalizeEndpoint(e: string, scheme: 'http' | 'https' = 'http'): string {
  const s = e.trim();
  const url = new URL(/^https?:\/\//.test(s) ? s : `${scheme}://${s}`);
  return url.origin;
}
