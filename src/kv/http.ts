// The HTTP/JSON API of one key-value replica (docs/kv.md has the reference with curl examples).
//
// Design note
// -----------
// Every replica accepts every request. Writes, linearizable and lease reads run on the leader:
// a follower forwards them to the leader's HTTP address (or, with followerMode 'redirect',
// answers 307 with the leader's URL). A forwarded request carries `x-synod-forwarded`, and a
// replica that receives one while not leading answers 503 instead of forwarding again, so a
// request makes at most one hop and never loops during an election.
//
// Outcomes (SAFETY.md): 503 + Retry-After only when the command was certainly not applied (no
// leader, not leader, shutting down, forwarding failed before the request was sent); 504 when it
// may have been (proposal timed out, leader lost mid-flight, forwarding broke after sending).
// A forwarded request's answer from the leader is relayed unchanged.
//
// Exactly-once writes (docs/kv.md, "Sessions"): `POST /v1/sessions` registers a session through
// the log (leader only; followers forward like a write) and answers {"session": id}. A write that
// carries `Synod-Session: id` and `Synod-Seq: n` (and optionally `Synod-Floor: f`, every seq below
// f answered; default n, i.e. one write at a time) is proposed under that (clientId, seq) instead
// of the replica's own session, so the replicated session table applies a retry at most once and
// answers it with the original result, on any replica, after a leader change too. Forwarding
// carries the three headers. A session the table does not hold (never registered, expired,
// evicted), or a seq below its floor, gets 410 SYNOD_SESSION_EXPIRED and is not executed: 410 and
// not 409, because 409 already means "CAS completed and observed another value", which a
// history checker counts as a completed operation (SAFETY.md, Checkers), whereas this command
// did not run. Malformed session headers are 400. Writes without them are unchanged.
//
// Keys and values are UTF-8 text on this interface: a key is one percent-encoded path segment,
// a value is the raw request body (PUT) or a JSON string (CAS). Limits are checked before
// anything is proposed: key <= 1 KiB (413), value <= valueBytesMax (413).
//
// Security (docs/security.md): HTTPS when `security.tls` is set (client certificates required
// with clientAuth 'cert'); with `security.tokens` every request needs `Authorization: Bearer`
// (401 otherwise; a follower forwards the header, and the leader checks it again). Limits:
// connections per remote address (429 on the first request of a connection over it, then close),
// headers within httpHeadersTimeoutMs and a body within httpBodyTimeoutMs (408), a body of at
// most httpBodyBytesMax (413); pipelined requests of one connection served at most
// httpPipelineMax at a time and while its unsent answers are within httpUnsentBytesMax, and a
// connection whose answers make no progress for httpWriteStallTimeoutMs closed (./http-pipeline.ts).
// Forwarding to the leader goes over HTTPS when this port serves it,
// presenting this replica's certificate and checking that the leader's names the leader's id.

import * as http from 'node:http';
import * as https from 'node:https';
import type * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Consistency, PeerAddress } from '../runtime/api.js';
import { hostPort } from '../transport/types.js';
import { NotLeaderError, SessionExpiredError } from '../runtime/errors.js';
import type { SynodReplica } from '../runtime/replica.js';
import type { LatencyHistogram } from '../runtime/statistics.js';
import { metricLines } from './metrics-text.js';
import { AddressCounter, bearerOf, BearerTokens, clientServerTlsOptions, REFUSING_CONNECTIONS_MAX, resolveClientLimits, type ClientLimits, type ClientSecurity } from '../security/client-auth.js';
import { replicaIdOfCertificate } from '../transport/tls.js';
import { decodeResult, deleteExisted, encodeCommand, encodeQuery, KEY_BYTES_MAX, SCAN_LIMIT_MAX, type KvCommand, type KvQuery, type KvResult } from './codec.js';
import { answerForError, type ErrorAnswer } from './errors.js';
import { FLOOR_HEADER, MEMBERSHIP_TIMEOUT_MS_DEFAULT, MEMBERSHIP_TIMEOUT_MS_MAX, SEQ_HEADER, SESSION_HEADER } from './http-client.js';
import { PipelineGate } from './http-pipeline.js';
import type { KvMachine } from './machine.js';
import { decodeBase64Strict } from './base64.js';
import { MAX_REPLICA_ID } from '../core/ballot.js';

export const FORWARDED_HEADER = 'x-synod-forwarded';
/** Exactly-once write headers (defined beside the client that sends them): session, seq, acknowledged floor. */
const SESSION_HEADERS = [SESSION_HEADER, SEQ_HEADER, FLOOR_HEADER] as const;
/** Most bytes of JSON a CAS body may hold beyond its two values (JSON escapes up to 6x). */
const CAS_BODY_OVERHEAD_BYTES = 4096;
const SCAN_LIMIT_DEFAULT = 100;
const RETRY_AFTER_S = 1;
/** How often waiting forwards are checked against this replica's view of the leader. */
const FORWARD_WATCH_MS = 50;
/** Headers of the leader's answer that a forwarding follower passes on. */
const RELAYED_HEADERS = ['content-type', 'content-length', 'retry-after', 'location', 'www-authenticate'] as const;
/** A follower forwarding a membership change waits this much longer than the change may take. */
const MEMBERSHIP_FORWARD_MARGIN_MS = 2_000;

export interface KvHttpOptions {
  replica: SynodReplica;
  machine: KvMachine;
  listen: PeerAddress;
  /** Every member's HTTP address (this one included): for forwarding, redirects and status. */
  httpAddresses: Map<number, PeerAddress>;
  /** Every member's peer address, for status. */
  peerAddresses: Map<number, PeerAddress>;
  /** What a follower does with a write or a leader read. Default 'forward'. */
  followerMode?: 'forward' | 'redirect';
  /** How long a forwarded request may take. Default: the replica's propose timeout + 2 s. */
  forwardTimeoutMs?: number;
  logger?: Logger;
  /** Extra Prometheus lines (the binary protocol server's counters). */
  extraMetrics?: () => string;
  /** HTTPS, client certificates, bearer tokens (docs/security.md). Default: plain HTTP, open. */
  security?: ClientSecurity;
  /** Per-client limits; unset fields take CLIENT_LIMITS_DEFAULT. */
  limits?: Partial<ClientLimits>;
}

/** A write's exactly-once identity, from its session headers. */
interface WriteSession {
  clientId: number;
  seq: number;
  floor: number;
}

interface Route {
  name: string;
  key?: string;
  query: URLSearchParams;
  /** The query string as sent: parameters that become bytes are decoded from it strictly (queryBytes). */
  rawQuery: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Connections (the sockets HTTP parses from) over a connection limit, and which: answered 429, then closed. */
const overLimit = new WeakMap<object, 'address' | 'total'>();
/** Each connection's pipelined requests (made at its first request). */
const gates = new WeakMap<object, PipelineGate>();

export class KvHttpServer {
  private readonly server: http.Server;
  private readonly forwardAgent: http.Agent;
  private readonly requests = new Map<string, number>();
  private forwarded = 0;
  /**
   * Forwards waiting for the leader's answer, with the leader they went to. When this replica
   * learns of another leader, they are cut short (504, or 503 if nothing was sent) instead of
   * waiting out forwardTimeoutMs on a deposed or cut-off leader: the client learns the outcome is
   * unknown in a few heartbeats and its next request goes to the new leader. (The black-box
   * harness saw write gaps of forwardTimeoutMs whenever the leader was isolated.)
   */
  private readonly forwardsWaiting = new Set<{ leader: number; abort: (why: string) => void }>();
  private forwardWatch: NodeJS.Timeout | null = null;
  /** Connections with requests open: checked for answers that make no progress (httpWriteStallTimeoutMs). */
  private readonly gatesOpen = new Set<PipelineGate>();
  private stallWatch: NodeJS.Timeout | null = null;
  private stalledConnections = 0;
  private clientErrors = 0;
  private refusedConnections = 0;
  private unauthorized = 0;
  private tlsFailures = 0;
  private readonly opts: Required<Pick<KvHttpOptions, 'followerMode' | 'forwardTimeoutMs'>> & KvHttpOptions;
  private readonly limits: ClientLimits;
  private readonly tokens: BearerTokens | null;
  private readonly perAddress: AddressCounter;
  /** Connections counted (not refused) and still open: connectionsMax's count. */
  private openConnections = 0;
  private readonly scheme: 'http' | 'https';

  constructor(options: KvHttpOptions) {
    this.opts = { followerMode: 'forward', forwardTimeoutMs: 7_000, ...options };
    this.limits = resolveClientLimits(options.limits);
    this.tokens = options.security?.tokens ? new BearerTokens(options.security.tokens) : null;
    this.perAddress = new AddressCounter(this.limits.connectionsPerAddressMax);
    const sec = options.security;
    this.scheme = sec?.tls ? 'https' : 'http';
    // Node checks both timeouts on a timer (connectionsCheckingInterval, 30 s by default): make it
    // fine enough that a slow client is cut off near its limit. The body timeout proper is
    // readBody's; requestTimeout is only the backstop for a body nobody reads.
    const serverOptions: http.ServerOptions = {
      keepAliveTimeout: 10_000,
      headersTimeout: this.limits.httpHeadersTimeoutMs,
      requestTimeout: this.limits.httpHeadersTimeoutMs + this.limits.httpBodyTimeoutMs + 1_000,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(this.limits.httpHeadersTimeoutMs / 4))),
    };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.gateOf(req.socket).admit(res, () => {
        this.handle(req, res).catch((e) => {
          this.opts.logger?.error({ err: e }, 'http handler failed');
          if (!res.headersSent) this.sendError(res, { status: 500, code: 'SYNOD_INTERNAL', message: String(e) });
          else res.destroy();
        });
      });
    };
    // Forwarded requests keep to the per-address limit of the leader (followers share its count).
    const forwardSockets = Math.max(1, Math.min(256, Math.floor(this.limits.connectionsPerAddressMax / 2)));
    if (sec?.tls) {
      this.server = https.createServer({ ...serverOptions, ...clientServerTlsOptions(sec), handshakeTimeout: this.limits.httpHeadersTimeoutMs }, onRequest);
      this.server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        this.tlsFailures++;
        this.opts.logger?.warn({ remote: s.remoteAddress, code: 'SYNOD_TLS_HANDSHAKE', error: err.message }, 'HTTPS client TLS handshake failed');
      });
      this.server.on('secureConnection', (s: tls.TLSSocket) => this.countConnection(s));
      this.forwardAgent = new https.Agent({ keepAlive: true, timeout: 4_000, maxSockets: forwardSockets, cert: sec.tls.cert, key: sec.tls.key, ...(sec.tls.ca !== undefined ? { ca: sec.tls.ca } : {}) });
    } else {
      this.server = http.createServer(serverOptions, onRequest);
      this.server.on('connection', (s: import('node:net').Socket) => this.countConnection(s));
      this.forwardAgent = new http.Agent({ keepAlive: true, timeout: 4_000, maxSockets: forwardSockets });
    }
    // Connections over connectionsMax get a 429; past this many more, Node drops them unanswered.
    this.server.maxConnections = this.limits.connectionsMax + REFUSING_CONNECTIONS_MAX;
    // A client may half-close after its request (shutdown(SHUT_WR), `socket.end(body)`): that is
    // not an abort. Node's default answers it by aborting the request in flight and closing, so a
    // PUT being replicated got no answer at all (its outcome left unknown to the client). With
    // this, Node sends the answer and then closes (test/kv/http-half-close.test.ts).
    (this.server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    // Malformed HTTP (bad request line, oversized headers...): answer 400 and close; keep serving.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const gate = gates.get(socket);
      if (gate?.isClosing) return; // the parser fails again on later bytes: counted and handled once
      this.clientErrors++;
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      // Whole requests came before the bad bytes and are not all answered: an error written now
      // would be read as the answer to one of them (a PUT applied but answered 400). Answer them,
      // then close; the bad request gets no answer.
      if (gate?.pending) {
        gate.closeAfterPending();
        return;
      }
      // Headers (or a body nobody read) not received in time: a slow or stalled client.
      const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : timedOut ? 408 : 400;
      const body = JSON.stringify(
        timedOut
          ? { error: { code: 'SYNOD_REQUEST_TIMEOUT', message: `the request headers did not arrive within ${this.limits.httpHeadersTimeoutMs} ms (httpHeadersTimeoutMs)` } }
          : { error: { code: 'SYNOD_BAD_HTTP', message: `malformed HTTP request: ${err.code ?? err.message}` } },
      );
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(
          e.code === 'EADDRINUSE'
            ? Object.assign(new Error(`HTTP port ${this.opts.listen.port} on ${this.opts.listen.host} is in use: pick another --http address`), { code: e.code, port: this.opts.listen.port, address: this.opts.listen.host, flag: '--http' })
            : e,
        );
      };
      this.server.once('error', onError);
      this.server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): PeerAddress {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Counts a connection against its address; one over the limit is marked and refused at its first request. */
  private countConnection(socket: import('node:net').Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    // A client that never sends a request on a refused connection is cut off by the headers timeout.
    if (this.openConnections >= this.limits.connectionsMax) {
      this.refusedConnections++;
      overLimit.set(socket, 'total');
      return;
    }
    if (!this.perAddress.tryAcquire(address)) {
      this.refusedConnections++;
      overLimit.set(socket, 'address');
      return;
    }
    this.openConnections++;
    socket.once('close', () => {
      this.perAddress.release(address);
      this.openConnections--;
    });
  }

  /** Refuse new connections; requests in flight still get their answers. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  async close(): Promise<void> {
    if (this.forwardWatch) clearInterval(this.forwardWatch);
    if (this.stallWatch) clearInterval(this.stallWatch);
    this.forwardAgent.destroy();
    if (!this.server.listening) {
      this.server.closeAllConnections();
      return;
    }
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- pipelining

  private gateOf(socket: import('node:net').Socket): PipelineGate {
    let gate = gates.get(socket);
    if (gate === undefined) {
      gate = new PipelineGate(socket, this.limits, (g, open) => this.watchGate(g, open));
      gates.set(socket, gate);
    }
    return gate;
  }

  /** Tracks connections with requests open; one timer checks them all for stalled answers while any is. */
  private watchGate(gate: PipelineGate, open: boolean): void {
    if (!open) {
      this.gatesOpen.delete(gate);
      return;
    }
    this.gatesOpen.add(gate);
    if (this.stallWatch) return;
    const stallMs = this.limits.httpWriteStallTimeoutMs;
    this.stallWatch = setInterval(() => {
      if (this.gatesOpen.size === 0) {
        clearInterval(this.stallWatch!);
        this.stallWatch = null;
        return;
      }
      const now = Date.now();
      for (const g of this.gatesOpen) {
        if (!g.stalled(now)) continue;
        this.gatesOpen.delete(g);
        this.stalledConnections++;
        this.opts.logger?.warn({ remote: g.socket.remoteAddress, code: 'SYNOD_WRITE_STALLED', unsentBytes: g.unsentBytes(), limit: stallMs }, 'HTTP connection closed: its answers were not read (httpWriteStallTimeoutMs)');
        g.socket.destroy();
      }
    }, Math.max(25, Math.min(1_000, Math.floor(stallMs / 4))));
    this.stallWatch.unref();
  }

  // ---------------------------------------------------------------- dispatch

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.on('finish', () => {
      const label = `${req.method ?? '?'} ${res.statusCode}`;
      this.requests.set(label, (this.requests.get(label) ?? 0) + 1);
    });
    const over = overLimit.get(req.socket);
    if (over !== undefined) {
      const total = over === 'total';
      const max = total ? this.limits.connectionsMax : this.limits.connectionsPerAddressMax;
      this.opts.logger?.warn({ remote: req.socket.remoteAddress, code: 'SYNOD_TOO_MANY_CONNECTIONS', limit: max }, total ? 'HTTP connection refused: too many open on this port' : 'HTTP connection refused: too many from one address');
      res.setHeader('connection', 'close');
      res.setHeader('retry-after', String(RETRY_AFTER_S));
      const message = total
        ? `too many connections open on this port: at most ${max} (connectionsMax); retry later`
        : `too many connections from ${req.socket.remoteAddress}: at most ${max} (connectionsPerAddressMax); reuse connections (keep-alive) or close some`;
      return this.sendError(res, { status: 429, code: 'SYNOD_TOO_MANY_CONNECTIONS', message });
    }
    if (this.tokens && !this.tokens.matches(bearerOf(req.headers.authorization))) {
      this.unauthorized++;
      // A body is not read: close the connection after answering (a bodiless request keeps it).
      if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) res.setHeader('connection', 'close');
      res.setHeader('www-authenticate', 'Bearer realm="synod"');
      const message = req.headers.authorization === undefined ? 'this server needs a bearer token: send Authorization: Bearer <token> (synod --token-file)' : 'the bearer token is not accepted';
      return this.sendError(res, { status: 401, code: 'SYNOD_UNAUTHORIZED', message });
    }
    let route: Route;
    try {
      route = parseRoute(req.url ?? '/');
    } catch (e) {
      return this.fail(req, res, e);
    }
    const method = req.method ?? 'GET';
    try {
      switch (route.name) {
        case 'kv':
          if (method === 'PUT') return await this.put(req, res, route);
          if (method === 'GET' || method === 'HEAD') return await this.get(req, res, route);
          if (method === 'DELETE') return await this.del(req, res, route);
          throw methodNotAllowed(method, 'GET, PUT, DELETE');
        case 'cas':
          if (method === 'POST') return await this.cas(req, res, route);
          throw methodNotAllowed(method, 'POST');
        case 'scan':
          if (method === 'GET') return await this.scan(req, res, route);
          throw methodNotAllowed(method, 'GET');
        case 'status':
          if (method === 'GET') return this.sendJson(res, 200, this.statusJson());
          throw methodNotAllowed(method, 'GET');
        case 'metrics':
          if (method === 'GET') {
            res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
            res.end(this.metricsText());
            return;
          }
          throw methodNotAllowed(method, 'GET');
        case 'members':
          if (method === 'GET') return this.sendJson(res, 200, { members: this.statusJson().members });
          if (method === 'POST' || method === 'DELETE') return await this.changeMembers(req, res, route, method);
          throw methodNotAllowed(method, 'GET, POST, DELETE');
        case 'transfer':
          if (method === 'POST') return await this.transfer(req, res, route);
          throw methodNotAllowed(method, 'POST');
        case 'sessions':
          if (method === 'POST') return await this.openSession(req, res);
          throw methodNotAllowed(method, 'POST');
        default:
          throw new HttpError(404, 'SYNOD_NO_ROUTE', `no route ${method} ${req.url}: see docs/kv.md`);
      }
    } catch (e) {
      return this.fail(req, res, e);
    }
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, e: unknown): void {
    if (e instanceof HttpError) {
      // Do not leave an unread body behind on a connection we keep using.
      if (!req.complete) res.setHeader('connection', 'close');
      if (e.status === 405) res.setHeader('allow', e.message.replace(/^.*allowed: /, ''));
      this.sendError(res, { status: e.status, code: e.code, message: e.message });
    } else {
      this.sendError(res, answerForError(e, false));
    }
  }

  // ---------------------------------------------------------------- routes

  private async put(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    const key = pathKey(route);
    const value = await this.readBody(req, this.opts.machine.valueBytesMax, 'value');
    await this.write(req, res, value, { op: 'put', key, value }, () => this.sendJson(res, 200, { ok: true }));
  }

  private async del(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    const key = pathKey(route);
    const body = await this.readBody(req, 0, 'body');
    await this.write(req, res, body, { op: 'delete', key }, (r) => this.sendJson(res, 200, { ok: true, existed: deleteExisted(r) }));
  }

  private async cas(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    const key = pathKey(route);
    const max = this.opts.machine.valueBytesMax;
    const body = await this.readBody(req, 12 * max + CAS_BODY_OVERHEAD_BYTES, 'CAS body');
    const encoding = encodingOf(route.query);
    const o = jsonObject(body, 'the CAS body', '{"expected": string|null, "value": string}');
    if (!('expected' in o) || !(o.expected === null || typeof o.expected === 'string')) {
      throw new HttpError(400, 'SYNOD_BAD_JSON', 'the CAS body needs "expected": a string, or null for "the key is absent"');
    }
    if (typeof o.value !== 'string') throw new HttpError(400, 'SYNOD_BAD_JSON', 'the CAS body needs "value": a string');
    const value = fieldBytes(o.value, 'value', encoding);
    const expected = o.expected === null ? null : fieldBytes(o.expected as string, 'expected', encoding);
    if (value.length > max || (expected && expected.length > max)) throw new HttpError(413, 'SYNOD_TOO_LARGE', `a CAS value exceeds ${max} bytes`);
    await this.write(req, res, body, { op: 'cas', key, expected, value }, (r) => {
      if (r.kind === 'cas-failed') this.sendJson(res, 409, { current: r.current === null ? null : fieldText(r.current, encoding) });
      else this.sendJson(res, 200, { ok: true });
    });
  }

  private async get(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    const key = pathKey(route);
    await this.readBody(req, DRAIN_BYTES_MAX, 'body');
    const consistency = consistencyOf(route.query);
    await this.readQuery(req, res, { op: 'get', key }, consistency, (r) => {
      if (r.kind === 'not-found') this.sendError(res, { status: 404, code: 'SYNOD_KV_NOT_FOUND', message: `no key ${JSON.stringify(route.key)}` });
      else {
        const value = r.kind === 'ok' && r.value ? r.value : new Uint8Array(0);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': value.length });
        res.end(req.method === 'HEAD' ? undefined : value);
      }
    });
  }

  private async scan(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    await this.readBody(req, DRAIN_BYTES_MAX, 'body');
    const encoding = encodingOf(route.query);
    // With encoding=base64 the prefix, `after` and the answer's keys and values are base64: keys
    // that are not UTF-8 (written over the binary protocol) can be listed and paged over.
    const param = (name: string): Buffer | null => {
      const bytes = queryBytes(route, name);
      return bytes === null || encoding === 'utf8' ? bytes : fieldBytes(bytes.toString('utf8'), name, 'base64');
    };
    const prefix = param('prefix') ?? Buffer.alloc(0);
    if (prefix.length > KEY_BYTES_MAX) throw new HttpError(413, 'SYNOD_TOO_LARGE', `the prefix exceeds ${KEY_BYTES_MAX} bytes`);
    // The next page: keys after the last one answered (an answer stops early past its byte limit).
    const after = param('after');
    if (after !== null && after.length > KEY_BYTES_MAX) throw new HttpError(413, 'SYNOD_TOO_LARGE', `after exceeds ${KEY_BYTES_MAX} bytes`);
    const limitText = route.query.get('limit');
    const limit = limitText === null ? SCAN_LIMIT_DEFAULT : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMIT_MAX) throw new HttpError(400, 'SYNOD_BAD_LIMIT', `limit must be an integer in 1..${SCAN_LIMIT_MAX}, got ${JSON.stringify(limitText)}`);
    await this.readQuery(req, res, { op: 'scan', prefix, limit, after }, consistencyOf(route.query), (r) => {
      if (r.kind !== 'scan') throw new Error(`scan answered ${r.kind}`);
      this.sendJson(res, 200, {
        entries: r.entries.map(([k, v]) => ({ key: fieldText(k, encoding), value: fieldText(v, encoding) })),
        more: r.more,
        ...(encoding === 'base64' ? { encoding } : {}),
      });
    });
  }

  /**
   * POST /v1/members {"id": N, "peer": "HOST:PORT"} (optionally "http" and "binary": "HOST:PORT",
   * its client addresses, replicated with the add) adds a replica (started with --join); DELETE
   * /v1/members?id=N removes one. The leader runs the change (learner, catch-up, promotion);
   * followers forward. 409 when the runtime refuses (one change at a time, no live quorum left).
   */
  private async changeMembers(req: http.IncomingMessage, res: http.ServerResponse, route: Route, method: string): Promise<void> {
    const body = await this.readBody(req, 4096, 'body');
    let id: number;
    let peer: PeerAddress | null = null;
    const endpoints: Record<string, PeerAddress> = {};
    if (method === 'POST') {
      const parsed = jsonObject(body, 'the body', '{"id": N, "peer": "HOST:PORT"}');
      // A number only: Number() would take "4", [4] or true for an id.
      id = typeof parsed.id === 'number' ? parsed.id : NaN;
      peer = hostPortField(parsed, 'peer');
      if (!peer) throw new HttpError(400, 'SYNOD_BAD_REQUEST', 'name the new replica\'s peer address: {"id": N, "peer": "HOST:PORT"}');
      // Optional: its client addresses, carried in the log with the add (it announces them itself
      // whenever it leads; these make them known from the add on, for status and `member list`).
      for (const name of ['http', 'binary'] as const) {
        if (parsed[name] === undefined) continue;
        const a = hostPortField(parsed, name);
        if (!a || a.host.length > 255) throw new HttpError(400, 'SYNOD_BAD_REQUEST', `"${name}", when given, is the new replica's ${name === 'http' ? 'HTTP' : 'binary protocol'} address: "HOST:PORT"`);
        endpoints[name] = a;
      }
    } else {
      id = Number(route.query.get('id'));
    }
    if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new HttpError(400, 'SYNOD_BAD_REQUEST', `the replica id must be an integer in 1..${MAX_REPLICA_ID}`);
    // How long the leader may take (the learner's catch-up, the configuration change); a client
    // waits longer than this for the answer (the CLI's --timeout sets it).
    const timeoutText = route.query.get('timeoutMs');
    const timeoutMs = timeoutText === null ? MEMBERSHIP_TIMEOUT_MS_DEFAULT : /^\d+$/.test(timeoutText) ? Number(timeoutText) : NaN;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MEMBERSHIP_TIMEOUT_MS_MAX) {
      throw new HttpError(400, 'SYNOD_BAD_REQUEST', `timeoutMs must be an integer in 1..${MEMBERSHIP_TIMEOUT_MS_MAX} (ms), got ${JSON.stringify(timeoutText)}`);
    }
    // Forwarded with its query: the leader applies the same timeoutMs, and this follower waits for it.
    if (!this.isLeader()) return this.toLeader(req, res, body, true, Math.max(this.opts.forwardTimeoutMs, timeoutMs + MEMBERSHIP_FORWARD_MARGIN_MS));
    try {
      if (peer) await this.opts.replica.addMember(id, peer, { timeoutMs, ...(Object.keys(endpoints).length > 0 ? { endpoints } : {}) });
      else await this.opts.replica.removeMember(id, { timeoutMs });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'SYNOD_MEMBERSHIP') throw new HttpError(409, code, (e as Error).message);
      throw e;
    }
    if (peer) this.opts.peerAddresses.set(id, peer);
    this.sendJson(res, 200, { ok: true, members: this.opts.replica.status().members });
  }

  private async transfer(req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<void> {
    const body = await this.readBody(req, 1024, 'body');
    const to = Number(route.query.get('to'));
    if (!Number.isInteger(to) || to < 1) throw new HttpError(400, 'SYNOD_BAD_REQUEST', 'name the new leader: POST /v1/leader/transfer?to=ID');
    if (!this.opts.replica.status().members.includes(to)) throw new HttpError(400, 'SYNOD_BAD_REQUEST', `replica ${to} is not a member`);
    if (!this.isLeader()) return this.toLeader(req, res, body, true);
    try {
      this.opts.replica.transferLeadership(to);
    } catch (e) {
      throw new HttpError(409, (e as { code?: string }).code ?? 'SYNOD_TRANSFER_REFUSED', (e as Error).message);
    }
    this.sendJson(res, 200, { ok: true, from: this.opts.replica.id, to });
  }

  /**
   * POST /v1/sessions: registers a session through the log (the id is the same on every replica)
   * and answers {"session": id}. Leader only, like a write: a follower forwards (or redirects).
   * 504 when the registration's outcome is unknown: a session may have been opened that nobody
   * uses; it expires by itself.
   */
  private async openSession(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await this.readBody(req, 1024, 'body');
    if (!this.isLeader()) return this.toLeader(req, res, body, true);
    let id: number;
    try {
      id = await this.opts.replica.openSession();
    } catch (e) {
      if (e instanceof NotLeaderError && e.leaderHint !== null && e.leaderHint !== this.opts.replica.id && !req.headers[FORWARDED_HEADER]) {
        return this.toLeader(req, res, body, true);
      }
      return this.sendError(res, answerForError(e, true));
    }
    this.sendJson(res, 200, { session: id });
  }

  // ---------------------------------------------------------------- the write and read paths

  private async write(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, cmd: KvCommand, reply: (r: KvResult) => void): Promise<void> {
    const session = sessionOf(req.headers);
    const refusal = this.opts.machine.checkCommand(cmd);
    if (refusal && refusal.kind === 'error') throw new HttpError(refusal.code === 1 ? 400 : 413, refusal.code === 1 ? 'SYNOD_BAD_REQUEST' : 'SYNOD_TOO_LARGE', refusal.message);
    if (!this.isLeader()) return this.toLeader(req, res, body, true);
    let result: KvResult;
    try {
      // With session headers the command goes under the client's (session, seq): a retry is
      // recognised by the replicated session table. Without, under the replica's own session.
      result = decodeResult(await this.opts.replica.propose(encodeCommand(cmd), session ?? {}));
    } catch (e) {
      // Refused before proposing (leadership moved between our check and the proposal): the
      // command was never proposed, so sending it to the new leader is safe.
      if (e instanceof NotLeaderError && e.leaderHint !== null && e.leaderHint !== this.opts.replica.id && !req.headers[FORWARDED_HEADER]) {
        return this.toLeader(req, res, body, true);
      }
      if (session !== null && e instanceof SessionExpiredError) {
        return this.sendError(res, {
          status: 410,
          code: e.code,
          message: `session ${session.clientId} is unknown, expired or evicted, or seq ${session.seq} is below its floor: this request was not executed (an earlier try of it may have been). Open a new session (POST /v1/sessions) for new writes`,
        });
      }
      return this.sendError(res, answerForError(e, true));
    }
    if (result.kind === 'error') return this.sendError(res, { status: result.code === 1 ? 400 : 413, code: 'SYNOD_KV_REFUSED', message: result.message });
    reply(result);
  }

  private async readQuery(req: http.IncomingMessage, res: http.ServerResponse, q: KvQuery, consistency: Consistency, reply: (r: KvResult) => void): Promise<void> {
    if (consistency !== 'local' && !this.isLeader()) return this.toLeader(req, res, Buffer.alloc(0), false);
    let result: KvResult;
    try {
      result = decodeResult((await this.opts.replica.read(encodeQuery(q), { consistency })).result);
    } catch (e) {
      if (e instanceof NotLeaderError && e.leaderHint !== null && e.leaderHint !== this.opts.replica.id && !req.headers[FORWARDED_HEADER]) {
        return this.toLeader(req, res, Buffer.alloc(0), false);
      }
      return this.sendError(res, answerForError(e, false));
    }
    if (result.kind === 'error') return this.sendError(res, { status: 400, code: 'SYNOD_KV_REFUSED', message: result.message });
    reply(result);
  }

  private isLeader(): boolean {
    // Not status().role: the same core role, without building the whole status (log, peers) per request.
    return this.opts.replica.isLeader();
  }

  /** Forward (or redirect) a request this follower cannot serve. Nothing was proposed here. */
  private toLeader(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, write: boolean, forwardTimeoutMs = this.opts.forwardTimeoutMs): void {
    const leader = this.opts.replica.status().leader;
    if (req.headers[FORWARDED_HEADER]) {
      return this.sendError(res, { status: 503, code: 'SYNOD_NOT_LEADER', message: `replica ${this.opts.replica.id} received a forwarded request but does not lead (an election is under way); retry`, leader, retryAfterS: RETRY_AFTER_S });
    }
    if (leader === null || leader === this.opts.replica.id) {
      return this.sendError(res, { status: 503, code: 'SYNOD_NO_LEADER', message: 'no leader is known yet (election under way or no quorum); retry shortly', leader: null, retryAfterS: RETRY_AFTER_S });
    }
    const target = this.httpAddressOf(leader);
    if (!target) {
      return this.sendError(res, { status: 503, code: 'SYNOD_NOT_LEADER', message: `replica ${leader} leads but its HTTP address is unknown here (start replicas with --initial-http); send the request to it`, leader, retryAfterS: RETRY_AFTER_S });
    }
    if (this.opts.followerMode === 'redirect') {
      res.setHeader('location', `${this.scheme}://${hostPort(target)}${req.url ?? '/'}`);
      return this.sendJson(res, 307, { leader, location: `${this.scheme}://${hostPort(target)}${req.url ?? '/'}` });
    }
    this.forward(req, res, body, leader, target, write, forwardTimeoutMs);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, leader: number, target: PeerAddress, write: boolean, timeoutMs: number): void {
    this.forwarded++;
    let sent = false;
    let settled = false;
    const headers: http.OutgoingHttpHeaders = { [FORWARDED_HEADER]: String(this.opts.replica.id), 'content-length': body.length };
    if (req.headers['content-type']) headers['content-type'] = req.headers['content-type'];
    // The leader checks the client's token itself.
    if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
    // The leader applies the write under the client's session (exactly-once retries).
    for (const name of SESSION_HEADERS) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
    const options: https.RequestOptions = { host: target.host, port: target.port, method: req.method, path: req.url, headers, agent: this.forwardAgent };
    let upstream: http.ClientRequest;
    if (this.scheme === 'https') {
      // With the cluster CA, the identity that matters is the replica id in the leader's certificate.
      if (this.opts.security?.tls?.ca !== undefined) {
        options.checkServerIdentity = (_host, cert) => (replicaIdOfCertificate(cert) === leader ? undefined : new Error(`the certificate at ${hostPort(target)} does not name replica ${leader}`));
      }
      upstream = https.request(options);
    } else {
      upstream = http.request(options);
    }
    // The deadline counts from now, not from when the agent frees a socket for it (setTimeout
    // alone is armed only then: one queued behind forwardSockets others waited twice as long).
    // The socket's idle timeout still covers relaying the answer's body.
    const deadline = setTimeout(() => upstream.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    upstream.setTimeout(timeoutMs, () => upstream.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    const waiting = { leader, abort: (why: string) => upstream.destroy(new Error(why)) };
    this.watchForward(waiting);
    upstream.once('close', () => {
      clearTimeout(deadline);
      this.forwardsWaiting.delete(waiting);
    });
    // A client that closed its connection takes its forward with it: a queued one is never sent,
    // a sent one stops holding a socket to the leader. Otherwise clients that give up on a slow
    // leader and retry grew the agent's queue, each entry holding its body, without bound.
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy(new Error('the client closed its connection'));
    });
    upstream.on('socket', (socket) => {
      // A reused keep-alive socket is already connected: the request counts as sent as soon as
      // it is written. A new one is sent only once it connects.
      if (!socket.connecting) sent = true;
      else socket.once('connect', () => (sent = true));
    });
    upstream.on('response', (answer) => {
      settled = true;
      clearTimeout(deadline);
      this.forwardsWaiting.delete(waiting);
      if (answer.statusCode === 429) {
        // The leader refused this replica's connection (its per-address limit, which the
        // followers share with other clients of their address) before reading the request:
        // certainly not applied. Relayed, the client took it for its own connection's refusal.
        answer.resume();
        const message = `the leader, replica ${leader} at ${hostPort(target)}, refused this replica's forwarding connection (too many connections from its address: connectionsPerAddressMax); nothing was executed, retry`;
        return this.sendError(res, { status: 503, code: 'SYNOD_FORWARD_REFUSED', message, leader, retryAfterS: RETRY_AFTER_S });
      }
      const out: http.OutgoingHttpHeaders = {};
      // www-authenticate: a token this replica takes and the leader does not (mid-rotation) gets the leader's 401 as documented.
      for (const name of RELAYED_HEADERS) if (answer.headers[name] !== undefined) out[name] = answer.headers[name];
      out['x-synod-served-by'] = String(leader);
      res.writeHead(answer.statusCode ?? 502, out);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (e) => {
      if (settled || res.destroyed) return res.destroy();
      settled = true;
      const where = `replica ${leader} at ${hostPort(target)}`;
      if (!sent) {
        this.sendError(res, { status: 503, code: 'SYNOD_FORWARD_FAILED', message: `could not reach the leader, ${where} (${e.message}); nothing was sent, retry`, leader, retryAfterS: RETRY_AFTER_S });
      } else if (write) {
        this.sendError(res, { status: 504, code: 'SYNOD_OUTCOME_UNKNOWN', message: `forwarded to the leader, ${where}, but the connection failed (${e.message}): the write may or may not have been applied`, leader });
      } else {
        this.sendError(res, { status: 504, code: 'SYNOD_FORWARD_FAILED', message: `forwarded to the leader, ${where}, but got no answer (${e.message})`, leader });
      }
    });
    upstream.end(body);
  }

  /**
   * Ends every forward still waiting for the leader's answer: 504 if it was sent, 503 if not. For
   * shutting down: closing the connections alone left their clients with no answer at all.
   */
  abortForwards(why: string): void {
    for (const f of [...this.forwardsWaiting]) {
      this.forwardsWaiting.delete(f);
      f.abort(why);
    }
  }

  /** Tracks a forward until it is answered; one timer checks them all while any is waiting. */
  private watchForward(w: { leader: number; abort: (why: string) => void }): void {
    this.forwardsWaiting.add(w);
    if (this.forwardWatch) return;
    this.forwardWatch = setInterval(() => {
      if (this.forwardsWaiting.size === 0) {
        clearInterval(this.forwardWatch!);
        this.forwardWatch = null;
        return;
      }
      const now = this.opts.replica.status().leader;
      if (now === null) return; // an election: the old leader may win it again
      for (const f of [...this.forwardsWaiting]) {
        if (f.leader === now) continue;
        this.forwardsWaiting.delete(f);
        f.abort(`replica ${f.leader} no longer leads (replica ${now} does)`);
      }
    }, FORWARD_WATCH_MS);
    this.forwardWatch.unref();
  }

  /**
   * Replica `id`'s HTTP address: from --initial-http (the operator's routing wins, as for peer
   * addresses), else as the replica announced it through the log (it does while it leads).
   */
  private httpAddressOf(id: number): PeerAddress | undefined {
    return this.opts.httpAddresses.get(id) ?? this.opts.replica.endpointOf(id, 'http');
  }

  // ---------------------------------------------------------------- status and metrics

  statusJson() {
    const st = this.opts.replica.status();
    const ids = new Set([...st.members, ...this.opts.peerAddresses.keys()]);
    const addr = (a: PeerAddress | undefined) => (a ? hostPort(a) : null);
    return {
      id: st.id,
      role: st.role,
      leader: st.leader,
      leaderHttp: st.leader === null ? null : addr(this.httpAddressOf(st.leader)),
      ballot: st.ballot,
      commitIndex: st.commitSlot,
      appliedIndex: st.appliedSlot,
      snapshotIndex: st.snapshotSlot,
      members: [...ids]
        .sort((a, b) => a - b)
        .map((id) => ({
          id,
          member: st.members.includes(id),
          peer: addr(this.opts.peerAddresses.get(id) ?? this.opts.replica.peerAddressOf(id)),
          http: addr(this.httpAddressOf(id)),
          connected: id === st.id ? true : st.peers[String(id)]?.connected ?? false,
        })),
      kv: this.opts.machine.stats(),
      log: st.log,
      stateDigest: st.stateDigest,
      proposalQueue: st.proposalQueue,
      removal: st.removal,
    };
  }

  metricsText(): string {
    const st = this.opts.replica.status();
    const c = this.opts.replica.counters();
    const kv = this.opts.machine.stats();
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => metricLines(lines, name, type, help, samples);
    metric('synod_is_leader', 'gauge', 'Whether this replica leads (1) or not (0).', [['', st.role === 'leader' ? 1 : 0]]);
    metric('synod_leader_id', 'gauge', 'The leader this replica knows of (0: none).', [['', st.leader ?? 0]]);
    metric('synod_member', 'gauge', 'Whether this replica is a voting member (1) or not (0: removed, or a joiner not yet added).', [['', st.members.includes(st.id) ? 1 : 0]]);
    metric('synod_removal_notified', 'gauge', 'Whether a member told this replica that it was removed while it was down (1): stop it.', [['', st.removal !== null ? 1 : 0]]);
    metric('synod_ballot', 'gauge', 'The current ballot.', [['', st.ballot]]);
    metric('synod_commit_index', 'gauge', 'The highest slot known chosen (contiguous).', [['', st.commitSlot]]);
    metric('synod_applied_index', 'gauge', 'The highest slot applied to the key-value map.', [['', st.appliedSlot]]);
    metric('synod_snapshot_index', 'gauge', 'The slot of the latest durable snapshot.', [['', st.snapshotSlot]]);
    metric('synod_log_used_bytes', 'gauge', 'Bytes used by the log.', [['', st.log.usedBytes]]);
    metric('synod_proposals_total', 'counter', 'Commands proposed here.', [['', c.proposals]]);
    metric('synod_proposals_overloaded_total', 'counter', 'Commands answered SYNOD_OVERLOADED here (refused at admission, or taken back unproposed at their deadline): never applied.', [['', c.proposalsOverloaded]]);
    metric('synod_proposal_queue_commands', 'gauge', 'Commands waiting to be proposed here (bounded by proposalQueueCommandsMax).', [['', st.proposalQueue.commands]]);
    metric('synod_proposal_queue_bytes', 'gauge', 'Payload bytes of the commands waiting to be proposed here (bounded by proposalQueueBytesMax).', [['', st.proposalQueue.bytes]]);
    metric('synod_slots_applied_total', 'counter', 'Slots applied.', [['', c.slotsApplied]]);
    metric('synod_commands_applied_total', 'counter', 'Commands applied.', [['', c.commandsApplied]]);
    metric('synod_log_commits_total', 'counter', 'Group commits of the log.', [['', c.commits]]);
    metric('synod_log_appends_total', 'counter', 'Records appended to the log.', [['', c.log.appends]]);
    metric('synod_log_flushes_total', 'counter', 'Group writes to the log (one writev, or one persist for pmem).', [['', c.log.flushes]]);
    metric('synod_log_syncs_total', 'counter', 'fdatasync (or msync/persist) calls of the log.', [['', c.log.syncs]]);
    metric('synod_log_bytes_written_total', 'counter', 'Bytes written to the log.', [['', c.log.bytesWritten]]);
    metric('synod_snapshots_taken_total', 'counter', 'Snapshots taken.', [['', c.snapshotsTaken]]);
    metric('synod_snapshots_installed_total', 'counter', 'Snapshots installed from a peer.', [['', c.snapshotsInstalled]]);
    metric('synod_snapshots_adopted_total', 'counter', "Followers' snapshots kept as this leader's own.", [['', c.snapshotsAdopted]]);
    metric('synod_state_digests_total', 'counter', 'Digests of the replicated state made here (one per digest slot applied).', [['', c.stateDigests]]);
    metric('synod_state_digests_skipped_total', 'counter', 'Digest slots skipped (a snapshot or the previous digest held the state machine\'s copy).', [['', c.stateDigestsSkipped]]);
    metric('synod_state_digest_mismatches_total', 'counter', "A peer's digest of a slot differed from this replica's: the states diverged. Alert on any increase.", [['', c.stateDigestMismatches]]);
    metric('synod_state_digest_slot', 'gauge', 'The slot of the newest digest made here (0: none yet).', [['', st.stateDigest?.slot ?? 0]]);
    const histogram = (name: string, help: string, h: LatencyHistogram) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      let cumulative = 0;
      for (let i = 0; i < h.boundsMs.length; i++) {
        cumulative += h.counts[i]!;
        lines.push(`${name}_bucket{le="${h.boundsMs[i]! / 1000}"} ${cumulative}`);
      }
      lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sumMs / 1000}`, `${name}_count ${h.count}`);
    };
    const latency = this.opts.replica.latencyHistograms();
    histogram('synod_log_commit_duration_seconds', 'One group commit of the log, from commit() to durable (write + fdatasync, or persist for pmem).', latency.logCommit);
    histogram('synod_voting_duration_seconds', 'Leading: from a slot\'s proposal to it being known chosen.', latency.voting);
    metric('synod_peer_connected', 'gauge', 'Whether the outbound connection to a peer is open.', Object.entries(st.peers).map(([p, s]) => [`{peer="${p}"}`, s.connected ? 1 : 0]));
    metric('synod_peer_dropped_frames_total', 'counter', 'Frames dropped towards a peer.', Object.entries(st.peers).map(([p, s]) => [`{peer="${p}"}`, s.droppedFrames]));
    metric('synod_kv_keys', 'gauge', 'Keys in the map.', [['', kv.keys]]);
    metric('synod_kv_bytes', 'gauge', 'Key and value bytes in the map.', [['', kv.bytes]]);
    metric('synod_kv_commands_total', 'counter', 'Commands applied to the map, by kind.', [
      ['{op="put"}', kv.puts],
      ['{op="delete"}', kv.deletes],
      ['{op="cas",swapped="true"}', kv.casSwapped],
      ['{op="cas",swapped="false"}', kv.casFailed],
      ['{op="rejected"}', kv.rejected],
    ]);
    metric(
      'synod_http_requests_total',
      'counter',
      'HTTP requests answered, by method and status code.',
      [...this.requests].map(([label, n]) => {
        const [method, code] = label.split(' ');
        return [`{method="${method}",code="${code}"}`, n];
      }),
    );
    metric('synod_http_forwarded_total', 'counter', 'Requests forwarded to the leader.', [['', this.forwarded]]);
    metric('synod_http_client_errors_total', 'counter', 'Malformed HTTP requests refused.', [['', this.clientErrors]]);
    metric('synod_http_refused_connections_total', 'counter', 'Connections refused (429): over connectionsPerAddressMax or connectionsMax.', [['', this.refusedConnections]]);
    metric('synod_http_connections_open', 'gauge', 'Client connections open on the HTTP port (connectionsMax counts these).', [['', this.openConnections]]);
    metric('synod_http_unauthorized_total', 'counter', 'Requests refused (401): no or wrong bearer token.', [['', this.unauthorized]]);
    metric('synod_http_tls_failures_total', 'counter', 'Failed TLS handshakes (no or untrusted client certificate, protocol errors).', [['', this.tlsFailures]]);
    let unsent = 0;
    let waiting = 0;
    for (const g of this.gatesOpen) {
      unsent += g.unsentBytes();
      waiting += g.waitingCount;
    }
    metric('synod_http_stalled_connections_total', 'counter', 'Connections closed because their answers waited without progress for httpWriteStallTimeoutMs (a client that does not read).', [['', this.stalledConnections]]);
    metric('synod_http_unsent_bytes', 'gauge', 'Answer bytes held for HTTP clients that have not taken them yet (socket buffers and queued answers).', [['', unsent]]);
    metric('synod_http_requests_waiting', 'gauge', 'Pipelined HTTP requests parsed and waiting to be served (httpPipelineMax, httpUnsentBytesMax).', [['', waiting]]);
    return lines.join('\n') + '\n' + (this.opts.extraMetrics?.() ?? '');
  }

  // ---------------------------------------------------------------- answers

  private readBody(req: http.IncomingMessage, routeBytesMax: number, what: string): Promise<Buffer> {
    return readBodyLimited(req, routeBytesMax, this.limits.httpBodyBytesMax, this.limits.httpBodyTimeoutMs, what);
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendError(res: http.ServerResponse, a: ErrorAnswer): void {
    if (res.headersSent) return void res.destroy();
    if (a.retryAfterS !== undefined) res.setHeader('retry-after', String(a.retryAfterS));
    const error: Record<string, unknown> = { code: a.code, message: a.message };
    if (a.leader !== undefined) error.leader = a.leader;
    this.sendJson(res, a.status, { error });
  }
}

// ---------------------------------------------------------------- parsing helpers

function parseRoute(url: string): Route {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const query = new URLSearchParams(rawQuery);
  for (const [prefix, name] of [
    ['/v1/kv/', 'kv'],
    ['/v1/cas/', 'cas'],
  ] as const) {
    if (path.startsWith(prefix)) {
      const raw = path.slice(prefix.length);
      if (raw.length === 0) throw new HttpError(400, 'SYNOD_BAD_KEY', `the key is empty: ${prefix}{key}`);
      if (raw.includes('/')) throw new HttpError(400, 'SYNOD_BAD_KEY', 'the key must be one path segment: percent-encode "/" as %2F');
      let key: string;
      try {
        key = decodeURIComponent(raw);
      } catch {
        throw new HttpError(400, 'SYNOD_BAD_KEY', `bad percent-encoding in the key ${JSON.stringify(raw.slice(0, 64))}: use %XX escapes of UTF-8 bytes`);
      }
      return { name, key, query, rawQuery };
    }
  }
  const fixed: Record<string, string> = {
    '/v1/scan': 'scan',
    '/v1/status': 'status',
    '/metrics': 'metrics',
    '/v1/members': 'members',
    '/v1/leader/transfer': 'transfer',
    '/v1/sessions': 'sessions',
  };
  return { name: fixed[path] ?? 'none', query, rawQuery };
}

/**
 * A request body that must be a JSON object (`shape` is its form, for the message): 400
 * SYNOD_BAD_JSON when it is not JSON, or is JSON null, an array, a string or a number (a check of
 * `parsed.field` on null threw, and was answered 500).
 */
function jsonObject(body: Buffer, what: string, shape: string): Record<string, unknown> {
  let text: string;
  try {
    text = STRICT_UTF8.decode(body);
  } catch {
    throw new HttpError(400, 'SYNOD_BAD_JSON', `${what} is not valid UTF-8: send ${shape} as UTF-8 text`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'SYNOD_BAD_JSON', `${what} is not valid JSON (${(e as Error).message}): send ${shape}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'SYNOD_BAD_JSON', `${what} must be a JSON object ${shape}`);
  return parsed as Record<string, unknown>;
}

/** Decodes UTF-8 or throws: Buffer.toString() and URLSearchParams put U+FFFD for bad bytes instead. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
/** A UTF-16 surrogate not part of a pair (JSON "\ud800"): with the u flag a pair is one code point and does not match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A JSON string field, refused (400 naming the field) when it holds a lone surrogate: UTF-8 would carry it as U+FFFD. */
/** A JSON body's "HOST:PORT" field as an address (a port in 1..65535), or null. */
function hostPortField(parsed: Record<string, unknown>, field: string): PeerAddress | null {
  const text = parsed[field];
  const m = typeof text === 'string' ? /^(.+):(\d{1,5})$/.exec(jsonText(text, field)) : null;
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return null;
  return { host: m[1]!, port: Number(m[2]) };
}

function jsonText(text: string, field: string): string {
  if (LONE_SURROGATE.test(text)) throw new HttpError(400, 'SYNOD_BAD_JSON', `"${field}" holds a lone UTF-16 surrogate (such as "\\ud800"), which is not text UTF-8 can carry`);
  return text;
}

/**
 * The first query parameter `name` as UTF-8 bytes, or null when absent, decoded as strictly as the
 * key in the path: bad percent-encoding or bytes that are not UTF-8 get 400 naming the parameter
 * (URLSearchParams would turn them into U+FFFD and scan for another prefix). "+" is a space, as in
 * URLSearchParams.
 */
function queryBytes(route: Route, name: string): Buffer | null {
  if (route.rawQuery === '') return null;
  for (const part of route.rawQuery.split('&')) {
    const eq = part.indexOf('=');
    const rawName = (eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' ');
    let decodedName: string;
    try {
      decodedName = decodeURIComponent(rawName);
    } catch {
      continue; // not this parameter's name, whatever it is
    }
    if (decodedName !== name) continue;
    const raw = eq < 0 ? '' : part.slice(eq + 1);
    try {
      return Buffer.from(decodeURIComponent(raw.replace(/\+/g, ' ')), 'utf8');
    } catch {
      throw new HttpError(400, 'SYNOD_BAD_REQUEST', `bad percent-encoding in ${name} ${JSON.stringify(raw.slice(0, 64))}: use %XX escapes of UTF-8 bytes`);
    }
  }
  return null;
}

/**
 * The key in the path as bytes: UTF-8 text (percent-decoded), or with ?keyEncoding=base64 base64
 * of any bytes (standard alphabet with "/" as %2F, or URL-safe), so that keys that are not UTF-8
 * can be named over HTTP too. A parameter of its own: `encoding` (CAS, scan) is about the JSON
 * fields, and giving it to the path as well would have read the keys of existing CAS calls anew.
 */
function pathKey(route: Route): Buffer {
  const text = route.key!;
  let b: Buffer;
  if (encodingOf(route.query, 'keyEncoding') === 'utf8') b = Buffer.from(text, 'utf8');
  else {
    const decoded = decodeBase64Strict(text);
    if (decoded === null) throw new HttpError(400, 'SYNOD_BAD_BASE64', 'the key in the path is not base64 (keyEncoding=base64)');
    b = decoded;
    if (b.length === 0) throw new HttpError(400, 'SYNOD_BAD_KEY', 'the key is empty (keyEncoding=base64)');
  }
  if (b.length > KEY_BYTES_MAX) throw new HttpError(413, 'SYNOD_TOO_LARGE', `the key is ${b.length} bytes; at most ${KEY_BYTES_MAX}`);
  return b;
}

/** Decimal digits of a positive safe integer: no sign, no leading zero, no spaces, at most 16 digits. */
const POSITIVE_INTEGER = /^[1-9][0-9]{0,15}$/;

/**
 * The exactly-once identity of a write from its headers, or null when it has none (a write under
 * the replica's own session, as before). 400 when they are malformed: a header repeated (Node
 * joins repeats with ", "), not a positive safe integer, one of session/seq without the other, a
 * floor without a session, or a floor above the seq (the client cannot have been answered for
 * this very request). Without Synod-Floor the floor is the seq: the client writes one at a time,
 * so the session table keeps only this request's result.
 */
function sessionOf(headers: http.IncomingHttpHeaders): WriteSession | null {
  const session = headers[SESSION_HEADER];
  const seq = headers[SEQ_HEADER];
  const floor = headers[FLOOR_HEADER];
  if (session === undefined && seq === undefined && floor === undefined) return null;
  if (session === undefined || seq === undefined) {
    throw new HttpError(400, 'SYNOD_BAD_SESSION', 'Synod-Session and Synod-Seq go together (Synod-Floor needs both): open a session with POST /v1/sessions and number its writes 1, 2, 3...');
  }
  const clientId = headerInteger('Synod-Session', session, 1);
  const n = headerInteger('Synod-Seq', seq, 1);
  const f = floor === undefined ? n : headerInteger('Synod-Floor', floor, 0);
  if (f > n) throw new HttpError(400, 'SYNOD_BAD_SESSION', `Synod-Floor (${f}) may not exceed Synod-Seq (${n}): the floor is the lowest seq not yet answered`);
  return { clientId, seq: n, floor: f };
}

function headerInteger(label: string, value: string | string[], min: 0 | 1): number {
  const text = Array.isArray(value) ? value.join(', ') : value;
  const n = Number(text);
  const ok = (POSITIVE_INTEGER.test(text) || (min === 0 && text === '0')) && Number.isSafeInteger(n);
  if (!ok) {
    const what = min === 0 ? 'a non-negative' : 'a positive';
    throw new HttpError(400, 'SYNOD_BAD_SESSION', `${label} must be ${what} integer (decimal, at most 2^53-1, sent once), got ${JSON.stringify(text.slice(0, 64))}`);
  }
  return n;
}

/** How a JSON body or answer carries bytes: UTF-8 text (the default) or base64 (?encoding=base64: any bytes). */
type FieldEncoding = 'utf8' | 'base64';

/** `encoding` (the JSON fields) or `keyEncoding` (the key in the path): utf8 by default, or base64. */
function encodingOf(query: URLSearchParams, name: 'encoding' | 'keyEncoding' = 'encoding'): FieldEncoding {
  const e = query.get(name) ?? 'utf8';
  if (e !== 'utf8' && e !== 'base64') throw new HttpError(400, 'SYNOD_BAD_ENCODING', `${name} must be utf8 or base64, got ${JSON.stringify(e)}`);
  return e;
}

/** A JSON string field (or query parameter) as bytes: UTF-8 text, or base64 checked strictly (400 naming the field). */
function fieldBytes(text: string, field: string, encoding: FieldEncoding): Buffer {
  if (encoding === 'utf8') return Buffer.from(jsonText(text, field), 'utf8');
  const decoded = decodeBase64Strict(text);
  if (decoded === null) throw new HttpError(400, 'SYNOD_BAD_BASE64', `"${field}" is not base64 (encoding=base64)`);
  return decoded;
}

function fieldText(bytes: Uint8Array, encoding: FieldEncoding): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding === 'utf8' ? 'utf8' : 'base64');
}

function consistencyOf(query: URLSearchParams): Consistency {
  const c = query.get('consistency') ?? 'linearizable';
  if (c !== 'linearizable' && c !== 'lease' && c !== 'local') {
    throw new HttpError(400, 'SYNOD_BAD_CONSISTENCY', `consistency must be linearizable, lease or local, got ${JSON.stringify(c)}`);
  }
  return c;
}

function methodNotAllowed(method: string, allowed: string): HttpError {
  return new HttpError(405, 'SYNOD_BAD_METHOD', `method ${method} is not allowed here; allowed: ${allowed}`);
}

/**
 * Reads a body, refusing (413) past `routeBytesMax` or the server's httpBodyBytesMax: from
 * Content-Length at once, or while streaming; and (408) when it is not complete within
 * httpBodyTimeoutMs. After a refusal the connection is closed (HttpError path: `connection: close`).
 */
function readBodyLimited(req: http.IncomingMessage, routeBytesMax: number, serverBytesMax: number, timeoutMs: number, what: string): Promise<Buffer> {
  const maxBytes = Math.min(routeBytesMax, serverBytesMax);
  const which = routeBytesMax <= serverBytesMax ? '' : ' (httpBodyBytesMax)';
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new HttpError(413, 'SYNOD_TOO_LARGE', `the ${what} is ${declared} bytes; at most ${maxBytes}${which}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const timer = setTimeout(() => {
      stop();
      reject(new HttpError(408, 'SYNOD_BODY_TIMEOUT', `the ${what} did not arrive within ${timeoutMs} ms (httpBodyTimeoutMs; ${size} bytes received)`));
    }, timeoutMs);
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        stop();
        req.resume();
        reject(new HttpError(413, 'SYNOD_TOO_LARGE', `the ${what} exceeds ${maxBytes} bytes${which}`));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (e: Error) => {
      stop();
      reject(e);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

const DRAIN_BYTES_MAX = 64 * 1024;

