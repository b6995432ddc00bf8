// The binary client protocol server of one replica (protocol in ./protocol.ts).
//
// Each connection decodes frames with the bounded transport decoder and runs every request at
// once: proposals from many requests (and many connections) land in the replica's proposal
// queue within one event-loop turn and go out as one batch. Answers are written as they come,
// coalesced per tick into one socket write (WriteBatcher). A connection holds at most
// limits.inflightPerConnectionMax requests: past that it stops reading until answers drain
// (frames already read in the same chunk wait in a queue and start as answers go out). It also
// stops reading while more than limits.binaryWriteBufferBytesMax of its answers are unread by the
// client, and is dropped if the client takes none of them for limits.binaryWriteStallTimeoutMs.
//
// Connection setup (docs/security.md): optional TLS (ClientSecurity.tls), at most
// limits.connectionsPerAddressMax connections per remote address (over it: one UNAVAILABLE frame
// with request id 0, then close), and with tokens an AUTH frame first (authenticate()).
// Timeouts: a frame begun must be whole within limits.binaryFrameTimeoutMs, and a connection with
// nothing to do is closed after limits.binaryIdleTimeoutMs (each one UNAVAILABLE frame, id 0).
//
// This server never forwards: a follower answers NOT_LEADER with the leader's id and (when
// known) its binary address, and the client goes there. Nothing was proposed in that case.

import * as diagnostics from 'node:diagnostics_channel';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { PeerAddress } from '../runtime/api.js';
import { hostPort } from '../transport/types.js';
import { NotLeaderError, OutcomeUnknownError, OverloadedError, SessionExpiredError, ShuttingDownError, StorageFailedError, StoppedError, SynodError } from '../runtime/errors.js';
import type { SynodReplica } from '../runtime/replica.js';
import { AddressCounter, BearerTokens, clientServerTlsOptions, REFUSING_CONNECTIONS_MAX, resolveClientLimits, TOKEN_BYTES_MAX, type ClientLimits, type ClientSecurity } from '../security/client-auth.js';
import { metricLines } from './metrics-text.js';
import { FrameDecoder } from '../transport/frame.js';
import { WriteBatcher } from './write-batcher.js';
import { u32be } from './codec.js';
import type { KvMachine } from './machine.js';
import {
  CONNECTION_REQUEST_ID,
  decodeAuth,
  decodeRequest,
  decodeWriteInto,
  encodeNotLeader,
  encodeResponse,
  FRAME_OVERHEAD_BYTES_MAX,
  KIND_READ,
  KIND_REGISTER,
  KIND_STATUS,
  KIND_WRITE,
  OVERLOADED_PREFIX,
  ProtocolError,
  ST_BAD_REQUEST,
  ST_NOT_LEADER,
  ST_OK,
  ST_OUTCOME_UNKNOWN,
  ST_SESSION_EXPIRED,
  KIND_AUTH,
  ST_UNAUTHORIZED,
  ST_UNAVAILABLE,
  type Request,
  type WriteHeader,
  encodeSessionIdBody,
} from './protocol.js';

/** The write batcher's slab per connection: ~700 OK answers of a write. */
const ANSWER_SLAB_BYTES = 8 * 1024;
/** A frame spanning socket reads starts in a buffer of this size and doubles as its bytes arrive. */
const FRAME_GROW_FROM_BYTES = 64 * 1024;
/** How long a refused connection may linger for its refusal frame to leave. */
const REFUSAL_LINGER_MS = 1_000;
const TIMEOUT_MS_MAX = 60_000;
/**
 * Stage timings for `synod bench --trace` (src/bench/trace.ts subscribes; with no subscriber the
 * cost is one hasSubscribers check per socket read and per answer):
 *   synod:kv:binary:read   { ms, requests }  one socket read decoded and every request in it started
 *                                           (decode, edge checks, propose() or read() called)
 *   synod:kv:binary:reply  ms                one answer encoded and queued for the socket
 */
export const readChannel = diagnostics.channel('synod:kv:binary:read');
export const replyChannel = diagnostics.channel('synod:kv:binary:reply');

const utf8 = new TextEncoder();
const enc = (s: string): Uint8Array => utf8.encode(s);
const HTTP_REFUSAL_BODY = 'this is a Synod binary client port; the HTTP API is on the --http address\n';
/** The first bytes of an HTTP request (checked on a connection's first 8 bytes). */
const HTTP_START = /^(GET|PUT|POST|HEAD|DELETE|OPTIONS|PATCH) /;

export interface KvBinaryServerOptions {
  replica: SynodReplica;
  machine: KvMachine;
  listen: PeerAddress;
  /** Binary addresses of the members, to point clients at the leader. */
  binaryAddresses?: Map<number, PeerAddress>;
  logger?: Logger;
  /** TLS, client certificates, tokens (docs/security.md). Default: plain TCP, no authentication. */
  security?: ClientSecurity;
  /** Per-client limits; unset fields take CLIENT_LIMITS_DEFAULT. */
  limits?: Partial<ClientLimits>;
}

export class KvBinaryServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly stats = { connections: 0, requests: 0, notLeader: 0, badFrames: 0, refusedConnections: 0, unauthorized: 0, tlsFailures: 0, stalledConnections: 0, idleClosed: 0, frameTimeouts: 0 };
  private readonly limits: ClientLimits;
  private readonly tokens: BearerTokens | null;
  private readonly perAddress: AddressCounter;

  constructor(private readonly o: KvBinaryServerOptions) {
    this.limits = resolveClientLimits(o.limits);
    this.tokens = o.security?.tokens ? new BearerTokens(o.security.tokens) : null;
    this.perAddress = new AddressCounter(this.limits.connectionsPerAddressMax);
    if (o.security?.tls) {
      this.server = tls.createServer({ ...clientServerTlsOptions(o.security), handshakeTimeout: this.limits.binaryAuthTimeoutMs }, (s) => this.onConnection(s));
      this.server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        this.stats.tlsFailures++;
        this.o.logger?.warn({ remote: s.remoteAddress, code: 'SYNOD_TLS_HANDSHAKE', error: err.message }, 'binary client TLS handshake failed');
      });
    } else {
      this.server = net.createServer((s) => this.onConnection(s));
    }
    // Connections over connectionsMax are refused with a message; past this many more, Node drops them unanswered.
    this.server.maxConnections = this.limits.connectionsMax + REFUSING_CONNECTIONS_MAX;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? Object.assign(new Error(`binary client port ${this.o.listen.port} on ${this.o.listen.host} is in use: pick another --binary address`), { code: e.code, port: this.o.listen.port, address: this.o.listen.host, flag: '--binary' })
            : e,
        );
      this.server.once('error', onError);
      this.server.listen(this.o.listen.port, this.o.listen.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): PeerAddress {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  metricsText(): string {
    let unsent = 0;
    for (const s of this.sockets) unsent += s.writableLength;
    const lines: string[] = [];
    metricLines(lines, 'synod_binary_requests_total', 'counter', 'Requests received on the binary client protocol.', [['', this.stats.requests]]);
    metricLines(lines, 'synod_binary_connections_total', 'counter', 'Connections accepted on the binary client protocol.', [['', this.stats.connections]]);
    metricLines(lines, 'synod_binary_bad_frames_total', 'counter', 'Undecodable frames (the connection is closed).', [['', this.stats.badFrames]]);
    metricLines(lines, 'synod_binary_connections_open', 'gauge', 'Connections open now (authenticating or served).', [['', this.sockets.size]]);
    metricLines(lines, 'synod_binary_refused_connections_total', 'counter', 'Connections refused: over connectionsPerAddressMax.', [['', this.stats.refusedConnections]]);
    metricLines(lines, 'synod_binary_unauthorized_total', 'counter', 'Connections refused for a missing or wrong token.', [['', this.stats.unauthorized]]);
    metricLines(lines, 'synod_binary_tls_failures_total', 'counter', 'Failed TLS handshakes (no or untrusted client certificate, protocol errors).', [['', this.stats.tlsFailures]]);
    metricLines(lines, 'synod_binary_unsent_bytes', 'gauge', 'Answers written to open connections that their clients have not taken yet (bounded per connection by binaryWriteBufferBytesMax).', [['', unsent]]);
    metricLines(lines, 'synod_binary_stalled_connections_total', 'counter', 'Connections closed because the client read none of its answers for binaryWriteStallTimeoutMs.', [['', this.stats.stalledConnections]]);
    metricLines(lines, 'synod_binary_idle_closed_total', 'counter', 'Connections closed after binaryIdleTimeoutMs with nothing received or in flight.', [['', this.stats.idleClosed]]);
    metricLines(lines, 'synod_binary_frame_timeouts_total', 'counter', 'Connections closed because a frame begun was not completed within binaryFrameTimeoutMs.', [['', this.stats.frameTimeouts]]);
    return lines.join('\n') + '\n';
  }

  /** Connection setup: the per-address limit, then authentication, then serveConnection. */
  private onConnection(socket: net.Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    socket.on('error', () => {});
    if (this.sockets.size >= this.limits.connectionsMax) {
      this.stats.refusedConnections++;
      const max = this.limits.connectionsMax;
      this.o.logger?.warn({ remote: address, code: 'SYNOD_TOO_MANY_CONNECTIONS', limit: max }, 'binary client connection refused: too many open on this port');
      this.refuse(socket, ST_UNAVAILABLE, CONNECTION_REQUEST_ID, `too many connections open on this port: at most ${max} (connectionsMax); retry later`);
      return;
    }
    if (!this.perAddress.tryAcquire(address)) {
      this.stats.refusedConnections++;
      const max = this.limits.connectionsPerAddressMax;
      this.o.logger?.warn({ remote: address, code: 'SYNOD_TOO_MANY_CONNECTIONS', limit: max }, 'binary client connection refused: too many from one address');
      this.refuse(socket, ST_UNAVAILABLE, CONNECTION_REQUEST_ID, `too many connections from ${address}: at most ${max} (connectionsPerAddressMax); close some and retry`);
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.perAddress.release(address);
      this.sockets.delete(socket);
    });
    // Node's inactivity timer (refreshed by every read and write): 'timeout' after binaryIdleTimeoutMs
    // of silence both ways. authenticate() and serveConnection() decide whether the connection is idle.
    socket.setTimeout(this.limits.binaryIdleTimeoutMs);
    this.authenticate(socket, () => this.serveConnection(socket));
  }

  /** Closes a connection with nothing in flight that has been silent for binaryIdleTimeoutMs. */
  private closeIdle(socket: net.Socket): void {
    this.stats.idleClosed++;
    const ms = this.limits.binaryIdleTimeoutMs;
    this.o.logger?.debug({ remote: socket.remoteAddress, timeoutMs: ms }, 'binary client connection idle; closing');
    this.refuse(socket, ST_UNAVAILABLE, CONNECTION_REQUEST_ID, `closing: no request for ${ms} ms (binaryIdleTimeoutMs); reconnect to go on`);
  }

  /** Closes a connection whose frame, begun with `bytes` bytes received so far, was not completed within binaryFrameTimeoutMs. */
  private closeFrameTimeout(socket: net.Socket, bytes: number): void {
    this.stats.frameTimeouts++;
    const ms = this.limits.binaryFrameTimeoutMs;
    this.o.logger?.warn({ remote: socket.remoteAddress, code: 'SYNOD_FRAME_TIMEOUT', receivedBytes: bytes, timeoutMs: ms }, 'binary client did not complete a frame in time; closing');
    this.refuse(socket, ST_UNAVAILABLE, CONNECTION_REQUEST_ID, `a frame was not completed within ${ms} ms (binaryFrameTimeoutMs): ${bytes} bytes of it received; closing`);
  }

  /**
   * Reads the first frame when it is (or must be) AUTH and answers it; then hands the socket,
   * with every byte after that frame put back, to `next`. Without tokens, a first frame that is
   * not AUTH goes to `next` untouched. Bounded: a token frame is at most 5 + TOKEN_BYTES_MAX
   * bytes, and with tokens the frame must arrive within binaryAuthTimeoutMs; without, a first
   * frame begun must be whole within binaryFrameTimeoutMs, and a silent connection is closed after
   * binaryIdleTimeoutMs.
   */
  private authenticate(socket: net.Socket, next: () => void): void {
    const tokens = this.tokens;
    const frameBytesMax = 4 + 5 + TOKEN_BYTES_MAX;
    let buffered: Buffer = Buffer.alloc(0);
    let settled = false;
    let timer = tokens
      ? setTimeout(() => deny(CONNECTION_REQUEST_ID, `no AUTH frame within ${this.limits.binaryAuthTimeoutMs} ms (binaryAuthTimeoutMs)`), this.limits.binaryAuthTimeoutMs)
      : null;
    const settle = () => {
      settled = true;
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('timeout', onIdle);
    };
    const onIdle = () => {
      settle();
      this.closeIdle(socket);
    };
    /** Without tokens: the first bytes have come, the rest of the first frame has not (it waited for ever). */
    const waitForRest = () => {
      timer ??= setTimeout(() => {
        settle();
        this.closeFrameTimeout(socket, buffered.length);
      }, this.limits.binaryFrameTimeoutMs);
    };
    const pass = (rest: Buffer) => {
      settle();
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      next();
      socket.resume();
    };
    /** Refuses the connection: an UNAUTHORIZED frame, or for HTTP an HTTP 400, then close. */
    const deny = (requestId: number, message: string, http = false) => {
      if (settled) return;
      settle();
      this.stats.unauthorized++;
      this.o.logger?.warn({ remote: socket.remoteAddress, code: 'SYNOD_UNAUTHORIZED', reason: message }, 'binary client refused');
      if (http) this.refuseHttp(socket);
      else this.refuse(socket, ST_UNAUTHORIZED, requestId, message);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      // HTTP on this port: answered in HTTP and closed here, never served. (It was passed on to
      // serveConnection, which answered it but went on executing later chunks, without AUTH.)
      if (HTTP_START.test(buffered.subarray(0, 8).toString('latin1'))) {
        if (tokens) return deny(CONNECTION_REQUEST_ID, 'HTTP on the binary client port, which needs an AUTH frame first', true);
        settle();
        this.stats.badFrames++;
        return this.refuseHttp(socket);
      }
      if (buffered.length < 9) return waitForRest(); // every frame is at least 4 + 5 bytes
      const length = buffered.readUInt32BE(0);
      const requestId = buffered.readUInt32BE(5);
      if (buffered[4] !== KIND_AUTH) {
        if (!tokens) return pass(buffered);
        return deny(requestId, 'this server needs a token: send an AUTH frame first (KvClient option `token`, `--token-file`)');
      }
      if (4 + length > frameBytesMax) return deny(requestId, `the AUTH frame is ${length} bytes; a token is at most ${TOKEN_BYTES_MAX} bytes`);
      if (buffered.length < 4 + length) return waitForRest();
      const auth = decodeAuth(buffered.subarray(4, 4 + length));
      // A frame shorter than kind + request id: a TypeError here took the whole replica down.
      if (auth === null) return deny(requestId, `malformed AUTH frame of ${length} bytes: it is kind 4, a request id (u32) and the token`);
      if (tokens && !tokens.matches(auth.token)) return deny(requestId, 'wrong token');
      socket.write(encodeResponse(ST_OK, auth.requestId, new Uint8Array(0)));
      pass(buffered.subarray(4 + length));
    };
    socket.on('data', onData);
    socket.on('timeout', onIdle);
    socket.once('close', () => {
      if (!settled) settle();
    });
  }

  /** Sends one answer frame and closes (destroyed if the client does not read it in time). */
  private refuse(socket: net.Socket, status: number, requestId: number, message: string): void {
    this.endAndLinger(socket, encodeResponse(status, requestId, enc(message)));
  }

  /** Somebody spoke HTTP to this port: say so in HTTP and hang up. */
  private refuseHttp(socket: net.Socket): void {
    this.endAndLinger(socket, `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${HTTP_REFUSAL_BODY.length}\r\n\r\n${HTTP_REFUSAL_BODY}`);
  }

  /**
   * Ends the connection with `last` and destroys it after REFUSAL_LINGER_MS if the client has not
   * closed its side by then (a client that keeps its half open would otherwise hold it forever).
   * The caller has removed its data listener: nothing read after this is looked at.
   */
  private endAndLinger(socket: net.Socket, last: string | Uint8Array): void {
    socket.end(last);
    const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
    socket.once('close', () => clearTimeout(linger));
  }

  private serveConnection(socket: net.Socket): void {
    this.stats.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    // Growing: a frame header alone (9 bytes) used to reserve the whole frame it announced, up to 2 MiB.
    const decoder = new FrameDecoder(this.o.machine.valueBytesMax * 2 + FRAME_OVERHEAD_BYTES_MAX, FRAME_GROW_FROM_BYTES);
    const inflightMax = this.limits.inflightPerConnectionMax;
    let inflight = 0;
    /** Requests decoded past the in-flight limit (at most one socket read's worth): they start as answers go out. */
    const waiting: Request[] = [];
    /**
     * Reads whose consistency wait is over but whose query has not run: held (a few bytes of query
     * each) while the client's unread answers are past the bound, and run as it reads them. A
     * query's answer is made only when there is room for it, so the READs of one socket read
     * (up to inflightPerConnectionMax of them) no longer hold an answer each at once. Still in flight.
     */
    const held: { requestId: number; query: Uint8Array }[] = [];
    let draining = false;
    // Answers the client has not read (the socket's write buffer) are bounded too: in-flight
    // requests are counted only until answered, so a client that never reads could otherwise pile
    // up answers without end (a 14-byte READ can queue a 1 MiB value). Past writeBufferMax the
    // connection is `stalled`: nothing more is read or started until 'drain'; a client that takes
    // none of its answers for binaryWriteStallTimeoutMs is dropped.
    const writeBufferMax = this.limits.binaryWriteBufferBytesMax;
    const stallTimeoutMs = this.limits.binaryWriteStallTimeoutMs;
    let stalled = false;
    let stallTimer: NodeJS.Timeout | null = null;
    /**
     * Bytes the socket has handed to the kernel: bytesWritten counts what is still buffered too,
     * so this grows exactly as the client takes its answers, whatever is appended meanwhile.
     */
    const taken = () => socket.bytesWritten - socket.writableLength;
    /** taken() when the stall timer was armed: more at its end means the client reads (slowly). */
    let stallMark = 0;
    const stall = () => {
      stalled = true;
      socket.pause();
      stallMark = taken();
      stallTimer = setTimeout(stallExpired, stallTimeoutMs);
    };
    const stallExpired = () => {
      stallTimer = null;
      if (!stalled || socket.destroyed) return;
      if (taken() > stallMark) {
        stallMark = taken();
        stallTimer = setTimeout(stallExpired, stallTimeoutMs);
        return;
      }
      this.stats.stalledConnections++;
      this.o.logger?.warn({ remote: socket.remoteAddress, code: 'SYNOD_CLIENT_NOT_READING', unsentBytes: socket.writableLength, timeoutMs: stallTimeoutMs }, 'binary client read none of its answers in time (binaryWriteStallTimeoutMs); closing');
      socket.destroy();
    };
    const unstall = () => {
      stalled = false;
      if (stallTimer !== null) clearTimeout(stallTimer);
      stallTimer = null;
      pump();
    };
    /** After each socket write: stall past the bound; a stall ends on 'drain', or now if the socket took it all at once. */
    const afterWrite = () => {
      if (!stalled) {
        if (socket.writableLength > writeBufferMax) stall();
      } else if (!socket.writableNeedDrain) unstall();
    };
    socket.on('drain', () => {
      if (stalled) unstall();
    });
    // A frame begun must be whole within binaryFrameTimeoutMs (from the read that began it): a
    // client that announces a large frame and then stalls or drips would otherwise hold its
    // buffer, up to 2 x valueBytesMax, for ever. Checked per socket read, one timer at most.
    const frameTimeoutMs = this.limits.binaryFrameTimeoutMs;
    /** performance.now() when the partial frame held now began to arrive, or -1. */
    let partialSince = -1;
    let frameTimer: NodeJS.Timeout | null = null;
    let frames = 0;
    const frameExpired = () => {
      frameTimer = null;
      if (partialSince < 0 || socket.destroyed || socket.writableEnded) return;
      // While the server itself holds reading back (in-flight limit, unread answers: each bounded
      // on its own) the rest of the frame cannot come: the deadline starts again.
      if (socket.isPaused()) partialSince = performance.now();
      const left = partialSince + frameTimeoutMs - performance.now();
      if (left > 0) frameTimer = setTimeout(frameExpired, left);
      else this.closeFrameTimeout(socket, decoder.bufferedBytes());
    };
    socket.on('timeout', () => {
      // Busy (waiting for answers, or for the client to read them, or inside a frame, which has
      // its own deadline): not idle. The next read or write arms the timer again.
      if (inflight === 0 && waiting.length === 0 && !stalled && partialSince < 0 && !socket.writableEnded) this.closeIdle(socket);
    });
    socket.once('close', () => {
      if (stallTimer !== null) clearTimeout(stallTimer);
      if (frameTimer !== null) clearTimeout(frameTimer);
      waiting.length = 0;
      held.length = 0;
    });
    // Answers go into the batcher's slab; a small one, since each connection keeps its own while idle
    // (1,024 connections: 8 MiB, against 64 MiB with a client's default).
    const out = new WriteBatcher(socket, ANSWER_SLAB_BYTES, afterWrite);
    const send = (frame: Uint8Array) => {
      if (!socket.destroyed) out.write(frame);
    };
    const answer = (status: number, requestId: number, body: Uint8Array) => {
      const traced = replyChannel.hasSubscribers;
      const t0 = traced ? performance.now() : 0;
      done();
      if (!socket.destroyed) out.writeResponse(status, requestId, body);
      if (traced) replyChannel.publish(performance.now() - t0);
    };
    /** answer() of a [status, body] pair (errorReply, notLeader). */
    const answerWith = (requestId: number, [status, body]: [number, Uint8Array]) => answer(status, requestId, body);
    // Writes, the hot path, allocate no closure and no options object per request: one callback
    // for every write of this connection, told apart by the request id (proposeWith's cookie);
    // the options object is reused (proposeWith reads it before returning).
    const writeOptions = { clientId: 0, seq: 0, floor: 0, timeoutMs: 0 };
    const written = (e: Error | null, result: Uint8Array | null, requestId: number) => {
      if (e === null) answer(ST_OK, requestId, result!);
      else answerWith(requestId, this.errorReply(e, KIND_WRITE));
    };
    const startWrite = (requestId: number, clientId: number, seq: number, floor: number, timeoutMs: number, command: Uint8Array) => {
      inflight++;
      if (inflight >= inflightMax) socket.pause();
      try {
        const refusal = this.refuseWrite(command);
        if (refusal !== null) return answerWith(requestId, refusal);
        writeOptions.clientId = clientId;
        writeOptions.seq = seq;
        writeOptions.floor = floor;
        writeOptions.timeoutMs = Math.min(timeoutMs || 5_000, TIMEOUT_MS_MAX);
        // The command is a view of the socket read's chunk, which Node allocates fresh for each
        // read (sized to what was read) and never reuses: no copy. The view lives until its slot's
        // log record is encoded (in a batch of four or more the replica then holds the slot by that
        // encoding) or else until the slot is applied, like a copy would.
        this.o.replica.proposeWith(command, writeOptions, written, requestId);
      } catch (e) {
        written(e as Error, null, requestId);
      }
    };
    /** Room for one more answer: the unread ones, and this turn's not yet in the socket, under the bound. */
    const room = () => !stalled && socket.writableLength + out.queuedBytes <= writeBufferMax;
    /** Runs a read's query now and answers it. */
    const query = (requestId: number, q: Uint8Array) => {
      let result: Uint8Array;
      try {
        result = this.o.replica.queryLocal(q);
      } catch (e) {
        return answerWith(requestId, this.errorReply(e, KIND_READ));
      }
      answer(ST_OK, requestId, result);
    };
    const startRead = (req: Request & { kind: typeof KIND_READ }) => {
      const replica = this.o.replica;
      const { requestId, query: q } = req;
      if (req.consistency !== 'local' && !replica.isLeader()) return answerWith(requestId, this.notLeader(replica.leaderId()));
      replica.readIndex({ consistency: req.consistency, maxWaitMs: req.maxWaitMs ? Math.min(req.maxWaitMs, TIMEOUT_MS_MAX) : undefined }).then(
        () => {
          if (socket.destroyed) return done();
          if (held.length === 0 && room()) return query(requestId, q);
          held.push({ requestId, query: q });
          if (!stalled) stall();
        },
        (e: unknown) => answerWith(requestId, this.errorReply(e, KIND_READ)),
      );
    };
    const start = (req: Request) => {
      if (req.kind === KIND_WRITE) return startWrite(req.requestId, req.clientId, req.seq, req.floor, req.timeoutMs, req.command);
      inflight++;
      if (inflight >= inflightMax) socket.pause();
      if (req.kind === KIND_READ) return startRead(req);
      const requestId = req.requestId;
      this.serve(req, (status, body) => answer(status, requestId, body));
    };
    const done = () => {
      inflight--;
      pump();
    };
    /** Starts waiting requests while there is room for them, then reads on if nothing holds reading back. */
    const pump = () => {
      if (waiting.length > 0 || held.length > 0) {
        // A connection the server ended or destroyed (an undecodable stream, a timeout) starts nothing more.
        if (socket.writableEnded || socket.destroyed) return void (waiting.length = held.length = 0);
        if (draining) return; // an answer given synchronously inside start(): the loop below goes on
        draining = true;
        // Held queries first (they are older), then waiting requests. Answers of this turn are not
        // in the socket yet: counted too (local reads answer in one turn, so a chunk's worth of
        // waiting reads would otherwise all be answered before a check).
        while (!stalled && (held.length > 0 || (waiting.length > 0 && inflight < inflightMax))) {
          if (!room()) stall();
          else if (held.length > 0) {
            const h = held.shift()!;
            query(h.requestId, h.query);
          } else start(waiting.shift()!);
        }
        draining = false;
      }
      if (!stalled && waiting.length === 0 && held.length === 0 && inflight < inflightMax / 2 && socket.isPaused()) socket.resume();
    };
    const badFrame = (bytes: Uint8Array, from: number, to: number, e: unknown) => {
      this.stats.badFrames++;
      const rid = to - from >= 5 ? u32be(bytes, from + 1) : 0;
      send(encodeResponse(ST_BAD_REQUEST, rid, new TextEncoder().encode((e as Error).message)));
    };
    /** A write's fields, decoded in place for the hot path (no request object per write). */
    const header: WriteHeader = { requestId: 0, clientId: 0, seq: 0, floor: 0, timeoutMs: 0 };
    /** One request frame, read where it lies in the socket's chunk (no view of the frame). */
    const onFrame = (bytes: Uint8Array, from: number, to: number) => {
      frames++;
      if (to - from >= 5 && bytes[from] === KIND_WRITE && inflight < inflightMax && !stalled) {
        let command: Uint8Array;
        try {
          command = decodeWriteInto(bytes, from, to, header);
        } catch (e) {
          return badFrame(bytes, from, to, e);
        }
        this.stats.requests++;
        return startWrite(header.requestId, header.clientId, header.seq, header.floor, header.timeoutMs, command);
      }
      let req: Request;
      try {
        req = decodeRequest(bytes, from, to);
      } catch (e) {
        return badFrame(bytes, from, to, e);
      }
      this.stats.requests++;
      if (inflight >= inflightMax || stalled) {
        waiting.push(req); // backpressure: reading is paused; this one starts when an answer goes out
        return;
      }
      start(req);
    };
    socket.on('data', (chunk: Buffer) => {
      // Nothing is executed once the server has ended the connection (a refusal, a timeout), even
      // if the client keeps its half open and writes on.
      if (socket.writableEnded || socket.destroyed) return;
      const traced = readChannel.hasSubscribers;
      const t0 = traced ? performance.now() : 0;
      const requestsBefore = this.stats.requests;
      const framesBefore = frames;
      const err = decoder.pushRanges(chunk, onFrame);
      if (traced && this.stats.requests > requestsBefore) readChannel.publish({ ms: performance.now() - t0, requests: this.stats.requests - requestsBefore });
      if (err) {
        this.stats.badFrames++;
        this.o.logger?.warn({ remote: socket.remoteAddress, error: err.message }, 'binary client sent an undecodable stream; closing');
        socket.destroy();
        return;
      }
      if (decoder.bufferedBytes() === 0) partialSince = -1;
      else if (partialSince < 0 || frames !== framesBefore) {
        // A new partial frame (one that was held before is complete if a frame came in this read).
        partialSince = performance.now();
        frameTimer ??= setTimeout(frameExpired, frameTimeoutMs);
      }
    });
    socket.on('error', () => {});
  }

  /**
   * Answers a STATUS or REGISTER request (start() proposes writes itself, with one callback per
   * connection, and runs reads itself, to hold their queries under backpressure) through `reply`,
   * exactly once. Callbacks rather than an async function, like the write path.
   */
  private serve(req: Request, reply: (status: number, body: Uint8Array) => void): void {
    const { replica } = this.o;
    if (req.kind === KIND_STATUS) {
      const st = replica.status();
      const leaderAddr = st.leader === null ? null : this.binaryAddressOf(st.leader);
      reply(ST_OK, enc(JSON.stringify({ id: st.id, role: st.role, leader: st.leader, leaderAddress: leaderAddr ? hostPort(leaderAddr) : null, commitIndex: st.commitSlot, appliedIndex: st.appliedSlot })));
      return;
    }
    const kind = req.kind;
    const fail = (e: unknown) => reply(...this.errorReply(e, kind));
    if (kind === KIND_REGISTER) {
      // A session goes through the log (registered on every replica alike): leader only, like a write.
      if (!replica.isLeader()) {
        reply(...this.notLeader(replica.leaderId()));
        return;
      }
      replica.openSession({ timeoutMs: Math.min(req.timeoutMs || 5_000, TIMEOUT_MS_MAX) }).then((id) => reply(ST_OK, encodeSessionIdBody(id)), fail);
      return;
    }
    throw new ProtocolError('unreachable');
  }

  /** Why a write is answered without being proposed (malformed or over a limit; not the leader), or null. */
  private refuseWrite(command: Uint8Array): [number, Uint8Array] | null {
    const refusal = this.o.machine.refuseEncoded(command);
    if (refusal !== null) return [ST_BAD_REQUEST, enc(refusal)];
    const replica = this.o.replica;
    return replica.isLeader() ? null : this.notLeader(replica.leaderId());
  }

  private errorReply(e: unknown, kind: number): [number, Uint8Array] {
    if (e instanceof NotLeaderError) return this.notLeader(e.leaderHint);
    if (e instanceof ShuttingDownError || e instanceof StorageFailedError || e instanceof StoppedError) return [ST_UNAVAILABLE, enc(e.message)];
    // Refused at admission or taken back from the queue: never proposed. UNAVAILABLE, so that
    // clients of every version take it as certain; the prefix tells a KvClient to stay.
    if (e instanceof OverloadedError) return [ST_UNAVAILABLE, enc(OVERLOADED_PREFIX + e.message)];
    if (e instanceof SessionExpiredError) return [ST_SESSION_EXPIRED, enc(e.message)];
    if (e instanceof OutcomeUnknownError) return [ST_OUTCOME_UNKNOWN, enc(e.message)];
    // Refused before it was proposed (a session that is a replica's own): nothing ran.
    if (e instanceof SynodError && e.code === 'SYNOD_BAD_SESSION') return [ST_BAD_REQUEST, enc(e.message)];
    // Reads that time out, and anything unexpected: for a write we cannot prove it was not applied.
    return [kind === KIND_WRITE ? ST_OUTCOME_UNKNOWN : ST_UNAVAILABLE, enc((e as Error)?.message ?? String(e))];
  }

  private notLeader(leader: number | null): [number, Uint8Array] {
    this.stats.notLeader++;
    const a = leader === null || leader === this.o.replica.id ? undefined : this.binaryAddressOf(leader);
    return [ST_NOT_LEADER, encodeNotLeader(leader === this.o.replica.id ? null : leader, a ? hostPort(a) : '')];
  }

  /** Replica `id`'s binary address: from --initial-binary, else as it announced it through the log (while leading). */
  private binaryAddressOf(id: number): PeerAddress | undefined {
    return this.o.binaryAddresses?.get(id) ?? this.o.replica.endpointOf(id, 'binary');
  }
}
