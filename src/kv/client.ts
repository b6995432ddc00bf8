// The TypeScript client of the binary protocol (./protocol.ts).
//
//   const kv = new KvClient({ endpoints: ['127.0.0.1:7101', '127.0.0.1:7102', '127.0.0.1:7103'] });
//   await kv.put('k', 'v');  await kv.get('k');  await kv.cas('k', 'v', 'w');  kv.close();
//
// Design note
// -----------
// One connection, to the replica believed to lead; every request is a frame with its own id, so
// any number are in flight at once, and frames written in one tick leave in one socket write
// (WriteBatcher): concurrent writes are batched on the wire, and the leader batches them into
// slots. Leader discovery: a NOT_LEADER answer names the leader (and its address when the
// replica knows it); otherwise the client walks its endpoint list.
//
// Exactly-once writes: the client registers a session (REGISTER, through the log) on its first
// write and numbers its writes; a write that failed in an unknown way (connection lost after
// sending, OUTCOME_UNKNOWN) is retried with the same (clientId, seq) until it gets an answer or
// its deadline passes. The replicated session table applies it at most once and returns the
// original result. `floor` tells the replicas which results the client no longer needs. A
// session that expired (idle longer than the cluster's sessionExpiryMs) or was evicted fails the
// write with KvSessionExpiredError (it is not executed now; an earlier try may have been), and
// the next write registers a new session.
//
// Errors (typed, with stable codes): KvUnavailableError (certainly not applied: no leader
// reachable in time), KvOutcomeUnknownError (may have been applied; the deadline passed while
// retrying), KvBadRequestError, KvSessionExpiredError.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Consistency } from '../runtime/api.js';
import { FrameDecoder } from '../transport/frame.js';
import { SeqWindow } from '../core/seq-window.js';
import { CONTRACTS, invariant } from '../core/contracts.js';
import { WriteBatcher } from './write-batcher.js';
import { copyBytes, decodeResult, deleteExisted, putU32be, u32be, encodeCommand, encodeQuery, KEY_BYTES_MAX, OP_GET, OP_PUT, RES_NOT_FOUND, RES_OK, VALUE_BYTES_MAX_DEFAULT, type KvCommand, type KvResult } from './codec.js';
import {
  CONNECTION_REQUEST_ID,
  encodeAuth,
  decodeNotLeader,
  encodeRequest,
  FRAME_OVERHEAD_BYTES_MAX,
  ProtocolError,
  KIND_READ,
  KIND_REGISTER,
  KIND_WRITE,
  decodeSessionIdBody,
  ST_BAD_REQUEST,
  ST_NOT_LEADER,
  ST_OK,
  ST_OUTCOME_UNKNOWN,
  ST_SESSION_EXPIRED,
  ST_UNAVAILABLE,
  isOverloadedBody,
  OVERLOADED_PREFIX,
  type Request,
  type Response,
} from './protocol.js';

export class KvClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** True when the operation was certainly not applied. */
    readonly certain: boolean,
  ) {
    super(message);
    this.name = 'KvClientError';
  }
}
export class KvUnavailableError extends KvClientError {
  constructor(message: string) {
    super('SYNOD_KV_UNAVAILABLE', message, true);
    this.name = 'KvUnavailableError';
  }
}
export class KvOutcomeUnknownError extends KvClientError {
  constructor(message: string) {
    super('SYNOD_KV_OUTCOME_UNKNOWN', message, false);
    this.name = 'KvOutcomeUnknownError';
  }
}
export class KvBadRequestError extends KvClientError {
  constructor(message: string) {
    super('SYNOD_KV_BAD_REQUEST', message, true);
    this.name = 'KvBadRequestError';
  }
}
/** The server refused the token (or needs one): certain, and not retried. */
export class KvAuthError extends KvClientError {
  constructor(message: string) {
    super('SYNOD_KV_UNAUTHORIZED', message, true);
    this.name = 'KvAuthError';
  }
}
export class KvSessionExpiredError extends KvClientError {
  constructor(message: string) {
    super('SYNOD_KV_SESSION_EXPIRED', message, false);
    this.name = 'KvSessionExpiredError';
  }
}

/** The largest timeoutMs / attemptTimeoutMs: a Node timer's limit (2^31 - 1 ms, ~24.8 days). */
const TIME_OPTION_MS_MAX = 2 ** 31 - 1;

export interface KvClientOptions {
  /** Binary protocol addresses, "host:port". */
  endpoints: string[];
  /** Overall time limit of one operation, retries included. Default 10 s. */
  timeoutMs?: number;
  /**
   * The server's propose timeout for one attempt (its answer is awaited 1 s longer), and the time
   * allowed to set up a connection (TCP connect, TLS handshake, AUTH answer) before the next
   * endpoint is tried; both within what is left of timeoutMs. Default 5 s.
   */
  attemptTimeoutMs?: number;
  /** Largest value the cluster accepts (for the frame limit). Default 1 MiB. */
  valueBytesMax?: number;
  /**
   * TLS to the binary ports (servers started with --tls-*): `ca` is the CA to trust (PEM; the
   * cluster's ca.crt), `cert`/`key` a client certificate for servers with --client-auth cert.
   * Host names are verified as usual (put them in the server certificates: synod certs --hosts).
   */
  tls?: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'checkServerIdentity' | 'minVersion'>;
  /** Bearer token for servers started with --client-token-file: sent in an AUTH frame on every connection. */
  token?: string;
  /**
   * Most addresses kept beyond `endpoints` that NOT_LEADER answers named (a leader the list
   * lacked); past it the oldest learned one is dropped. The configured endpoints are always kept.
   * Default LEARNED_ENDPOINTS_MAX_DEFAULT (8); 0 learns none (a hint outside the list then only
   * moves the client to its next endpoint).
   */
  learnedEndpointsMax?: number;
}

/**
 * Default of KvClientOptions.learnedEndpointsMax. A learned address only saves the walk to the
 * leader: dropping one costs a hop, and the next hint names it again. The list bounds what a
 * misbehaving server (or a flapping cluster) can make the client hold and walk through when no
 * leader is known: each learned address is one more connection attempt per walk. 8 covers a
 * client given one address of a 9-replica cluster (clusters are 3 to 7 in practice; a
 * configuration may have up to 64 members, but a client given so few of them pays a hop at most).
 */
export const LEARNED_ENDPOINTS_MAX_DEFAULT = 8;

/** The longest address a hint may name to be learned: a DNS name (253) and ":65535". */
const HINT_ADDRESS_CHARS_MAX = 253 + 6;

/** How a Connection secures itself: TLS options and an AUTH token. */
interface ConnectionSecurity {
  tls?: tls.ConnectionOptions;
  token?: Uint8Array;
}

export type Bytes = Uint8Array | string;
export type CasOutcome = { swapped: true } | { swapped: false; current: Uint8Array | null };
/** A write of batch(): keys and values as strings (UTF-8) or bytes, as put(), delete() and cas() take them. */
export type KvBatchCommand =
  | { op: 'put'; key: Bytes; value: Bytes }
  | { op: 'delete'; key: Bytes }
  | { op: 'cas'; key: Bytes; expected: Bytes | null; value: Bytes };

interface Pending {
  /**
   * The answer: its status, and its body as bytes [bodyAt, bodyEnd) of `bytes` (a view of the
   * received chunk, as decodeResponse's body; read in place, so an answer costs no object).
   */
  answer(status: number, requestId: number, bytes: Uint8Array, bodyAt: number, bodyEnd: number): void;
  reject(e: Error): void;
  /** performance.now() after which the connection is given up (see Connection.sweep). */
  deadlineMs: number;
  timeoutMs: number;
}

/** A Pending that hands the answer on as a Response (request()'s promise, the connection's own requests). */
class AnswerAsResponse implements Pending {
  constructor(
    private readonly resolve: (r: Response) => void,
    readonly reject: (e: Error) => void,
    public deadlineMs: number,
    public timeoutMs: number,
  ) {}
  answer(status: number, requestId: number, bytes: Uint8Array, bodyAt: number, bodyEnd: number): void {
    this.resolve({ status, requestId, body: bytes.subarray(bodyAt, bodyEnd) });
  }
}

/**
 * The requests in flight on one connection, by request id. Ids are handed out in sequence, so a
 * ring indexed by id mod PENDING_RING_SLOTS holds nearly all of them at the cost of an array access
 * (a Map's set, get and delete cost ~70 ns a request, ~3% of the load generator's CPU per write);
 * an id whose slot is still taken (by a request PENDING_RING_SLOTS ids older, still waiting) goes
 * to a Map beside the ring.
 */
/** @internal Exported for its test against a Map. */
export class PendingTable {
  private readonly slots: Array<Pending | undefined> = new Array<Pending | undefined>(PENDING_RING_SLOTS).fill(undefined);
  private readonly slotIds = new Uint32Array(PENDING_RING_SLOTS);
  private readonly overflow = new Map<number, Pending>();
  size = 0;

  set(id: number, p: Pending): void {
    const slot = id & PENDING_RING_MASK;
    const occupant = this.slots[slot];
    if (occupant === undefined || this.slotIds[slot] === id) {
      if (occupant === undefined) this.size++;
      this.slots[slot] = p;
      this.slotIds[slot] = id;
      return;
    }
    if (!this.overflow.has(id)) this.size++;
    this.overflow.set(id, p);
  }

  /** The request `id` (removed), or undefined if none waits. */
  take(id: number): Pending | undefined {
    const slot = id & PENDING_RING_MASK;
    const p = this.slots[slot];
    if (p !== undefined && this.slotIds[slot] === id) {
      this.slots[slot] = undefined;
      this.size--;
      return p;
    }
    if (this.overflow.size === 0) return undefined;
    const q = this.overflow.get(id);
    if (q === undefined) return undefined;
    this.overflow.delete(id);
    this.size--;
    return q;
  }

  /** Removes and returns the requests whose deadline is not after `nowMs`, oldest first (`nextId`: the next id to be handed out). */
  takeExpired(nowMs: number, nextId: number): Pending[] {
    return this.takeWhere((p) => p.deadlineMs <= nowMs, nextId);
  }

  /** Removes and returns every request, oldest first. */
  takeAll(nextId: number): Pending[] {
    return this.takeWhere(() => true, nextId);
  }

  private takeWhere(test: (p: Pending) => boolean, nextId: number): Pending[] {
    const out: Pending[] = [];
    // The ring from the slot after the newest id: ids in the order they were handed out.
    for (let k = 0; k < PENDING_RING_SLOTS; k++) {
      const slot = (nextId + k) & PENDING_RING_MASK;
      const p = this.slots[slot];
      if (p === undefined || !test(p)) continue;
      this.slots[slot] = undefined;
      this.size--;
      out.push(p);
    }
    for (const [id, p] of this.overflow) {
      if (!test(p)) continue;
      this.overflow.delete(id);
      this.size--;
      out.push(p);
    }
    return out;
  }
}

/** PendingTable's ring: more than a connection's requests in flight in the benchmark (64), a power of two. */
const PENDING_RING_SLOTS = 1024;
const PENDING_RING_MASK = PENDING_RING_SLOTS - 1;

/** How often a connection looks for requests past their deadline (one timer per connection, not per request). */
const SWEEP_INTERVAL_MS = 100;

/** An answer's header: status u8 | requestId u32 (./protocol.ts). */
const RESPONSE_HEADER_BYTES = 5;

/** Time for the server to answer an AUTH frame. */
const AUTH_TIMEOUT_MS = 5_000;

const bytesOf = (b: Bytes): Uint8Array => (typeof b === 'string' ? new TextEncoder().encode(b) : b);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

/** One connection: many requests in flight, answers by request id. */
class Connection {
  readonly socket: net.Socket;
  readonly ready: Promise<void>;
  private readonly pending = new PendingTable();
  private nextId = 1;
  private readonly out: WriteBatcher;
  /** sendPut's clock: performance.now() at the start of WriteBatcher run number sendRun. */
  private sendRun = -1;
  private sendMs = 0;
  closed = false;
  /** Whether the TCP connection was ever established (a failure before is "certainly not sent"). */
  connected = false;

  /** Why the server or the socket ended the connection (refusal text or error code), for messages. */
  private endReason = '';

  constructor(
    readonly endpoint: string,
    frameBytesMax: number,
    security: ConnectionSecurity,
    /** Time for TCP connect, TLS handshake and the AUTH answer together: then the connection is given up. */
    setupTimeoutMs: number,
  ) {
    const [host, port] = splitHostPort(endpoint);
    this.socket = security.tls ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...security.tls }) : net.connect({ host, port });
    this.out = new WriteBatcher(this.socket);
    this.socket.setNoDelay(true);
    const decoder = new FrameDecoder(frameBytesMax);
    // Connection setup: TCP (or TLS) connect, then with a token one AUTH frame answered OK. The
    // connection counts as connected (requests may go) only after both.
    this.ready = new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(this.endReason ? new Error(this.endReason) : e);
      // A peer that accepts TCP and then says nothing (a frozen process: the kernel completes the
      // handshake for it) left a TLS handshake waiting forever, and an AUTH answer 5 s whatever
      // the operation's own limit: setup is bounded as one attempt is.
      let stage = security.tls ? 'TCP connect or TLS handshake not completed' : 'TCP connect not completed';
      const setup = setTimeout(() => {
        this.endReason ||= `no connection to ${endpoint} within ${setupTimeoutMs} ms (${stage})`;
        this.socket.destroy();
      }, setupTimeoutMs);
      this.socket.once('close', () => clearTimeout(setup));
      const open = () => {
        clearTimeout(setup);
        this.connected = true;
        resolve();
      };
      // A connection-level refusal (too many connections from this address) has request id 0.
      const refused = (r: Response) => {
        this.endReason = `refused by ${endpoint}: ${new TextDecoder().decode(r.body)}`;
        reject(new Error(this.endReason));
      };
      this.pending.set(CONNECTION_REQUEST_ID, new AnswerAsResponse(refused, fail, Infinity, Infinity));
      this.socket.once(security.tls ? 'secureConnect' : 'connect', () => {
        if (!security.token) return open();
        stage = 'no answer to its AUTH frame';
        const authId = this.nextId++;
        const authAnswered = (r: Response) => {
          if (r.status === ST_OK) return open();
          this.endReason = `${endpoint} refused the token: ${new TextDecoder().decode(r.body)}`;
          reject(new KvAuthError(this.endReason));
          this.socket.destroy();
        };
        this.pending.set(authId, new AnswerAsResponse(authAnswered, fail, performance.now() + AUTH_TIMEOUT_MS, AUTH_TIMEOUT_MS));
        this.socket.write(encodeAuth(authId, security.token));
      });
      this.socket.once('error', fail);
      this.socket.once('close', () => fail(new Error(`connection to ${endpoint} closed during setup`)));
    });
    this.ready.catch(() => {});
    // Answers read where they lie in the chunk (status, request id; the body as a range).
    let malformed = false;
    const onAnswer = (bytes: Uint8Array, at: number, end: number): void => {
      if (malformed) return;
      if (end - at < RESPONSE_HEADER_BYTES) {
        // A server that sends this cannot be trusted with the rest of the stream: the connection
        // goes (its requests fail over to the retry loops, as on any lost connection), the
        // process does not (a throw here would be an uncaught exception in the socket's handler).
        malformed = true;
        this.endReason ||= `malformed answer from ${endpoint}: a ${end - at}-byte frame, shorter than an answer's header`;
        this.socket.destroy(new ProtocolError(this.endReason));
        return;
      }
      const requestId = u32be(bytes, at + 1);
      const p = this.pending.take(requestId);
      if (p === undefined) return;
      p.answer(bytes[at]!, requestId, bytes, at + RESPONSE_HEADER_BYTES, end);
    };
    this.socket.on('data', (chunk: Buffer) => {
      const err = decoder.pushRanges(chunk, onAnswer);
      if (err) this.socket.destroy(err);
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!this.endReason) this.endReason = `connection to ${endpoint} failed: ${e.code ?? e.message}`;
    });
    // One sweep timer per connection instead of a timer per request (the load generator and a
    // busy client send tens of thousands of requests per second).
    const sweep = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    sweep.unref();
    this.socket.on('close', () => {
      clearInterval(sweep);
      this.closed = true;
      const e = new Error(this.endReason || `connection to ${endpoint} closed`);
      for (const p of this.pending.takeAll(this.nextId)) p.reject(e);
    });
  }

  /**
   * Sends one request; rejects if the connection drops before its answer, or if no answer comes
   * within `timeoutMs` (then the connection is closed: its other answers may be as late).
   */
  request(build: (requestId: number) => Request, timeoutMs: number): Promise<Response> {
    if (this.closed) return Promise.reject(new Error(`connection to ${this.endpoint} closed`));
    const id = this.takeId();
    return new Promise((resolve, reject) => {
      this.pending.set(id, new AnswerAsResponse(resolve, reject, performance.now() + timeoutMs, timeoutMs));
      this.out.write(encodeRequest(build(id)));
    });
  }

  /** The next request id. */
  private takeId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    return id;
  }

  /**
   * request() without a promise, for putWith(): `pending` (its deadline set here) gets the answer
   * or the failure, synchronously from the socket's handlers. The WRITE frame is encoded straight
   * into the tick's socket buffer (no frame buffer of its own, no copy at flush), and `pending`
   * learns where it lies (keepFrame), for a retry. False (nothing sent) if the connection is closed.
   */
  sendPut(clientId: number, seq: number, floor: number, attemptTimeoutMs: number, key: Uint8Array, value: Uint8Array, pending: PendingWrite, timeoutMs: number): boolean {
    if (this.closed) return false;
    const requestId = this.takeId();
    const at = this.reserveFrame(requestId, PUT_FRAME_COMMAND_AT + 1 + 4 + key.length + 4 + value.length, pending, timeoutMs);
    encodePutFrame(this.out.buffer, at, requestId, clientId, seq, floor, attemptTimeoutMs, key, value);
    return true;
  }

  /** sendPut() for getWith()'s READ frame (`maxWaitMs`: the server's wait, as attemptTimeoutMs is a write's). */
  sendGet(consistency: Consistency, key: Uint8Array, maxWaitMs: number, pending: PendingRead, timeoutMs: number): boolean {
    if (this.closed) return false;
    const requestId = this.takeId();
    const at = this.reserveFrame(requestId, GET_FRAME_QUERY_AT + 1 + 4 + key.length, pending, timeoutMs);
    encodeGetFrame(this.out.buffer, at, requestId, consistency, key, maxWaitMs);
    return true;
  }

  /** Room for a frame of `bytes` in this tick's socket write (its offset in `out.buffer`), answered to `pending`. */
  private reserveFrame(requestId: number, bytes: number, pending: FirstTry & Pending, timeoutMs: number): number {
    const at = this.out.reserve(bytes);
    pending.keepFrame(this.out.buffer, at, at + bytes);
    // One clock read per run of requests (they all leave in its socket write, at the tick's end):
    // a request's time is the run's start, earlier than its own by at most the tick.
    if (this.out.runs !== this.sendRun) {
      this.sendRun = this.out.runs;
      this.sendMs = performance.now();
    }
    pending.sentMs = this.sendMs;
    pending.deadlineMs = this.sendMs + timeoutMs;
    pending.timeoutMs = timeoutMs;
    this.pending.set(requestId, pending);
    return at;
  }

  private sweep(): void {
    if (this.pending.size === 0) return;
    const expired = this.pending.takeExpired(performance.now(), this.nextId);
    for (const p of expired) p.reject(new Error(`no answer within ${p.timeoutMs} ms`));
    if (expired.length > 0) this.socket.destroy();
  }

  get inflight(): number {
    return this.pending.size;
  }

  close(): void {
    this.socket.destroy();
  }
}

export class KvClient {
  /** The session writes go out under (0: none yet, or the last one expired). */
  private session = 0;
  private registering: Promise<number> | null = null;
  /** The configured endpoints (always kept, first), then those learned from hints (at most learnedEndpointsMax, oldest first). */
  private readonly endpoints: string[];
  private readonly configuredCount: number;
  private readonly learnedEndpointsMax: number;
  private current = 0;
  private conn: Connection | null = null;
  /** This session's write sequence numbers: the next one, those not yet answered, the floor. */
  private readonly seqs = new SeqWindow();
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  /**
   * A read's first try: the time the server is asked to wait (maxWaitMs) as a write's first try
   * asks it to propose, one attempt within the operation's limit; and the time its answer is
   * waited for, 1 s longer (it was attemptTimeoutMs + 1 s, past a shorter timeoutMs).
   */
  private readonly readFirstTryTimeoutMs: number;
  private readonly readFirstTryWaitMs: number;
  private readonly frameBytesMax: number;
  private readonly security: ConnectionSecurity;
  private closed = false;

  constructor(o: KvClientOptions) {
    if (o.endpoints.length === 0) throw new RangeError('KvClient needs at least one endpoint');
    for (const e of o.endpoints) splitHostPort(e);
    this.endpoints = [...o.endpoints];
    this.configuredCount = this.endpoints.length;
    this.learnedEndpointsMax = o.learnedEndpointsMax ?? LEARNED_ENDPOINTS_MAX_DEFAULT;
    if (!Number.isSafeInteger(this.learnedEndpointsMax) || this.learnedEndpointsMax < 0) throw new RangeError(`learnedEndpointsMax must be a non-negative integer, got ${o.learnedEndpointsMax}`);
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.attemptTimeoutMs = o.attemptTimeoutMs ?? 5_000;
    // Sent as u32 milliseconds (a write's timeoutMs, a read's maxWaitMs): out of range, the encoder threw on every try.
    for (const [name, ms] of [['timeoutMs', this.timeoutMs], ['attemptTimeoutMs', this.attemptTimeoutMs]] as const) {
      if (!Number.isFinite(ms) || ms <= 0 || ms > TIME_OPTION_MS_MAX) throw new RangeError(`${name} must be a number of milliseconds in (0, ${TIME_OPTION_MS_MAX}], got ${ms}`);
    }
    this.readFirstTryTimeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, this.timeoutMs));
    this.readFirstTryWaitMs = this.readFirstTryTimeoutMs + 1_000;
    this.frameBytesMax = (o.valueBytesMax ?? VALUE_BYTES_MAX_DEFAULT) * 2 + FRAME_OVERHEAD_BYTES_MAX;
    if (o.token !== undefined && (o.token.length === 0 || Buffer.byteLength(o.token) > 4096)) throw new RangeError('token must be 1..4096 bytes');
    this.security = { tls: o.tls ? { ...o.tls } : undefined, token: o.token === undefined ? undefined : new TextEncoder().encode(o.token) };
  }

  /** The current session id (0 before the first write, and after a session expired). */
  get clientId(): number {
    return this.session;
  }

  // ---------------------------------------------------------------- operations

  put(key: Bytes, value: Bytes): Promise<void> {
    // Not async: one promise fewer per write on the hot path (the load generator's, a busy client's).
    // write() reports bad input as a rejection, as an async function would.
    return this.write({ op: 'put', key: bytesOf(key), value: bytesOf(value) }).then(toVoid);
  }

  /** Resolves true if the key existed. */
  async delete(key: Bytes): Promise<boolean> {
    return deleteExisted(await this.write({ op: 'delete', key: bytesOf(key) }));
  }

  /** Writes `value` if the current value equals `expected` (null: if the key is absent). */
  async cas(key: Bytes, expected: Bytes | null, value: Bytes): Promise<CasOutcome> {
    const r = await this.write({ op: 'cas', key: bytesOf(key), expected: expected === null ? null : bytesOf(expected), value: bytesOf(value) });
    return r.kind === 'cas-failed' ? { swapped: false, current: r.current === null ? null : new Uint8Array(r.current) } : { swapped: true };
  }

  /** The value, or null when absent. */
  get(key: Bytes, options: { consistency?: Consistency } = {}): Promise<Uint8Array | null> {
    let query: Uint8Array;
    try {
      const k = bytesOf(key);
      checkKey(k);
      query = encodeQuery({ op: 'get', key: k });
    } catch (e) {
      return Promise.reject(e); // bad input rejects, as from an async function
    }
    return this.read(query, options.consistency ?? 'linearizable').then(valueOfGet);
  }

  /** Keys with `prefix` in byte order (after `options.after`: the next page), at most `limit` and the server's scan byte limit; `more` when others follow. */
  async scan(prefix: Bytes, limit = 100, options: { consistency?: Consistency; after?: Bytes } = {}): Promise<{ entries: Array<[Uint8Array, Uint8Array]>; more: boolean }> {
    const after = options.after === undefined ? null : bytesOf(options.after);
    const r = await this.read(encodeQuery({ op: 'scan', prefix: bytesOf(prefix), limit, after }), options.consistency ?? 'linearizable');
    if (r.kind !== 'scan') throw unexpected(r);
    return { entries: r.entries.map(([k, v]) => [new Uint8Array(k), new Uint8Array(v)]), more: r.more };
  }

  /**
   * Several writes sent together (one socket write, one or few slots). Each settles on its own;
   * the array has one outcome per command, in order.
   */
  batch(commands: KvBatchCommand[]): Promise<PromiseSettledResult<KvResult>[]> {
    return Promise.allSettled(
      commands.map((c) => {
        let command: KvCommand;
        try {
          command = commandOfBatch(c);
        } catch (e) {
          return Promise.reject(e); // settles this command alone, as write() reports bad input
        }
        return this.write(command);
      }),
    );
  }

  // ---------------------------------------------------------------- callback forms

  /**
   * put() with a callback instead of a promise, for callers that keep many writes in flight (the
   * benchmark's load generator): the same WRITE request under the same (clientId, seq, floor) and
   * the same retries (every try under one seq) as put(). `done(null)` once the write is
   * acknowledged, `done(error)` with the error put() would reject with. The first try on an open
   * connection with a session makes one object and no promise; anything else (no session yet, no
   * connection, any answer but OK, a lost connection) continues in put()'s retry loop. `done` is
   * called once, possibly synchronously from the socket's data handler, never from within putWith
   * itself, and must not throw. `key` and `value` are copied before putWith returns.
   */
  putWith(key: Uint8Array, value: Uint8Array, done: (error: Error | null) => void): void {
    try {
      checkKey(key);
    } catch (e) {
      queueMicrotask(() => done(e as Error)); // bad input, reported as put() would (asynchronously)
      return;
    }
    const seq = this.seqs.next();
    this.seqs.add(seq);
    const clientId = this.session;
    const conn = clientId !== 0 && !this.closed ? this.openConnection() : null;
    if (conn === null) {
      const command = encodeCommand({ op: 'put', key, value });
      this.writeLoop(command, seq, Date.now() + this.timeoutMs, { attempt: 0, maybeApplied: false, lastError: 'no attempt' }, clientId).then(() => done(null), done);
      return;
    }
    const floor = this.seqs.floor();
    const timeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, this.timeoutMs));
    // The overall deadline is kept as a time since the send (PendingWrite.deadline()): no clock read of its own.
    conn.sendPut(clientId, seq, floor, timeoutMs, key, value, new PendingWrite(this.callbackAnswers, conn, seq, this.timeoutMs, clientId, done), timeoutMs + 1_000);
  }

  /**
   * get() with a callback instead of a promise (see putWith): the same READ request and retries.
   * `done(null, value)` with the value, or null when the key is absent; `done(error, null)` with
   * the error get() would reject with. The value is a view of the received bytes (not copied as
   * get() does): nothing else refers to them, but holding it holds the socket chunk it came in.
   */
  getWith(key: Uint8Array, consistency: Consistency, done: (error: Error | null, value: Uint8Array | null) => void): void {
    try {
      checkKey(key);
    } catch (e) {
      queueMicrotask(() => done(e as Error, null));
      return;
    }
    const conn = this.closed ? null : this.openConnection();
    if (conn === null) {
      this.readLoop(encodeQuery({ op: 'get', key }), consistency, Date.now() + this.timeoutMs, 0, 'no attempt').then(
        (r) => deliverGet(done, r),
        (e: Error) => done(e, null),
      );
      return;
    }
    // As putWith: the frame goes straight into the socket buffer, and the overall deadline is a time
    // since the send (PendingRead.deadline()), so the first try reads no clock of its own.
    conn.sendGet(consistency, key, this.readFirstTryTimeoutMs, new PendingRead(this.callbackAnswers, conn, consistency, this.timeoutMs, done), this.readFirstTryWaitMs);
  }

  /**
   * The first answer (or failure) of putWith()/getWith(): OK completes the operation here; anything
   * else continues exactly as write()/read() do after their first try.
   */
  private readonly callbackAnswers: CallbackAnswers = {
    writeOk: (op) => {
      this.seqs.delete(op.seq);
      op.done(null);
    },
    write: (op, r) => {
      if (r.status === ST_OK) {
        this.seqs.delete(op.seq);
        let error: Error | null = null;
        try {
          okResult(r.body);
        } catch (e) {
          error = e as Error;
        }
        op.done(error);
        return;
      }
      this.writeLoop(op.command(), op.seq, op.deadline(), { attempt: 1, maybeApplied: false, lastError: 'no attempt' }, op.clientId, r).then(() => op.done(null), op.done);
    },
    writeFailed: (op, e) => {
      const state = { attempt: 1, maybeApplied: op.conn.connected, lastError: e.message };
      const deadline = op.deadline();
      this.drop(op.conn);
      this.backoff(0)
        .then(() => this.writeLoop(op.command(), op.seq, deadline, state, op.clientId))
        .then(() => op.done(null), op.done);
    },
    read: (op, r) => {
      if (r.status === ST_OK) {
        // The two answers of a GET without decodeResult's objects; anything else through okResult().
        const body = r.body;
        if (body.length >= 1 && body[0] === RES_OK) return op.done(null, body.subarray(1));
        if (body.length === 1 && body[0] === RES_NOT_FOUND) return op.done(null, null);
        let result: KvResult;
        try {
          result = okResult(r.body);
        } catch (e) {
          op.done(e as Error, null);
          return;
        }
        deliverGet(op.done, result);
        return;
      }
      this.readLoop(op.query(), op.consistency, op.deadline(), 1, 'no attempt', r).then(
        (x) => deliverGet(op.done, x),
        (e: Error) => op.done(e, null),
      );
    },
    readFailed: (op, e) => {
      const deadline = op.deadline();
      this.drop(op.conn);
      this.backoff(0)
        .then(() => this.readLoop(op.query(), op.consistency, deadline, 1, e.message))
        .then(
          (x) => deliverGet(op.done, x),
          (err: Error) => op.done(err, null),
        );
    },
  };

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = null;
  }

  // ---------------------------------------------------------------- the retry loops

  /**
   * A write with exactly-once retries under one (clientId, seq). The first try goes out at once
   * when a session and an open connection exist (no async frame: the common case, cheap); any
   * other answer, or no session or connection yet, continues in the retry loop with the same seq.
   */
  write(cmd: KvCommand): Promise<KvResult> {
    let command: Uint8Array;
    try {
      checkKey(cmd.key);
      command = encodeCommand(cmd);
      // An op that is not a write encodes to nothing (a caller without types): refused at once,
      // certain, where it used to fail on every try until the deadline as an unknown outcome.
      if (command === undefined) throw notAWrite(cmd);
    } catch (e) {
      return Promise.reject(e); // bad input rejects, as from an async function
    }
    const seq = this.seqs.next();
    this.seqs.add(seq);
    const deadline = Date.now() + this.timeoutMs;
    const clientId = this.session;
    const conn = clientId !== 0 && !this.closed ? this.openConnection() : null;
    if (conn === null) return this.writeLoop(command, seq, deadline, { attempt: 0, maybeApplied: false, lastError: 'no attempt' }, clientId);
    const floor = this.seqs.floor();
    const timeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, this.timeoutMs));
    return conn.request((requestId) => ({ kind: KIND_WRITE, requestId, clientId, seq, floor, timeoutMs, command }), timeoutMs + 1_000).then(
      (r) => {
        if (r.status === ST_OK) {
          this.seqs.delete(seq);
          return okResult(r.body);
        }
        return this.writeLoop(command, seq, deadline, { attempt: 1, maybeApplied: false, lastError: 'no attempt' }, clientId, r);
      },
      (e: unknown) => {
        const state = { attempt: 1, maybeApplied: conn.connected, lastError: (e as Error).message };
        this.drop(conn);
        return this.backoff(0).then(() => this.writeLoop(command, seq, deadline, state, clientId));
      },
    );
  }

  /**
   * The retry loop of write(): every try under the same (clientId, seq). `sessionId` is the session
   * of a try already sent (0: none sent yet, take the current one or register); `first` is an
   * answer already received for it.
   */
  private async writeLoop(command: Uint8Array, seq: number, deadline: number, state: { attempt: number; maybeApplied: boolean; lastError: string }, sessionId: number, first?: Response): Promise<KvResult> {
    try {
      if (first !== undefined) {
        const done = await this.onWriteAnswer(first, sessionId, 0, state);
        if (done !== null) return done;
      }
      // Every try of this write goes out under one session: a retry must be recognisable.
      const clientId = sessionId !== 0 ? sessionId : this.session !== 0 ? this.session : await this.register(deadline);
      for (let attempt = state.attempt; ; attempt++) {
        // Unknown only if a try may have run: a write first sent after close() certainly was not.
        if (this.closed) throw state.maybeApplied ? new KvOutcomeUnknownError('the client was closed; the write may have been applied') : new KvUnavailableError('the client was closed; the write was not applied');
        const floor = this.seqs.floor();
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        const timeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, remaining));
        // The open connection at once (no await on the hot path), else connect or back off.
        const conn = this.openConnection() ?? (await this.connectOrBackOff(attempt, deadline));
        if (typeof conn === 'string') {
          state.lastError = conn;
          continue;
        }
        let r: Response;
        try {
          r = await conn.request((requestId) => ({ kind: KIND_WRITE, requestId, clientId, seq, floor, timeoutMs, command }), timeoutMs + 1_000);
        } catch (e) {
          // Lost after sending (or maybe before): it may have been applied. Retry the same seq.
          state.maybeApplied ||= conn.connected;
          state.lastError = (e as Error).message;
          this.drop(conn);
          await this.backoff(attempt);
          continue;
        }
        const done = await this.onWriteAnswer(r, clientId, attempt, state);
        if (done !== null) return done;
      }
    } finally {
      this.seqs.delete(seq);
    }
    const { maybeApplied, lastError } = state;
    if (maybeApplied) throw new KvOutcomeUnknownError(`no answer within ${this.timeoutMs} ms; the write may have been applied (last: ${lastError})`);
    const why = lastError.startsWith(OVERLOADED_PREFIX) ? 'the leader stayed overloaded' : 'no leader reachable';
    throw new KvUnavailableError(`${why} within ${this.timeoutMs} ms; the write was not applied (last: ${lastError})`);
  }

  /** One answer to a write: its result, or null to try again (after any backoff), or a throw. */
  private async onWriteAnswer(r: Response, clientId: number, attempt: number, state: { maybeApplied: boolean; lastError: string }): Promise<KvResult | null> {
    switch (r.status) {
      case ST_OK: {
        return okResult(r.body);
      }
      case ST_NOT_LEADER:
        state.lastError = this.followHint(r.body);
        await this.backoff(attempt, true);
        return null;
      case ST_UNAVAILABLE:
        // Certainly not applied: retry. An overloaded leader is still the leader: stay on its
        // connection (rotating closed it, and every other write in flight there became unknown).
        state.lastError = new TextDecoder().decode(r.body);
        if (!isOverloadedBody(r.body)) this.rotate();
        await this.backoff(attempt);
        return null;
      case ST_OUTCOME_UNKNOWN:
        state.maybeApplied = true;
        state.lastError = new TextDecoder().decode(r.body);
        await this.backoff(attempt);
        return null;
      case ST_BAD_REQUEST:
        throw new KvBadRequestError(new TextDecoder().decode(r.body));
      case ST_SESSION_EXPIRED:
        if (this.session === clientId) this.session = 0; // later writes register a new session
        throw new KvSessionExpiredError(new TextDecoder().decode(r.body));
      default:
        throw new KvOutcomeUnknownError(`unknown answer status ${r.status}`);
    }
  }

  /** A session for the writes to come, registered once for all the writes that wait for it. */
  private register(deadline: number): Promise<number> {
    if (this.registering === null) {
      this.registering = this.registerLoop(deadline).finally(() => {
        this.registering = null;
      });
    }
    return this.registering;
  }

  /**
   * REGISTER until a leader answers or the deadline passes (then the write was never sent:
   * KvUnavailableError). A try whose answer is lost may still have opened a session: it idles
   * until it expires, harmless.
   */
  private async registerLoop(deadline: number): Promise<number> {
    let lastError = 'no attempt';
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      if (this.closed) throw new KvUnavailableError('the client was closed');
      // The open connection at once (no await on the hot path), else connect or back off.
      const conn = this.openConnection() ?? (await this.connectOrBackOff(attempt, deadline));
      if (typeof conn === 'string') {
        lastError = conn;
        continue;
      }
      const timeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, deadline - Date.now()));
      let r: Response;
      try {
        r = await conn.request((requestId) => ({ kind: KIND_REGISTER, requestId, timeoutMs }), timeoutMs + 1_000);
      } catch (e) {
        lastError = (e as Error).message;
        this.drop(conn);
        await this.backoff(attempt);
        continue;
      }
      if (r.status === ST_OK) {
        this.session = decodeSessionIdBody(r.body);
        return this.session;
      }
      if (r.status === ST_NOT_LEADER) {
        lastError = this.followHint(r.body);
        await this.backoff(attempt, true);
        continue;
      }
      if (r.status === ST_BAD_REQUEST) throw new KvBadRequestError(new TextDecoder().decode(r.body));
      lastError = new TextDecoder().decode(r.body);
      if (r.status === ST_UNAVAILABLE && !isOverloadedBody(r.body)) this.rotate();
      await this.backoff(attempt);
    }
    throw new KvUnavailableError(`no session registered within ${this.timeoutMs} ms; the write was not sent (last: ${lastError})`);
  }

  /** A read: the first try at once on an open connection (no async frame), else the retry loop. */
  private read(query: Uint8Array, consistency: Consistency): Promise<KvResult> {
    const deadline = Date.now() + this.timeoutMs;
    const conn = this.closed ? null : this.openConnection();
    if (conn === null) return this.readLoop(query, consistency, deadline, 0, 'no attempt');
    // maxWaitMs: the server gives up when this try would (0 asked for its own default, 5 s,
    // whatever the client's limit); then the retry loop goes on within what is left.
    const maxWaitMs = this.readFirstTryTimeoutMs;
    return conn.request((requestId) => ({ kind: KIND_READ, requestId, consistency, maxWaitMs, query }), this.readFirstTryWaitMs).then(
      (r) => {
        if (r.status === ST_OK) {
          return okResult(r.body);
        }
        return this.readLoop(query, consistency, deadline, 1, 'no attempt', r);
      },
      (e: unknown) => {
        this.drop(conn);
        return this.backoff(0).then(() => this.readLoop(query, consistency, deadline, 1, (e as Error).message));
      },
    );
  }

  private async readLoop(query: Uint8Array, consistency: Consistency, deadline: number, firstAttempt: number, lastErrorSoFar: string, first?: Response): Promise<KvResult> {
    const state = { lastError: lastErrorSoFar };
    if (first !== undefined) {
      const done = await this.onReadAnswer(first, 0, state);
      if (done !== null) return done;
    }
    for (let attempt = firstAttempt; Date.now() < deadline; attempt++) {
      if (this.closed) throw new KvUnavailableError('the client was closed');
      // The open connection at once (no await on the hot path), else connect or back off.
      const conn = this.openConnection() ?? (await this.connectOrBackOff(attempt, deadline));
      if (typeof conn === 'string') {
        state.lastError = conn;
        continue;
      }
      let r: Response;
      try {
        // One attempt within what is left: the server is asked to wait as long (maxWaitMs) and its answer is awaited 1 s longer.
        const timeoutMs = Math.max(100, Math.min(this.attemptTimeoutMs, deadline - Date.now()));
        r = await conn.request((requestId) => ({ kind: KIND_READ, requestId, consistency, maxWaitMs: timeoutMs, query }), timeoutMs + 1_000);
      } catch (e) {
        state.lastError = (e as Error).message;
        this.drop(conn);
        await this.backoff(attempt);
        continue;
      }
      const done = await this.onReadAnswer(r, attempt, state);
      if (done !== null) return done;
    }
    throw new KvUnavailableError(`read not answered within ${this.timeoutMs} ms (last: ${state.lastError})`);
  }

  /** One answer to a read: its result, or null to try again (after any backoff), or a throw. */
  private async onReadAnswer(r: Response, attempt: number, state: { lastError: string }): Promise<KvResult | null> {
    if (r.status === ST_OK) {
      return okResult(r.body);
    }
    if (r.status === ST_NOT_LEADER) {
      state.lastError = this.followHint(r.body);
      await this.backoff(attempt, true);
      return null;
    }
    if (r.status === ST_BAD_REQUEST) throw new KvBadRequestError(new TextDecoder().decode(r.body));
    state.lastError = new TextDecoder().decode(r.body);
    this.rotate();
    await this.backoff(attempt);
    return null;
  }


  // ---------------------------------------------------------------- connection management

  /** The current connection if it is established and open (requests may go at once), else null. */
  private openConnection(): Connection | null {
    const c = this.conn;
    return c !== null && c.connected && !c.closed ? c : null;
  }

  /**
   * Connects (or waits for the connection being set up); on failure rotates to the next endpoint,
   * backs off and returns the reason, for the caller's retry loop. Authentication failures throw.
   */
  private async connectOrBackOff(attempt: number, deadline: number): Promise<Connection | string> {
    try {
      return await this.connection(deadline);
    } catch (e) {
      if (e instanceof KvAuthError) throw e;
      this.rotate();
      await this.backoff(attempt);
      return (e as Error).message;
    }
  }

  /** The connection, set up within one attempt's time (and what is left before `deadline`). */
  private async connection(deadline: number): Promise<Connection> {
    if (this.conn && !this.conn.closed) {
      await this.conn.ready;
      return this.conn;
    }
    const endpoint = this.endpoints[this.current % this.endpoints.length]!;
    const conn = new Connection(endpoint, this.frameBytesMax, this.security, Math.max(100, Math.min(this.attemptTimeoutMs, deadline - Date.now())));
    this.conn = conn;
    try {
      await conn.ready;
    } catch (e) {
      if (this.conn === conn) this.conn = null;
      if (e instanceof KvAuthError) throw e;
      throw new Error(`cannot connect to ${endpoint}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return conn;
  }

  private drop(conn: Connection): void {
    conn.close();
    if (this.conn === conn) {
      this.conn = null;
      this.rotate();
    }
  }

  private rotate(): void {
    if (this.conn) {
      this.conn.close();
      this.conn = null;
    }
    this.current = (this.current + 1) % this.endpoints.length;
  }

  /** Switch to the leader a NOT_LEADER answer names (learning its address if new), else to the next endpoint. */
  private followHint(body: Uint8Array): string {
    const { leader, address } = decodeNotLeader(body);
    const index = address ? this.learn(address) : -1;
    if (index < 0) this.rotate();
    // learn() may have dropped the endpoint the connection goes to: compare addresses too.
    else if (index !== this.current || (this.conn !== null && this.conn.endpoint !== address)) {
      this.conn?.close();
      this.conn = null;
      this.current = index;
    }
    return leader === null ? 'no leader known yet' : `replica ${leader} leads`;
  }

  /**
   * The index of `address` in the endpoint list, added as a learned endpoint if new (dropping the
   * oldest learned one past learnedEndpointsMax); -1 when it is not a usable HOST:PORT or nothing
   * may be learned. The configured endpoints are never dropped.
   */
  private learn(address: string): number {
    const known = this.endpoints.indexOf(address);
    if (known >= 0) return known;
    if (this.learnedEndpointsMax === 0 || !isHintAddress(address)) return -1;
    if (addLearnedEndpoint(this.endpoints, this.configuredCount, this.learnedEndpointsMax, address) && this.current > this.configuredCount) this.current--;
    if (CONTRACTS) invariant(this.endpoints.length - this.configuredCount <= this.learnedEndpointsMax, 'learned endpoints within learnedEndpointsMax');
    return this.endpoints.length - 1;
  }

  private async backoff(attempt: number, hinted = false): Promise<void> {
    if (hinted && attempt < 2) return;
    await sleep(Math.min(20 * 2 ** Math.min(attempt, 5), 500) * (0.5 + Math.random() / 2));
  }
}


const toVoid = (): void => {};

/** KvClient's handlers of the first answer of a callback-form operation (bound once per client). */
interface CallbackAnswers {
  /** An OK answer with an OK result: the write is done. */
  writeOk(op: PendingWrite): void;
  write(op: PendingWrite, r: Response): void;
  writeFailed(op: PendingWrite, e: Error): void;
  read(op: PendingRead, r: Response): void;
  readFailed(op: PendingRead, e: Error): void;
}

/**
 * The first try of a putWith()/getWith() in flight: its own Pending (the connection calls
 * answer/reject), no promise or closure. Its frame was encoded straight into the socket buffer
 * (Connection.sendPut/sendGet, WriteBatcher.reserve), where the bytes stay as written.
 */
abstract class FirstTry {
  deadlineMs = 0;
  timeoutMs = 0;
  /** performance.now() when sent (Connection.reserveFrame: the time the tick's first request was encoded). */
  sentMs = 0;
  /** The frame: bytes [frameAt, frameEnd) of `frame`; the command or query is its tail, for the retry loop. */
  private frame: Uint8Array = EMPTY_BYTES;
  private frameAt = 0;
  private frameEnd = 0;
  constructor(
    /** The client's overall time limit of the operation (KvClientOptions.timeoutMs), from sentMs. */
    private readonly overallTimeoutMs: number,
  ) {}
  /** The operation's overall deadline as a Date.now() time, for the retry loop. */
  deadline(): number {
    return Date.now() + (this.sentMs + this.overallTimeoutMs - performance.now());
  }
  keepFrame(frame: Uint8Array, at: number, end: number): void {
    this.frame = frame;
    this.frameAt = at;
    this.frameEnd = end;
  }
  /** The frame's bytes from `offset` on. */
  protected tail(offset: number): Uint8Array {
    return this.frame.subarray(this.frameAt + offset, this.frameEnd);
  }
}

/** A putWith() in flight. */
class PendingWrite extends FirstTry implements Pending {
  constructor(
    private readonly on: CallbackAnswers,
    readonly conn: Connection,
    readonly seq: number,
    writeTimeoutMs: number,
    readonly clientId: number,
    readonly done: (error: Error | null) => void,
  ) {
    super(writeTimeoutMs);
  }
  command(): Uint8Array {
    return this.tail(PUT_FRAME_COMMAND_AT);
  }
  answer(status: number, requestId: number, bytes: Uint8Array, bodyAt: number, bodyEnd: number): void {
    // The common answer without objects: OK with an OK result (what okResult() accepts silently).
    if (status === ST_OK && bodyEnd > bodyAt && bytes[bodyAt] === RES_OK) this.on.writeOk(this);
    else this.on.write(this, { status, requestId, body: bytes.subarray(bodyAt, bodyEnd) });
  }
  reject(e: Error): void {
    this.on.writeFailed(this, e);
  }
}

/** A getWith() in flight. */
class PendingRead extends FirstTry implements Pending {
  constructor(
    private readonly on: CallbackAnswers,
    readonly conn: Connection,
    readonly consistency: Consistency,
    readTimeoutMs: number,
    readonly done: (error: Error | null, value: Uint8Array | null) => void,
  ) {
    super(readTimeoutMs);
  }
  query(): Uint8Array {
    return this.tail(GET_FRAME_QUERY_AT);
  }
  answer(status: number, requestId: number, bytes: Uint8Array, bodyAt: number, bodyEnd: number): void {
    this.on.read(this, { status, requestId, body: bytes.subarray(bodyAt, bodyEnd) });
  }
  reject(e: Error): void {
    this.on.readFailed(this, e);
  }
}

// putWith()/getWith()'s first try: the frame written at once (no command or query array, no
// Request object: straight into the socket buffer, WriteBatcher.reserve), byte for byte
// what encodeRequest() of encodeCommand()/encodeQuery() makes (test/bench/workers.test.ts compares
// them; test/kv/client-callbacks.test.ts checks the retries). Layouts: ./protocol.ts and ./codec.ts.
const PUT_FRAME_COMMAND_AT = 4 + 33;
const GET_FRAME_QUERY_AT = 4 + 10;
const CONSISTENCY_CODES: Record<Consistency, number> = { linearizable: 0, lease: 1, local: 2 };

/**
 * @internal A PUT's WRITE frame written into `out` at `at` (the caller has made room: 37 + 9 +
 * key and value bytes). Exported for the test that compares it with the general encoders.
 */
export function encodePutFrame(out: Uint8Array, at: number, requestId: number, clientId: number, seq: number, floor: number, timeoutMs: number, key: Uint8Array, value: Uint8Array): void {
  const commandBytes = 1 + 4 + key.length + 4 + value.length;
  putU32be(out, at, PUT_FRAME_COMMAND_AT - 4 + commandBytes);
  out[at + 4] = KIND_WRITE;
  putU32be(out, at + 5, requestId);
  putF64(out, at + 9, clientId);
  putF64(out, at + 17, seq);
  putF64(out, at + 25, floor);
  putU32be(out, at + 33, timeoutMs);
  let o = at + PUT_FRAME_COMMAND_AT;
  out[o] = OP_PUT;
  putU32be(out, o + 1, key.length);
  copyBytes(key, 0, key.length, out, o + 5);
  o += 5 + key.length;
  putU32be(out, o, value.length);
  copyBytes(value, 0, value.length, out, o + 4);
}

// Numbers written by hand (putU32be, putF64): Buffer's writeUInt32BE/writeDoubleBE check their
// arguments and bounds on every call, and a request has six numbers.
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A float64, big-endian (clientId, seq and floor are integers below 2^53, exact as doubles). */
function putF64(out: Uint8Array, at: number, v: number): void {
  F64[0] = v;
  const b = F64_BYTES;
  if (LITTLE_ENDIAN) {
    out[at] = b[7]!;
    out[at + 1] = b[6]!;
    out[at + 2] = b[5]!;
    out[at + 3] = b[4]!;
    out[at + 4] = b[3]!;
    out[at + 5] = b[2]!;
    out[at + 6] = b[1]!;
    out[at + 7] = b[0]!;
  } else for (let i = 0; i < 8; i++) out[at + i] = b[i]!;
}

const EMPTY_BYTES = new Uint8Array(0);

/** @internal A GET's READ frame at `at` of `out`: exactly encodeRequest of encodeQuery({ op: 'get', key }) with `maxWaitMs` (0: the server's default). */
export function encodeGetFrame(out: Uint8Array, at: number, requestId: number, consistency: Consistency, key: Uint8Array, maxWaitMs = 0): void {
  putU32be(out, at, GET_FRAME_QUERY_AT - 4 + 1 + 4 + key.length);
  out[at + 4] = KIND_READ;
  putU32be(out, at + 5, requestId);
  out[at + 9] = CONSISTENCY_CODES[consistency];
  putU32be(out, at + 10, maxWaitMs);
  const o = at + GET_FRAME_QUERY_AT;
  out[o] = OP_GET;
  putU32be(out, o + 1, key.length);
  copyBytes(key, 0, key.length, out, o + 5);
}

/** A GET's result to a getWith() callback: the value as a view (valueOfGet copies), or null. */
function deliverGet(done: (error: Error | null, value: Uint8Array | null) => void, r: KvResult): void {
  if (r.kind === 'not-found') return done(null, null);
  if (r.kind === 'ok') return done(null, r.value ?? new Uint8Array(0));
  done(unexpected(r), null);
}

/** The result of an OK answer; a result of kind 'error' is the server refusing the request. */
function okResult(body: Uint8Array): KvResult {
  const result = decodeResult(body);
  if (result.kind === 'error') throw new KvBadRequestError(result.message);
  return result;
}

function valueOfGet(r: KvResult): Uint8Array | null {
  if (r.kind === 'not-found') return null;
  if (r.kind === 'ok') return r.value ? new Uint8Array(r.value) : new Uint8Array(0);
  throw unexpected(r);
}

/** The refusal of an op that is not a write (a caller without types). */
function notAWrite(command: unknown): KvBadRequestError {
  return new KvBadRequestError(`not a write: op ${JSON.stringify((command as { op?: unknown }).op)} (put, delete or cas)`);
}

/**
 * A batch() write as the codec's command: strings become their UTF-8 bytes, as in put(). The codec
 * copies a key or value with Uint8Array.set, which takes a string as an array of NaNs, that is of
 * zeros: a string key was written as that many zero bytes.
 */
function commandOfBatch(c: KvBatchCommand): KvCommand {
  switch (c.op) {
    case 'put':
      return { op: 'put', key: bytesOf(c.key), value: bytesOf(c.value) };
    case 'delete':
      return { op: 'delete', key: bytesOf(c.key) };
    case 'cas':
      return { op: 'cas', key: bytesOf(c.key), expected: c.expected === null ? null : bytesOf(c.expected), value: bytesOf(c.value) };
    default:
      throw notAWrite(c);
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw new KvBadRequestError('the key is empty');
  if (key.length > KEY_BYTES_MAX) throw new KvBadRequestError(`the key is ${key.length} bytes; at most ${KEY_BYTES_MAX}`);
}

function unexpected(r: KvResult): Error {
  return new KvClientError('SYNOD_KV_PROTOCOL', `unexpected result ${r.kind}`, false);
}

/**
 * Appends a learned endpoint after the `configured` first ones (always kept), dropping the oldest
 * learned one when `learnedMax` are already there (KvClient's hints, HttpKvClient's redirects).
 * Returns whether one was dropped (the indices past `configured` moved down by one).
 */
export function addLearnedEndpoint(endpoints: string[], configured: number, learnedMax: number, address: string): boolean {
  const full = endpoints.length - configured >= learnedMax;
  if (full) endpoints.splice(configured, 1);
  endpoints.push(address);
  return full;
}

/** Whether a NOT_LEADER hint's address may be learned: HOST:PORT ([IPv6]:PORT), a port in 1..65535, no longer than a DNS name allows. */
function isHintAddress(address: string): boolean {
  if (address.length > HINT_ADDRESS_CHARS_MAX) return false;
  try {
    const port = splitHostPort(address)[1];
    return port >= 1 && port <= 65535;
  } catch {
    return false;
  }
}

function splitHostPort(e: string): [string, number] {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(e) ?? /^([^:]+):(\d+)$/.exec(e);
  if (!m) throw new RangeError(`endpoint must be host:port, got ${JSON.stringify(e)}`);
  return [m[1]!, Number(m[2])];
}
