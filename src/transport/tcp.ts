// TcpTransport: frames between replicas over TCP.
//
// Connection model (docs/transport.md has the full rules):
// - Each replica dials every peer for its *outbound* traffic and accepts connections for its
//   *inbound* traffic. Data flows one way on a connection: dialer -> acceptor. So there is no
//   simultaneous-open tie-breaking; a pair of replicas uses two connections.
// - The dialer sends a hello (cluster id, its id, the id it means to reach, its version range);
//   the acceptor answers welcome (agreed version, its id) or refuse (reason) and closes.
// - A second inbound connection from the same sender replaces the first (a restarted peer).
//
// Outbound peer state machine:
//
//   idle --start/setPeers--> connecting --ready--> handshaking --welcome--> open
//     ^                          |                      |                     |
//     |                          +------ error / timeout / refuse / close ----+
//     |                                                 v
//     +---------- (removed) <------------------------ backoff --timer--> connecting
//
// Sends are queued in connecting/handshaking/open (bounded by peerQueueBytesMax, counting the
// socket's own buffer) and dropped in idle/backoff: a peer known to be down is not buffered for.
// When a connection is lost, frames still queued are dropped (counted): consensus retransmits.
//
// Writes are coalesced: send() only queues; one flush per peer runs in a microtask after the
// current turn and hands every queued frame to the socket between cork() and uncork(), which Node
// turns into one writev. Small frames are copied into one batch buffer (fewer chunks); large
// frames are written by reference. While the socket's buffer is above its high-water mark the
// flush waits for 'drain', and frames accumulate in the queue up to the byte bound.

import type * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import { FRAME_HEADER_BYTES, FrameDecoder, writeFrameHeader } from './frame.js';
import { HandshakeReader, encodeHello, encodeRefuse, encodeWelcome, isRefuseCode, negotiateVersion, type Hello, type RefuseCode } from './handshake.js';
import { reconnectDelayMs, transportOptions, type TransportOptions, type TransportOptionsInput } from './options.js';
import { plainTcpSocketFactory, type SocketFactory } from './socket.js';
import {
  TransportError,
  hostPort,
  type FrameHandler,
  type PeerAddress,
  type PeerAdmission,
  type PeerStats,
  type PeerTransport,
  type ReplicaId,
  type TransportEvent,
  type TransportEventHandler,
} from './types.js';

/** The protocol version from which a hello may carry extensions (the incarnation id). */
const HELLO_EXTENSIONS_VERSION = 2;
/** Frames up to this size are copied into a shared batch buffer; larger ones are written by reference. */
const BATCH_COPY_FRAME_BYTES_MAX = 16 * 1024;
/** After sending a refusal, how long the acceptor waits for the dialer to hang up before cutting. */
const REFUSE_LINGER_MS = 1_000;
const HTTP_REFUSAL =
  'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 34\r\n\r\nthis is a Synod replica peer port\n';

type OutboundState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff';

/** One outbound connection attempt; replaced on every dial so stale callbacks are recognizable. */
interface OutboundConn {
  socket: net.Socket;
  reader: HandshakeReader;
  /** Why this connection is being closed, when we know better than the socket does. */
  failure: TransportError | null;
}

interface Peer {
  readonly id: ReplicaId;
  address: PeerAddress;
  state: OutboundState;
  conn: OutboundConn | null;
  /** Connect or handshake timeout while connecting/handshaking; the backoff timer while backing off. */
  timer: NodeJS.Timeout | null;
  /** Consecutive failed dials, for the backoff; reset when a handshake succeeds. */
  failedDials: number;
  dials: number;
  /**
   * The peer speaks protocol version 1 only: its hello parser refuses extensions (builds before
   * version 2), so our hello to it carries none. Learned from its refusal, which names its range.
   */
  legacyHello: boolean;
  version: number;
  queue: Uint8Array[];
  /** Bytes in `queue`, headers included. */
  queueBytes: number;
  waitingDrain: boolean;
  flushPending: boolean;
  /** Set while sends are being dropped for the bound, so that only the transition is logged. */
  dropping: boolean;
  sentFrames: number;
  droppedFrames: number;
  lastError: TransportError | null;
}

interface InboundConn {
  socket: net.Socket;
  /** The remote IP address (for inboundPerAddressMax). */
  address: string;
  remote: string;
  state: 'handshake' | 'open' | 'closing';
  peer: ReplicaId | null;
  /** The incarnation id the peer's hello named (null: none, or still handshaking). */
  incarnation: string | null;
  version: number;
  reader: HandshakeReader;
  decoder: FrameDecoder | null;
  timer: NodeJS.Timeout | null;
  failure: TransportError | null;
}

export class TcpTransport implements PeerTransport {
  readonly replicaId: ReplicaId;
  readonly options: TransportOptions;
  private readonly factory: SocketFactory;
  private server: net.Server | null = null;
  private started = false;
  private listening: Promise<void> | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly peers = new Map<ReplicaId, Peer>();
  private readonly inbound = new Set<InboundConn>();
  /** Inbound connections closed at accept by inboundHandshakingMax / inboundPerAddressMax. */
  private refusedConnections = 0;
  private refusalLoggedAtMs = 0;
  /**
   * A factory that wraps connections (TLS): raw TCP connections whose TLS handshake and hello are
   * still running, before acceptInbound sees them, by "address:port" -> address. They count in
   * the accept limits, so a client that connects and stays silent cannot hold connections beyond them.
   */
  private readonly unwrapped = new Map<string, string>();
  private readonly inboundByPeer = new Map<ReplicaId, InboundConn>();
  private readonly receivedFrames = new Map<ReplicaId, number>();
  /** Every socket not yet closed, so that close() can wait for all of them. */
  private readonly sockets = new Set<net.Socket>();
  private frameHandler: FrameHandler = () => {};
  private eventHandler: TransportEventHandler = () => {};
  private incarnation: string | null = null;
  private advertised: PeerAddress | null = null;
  private admission: PeerAdmission | null = null;
  private dirty: Peer[] = [];
  private flushScheduled = false;

  constructor(input: TransportOptionsInput) {
    this.options = transportOptions(input);
    this.replicaId = this.options.replicaId;
    this.factory = this.options.socketFactory ?? plainTcpSocketFactory;
  }

  // ------------------------------------------------------------------ public API

  start(): Promise<void> {
    if (this.started || this.closing) return Promise.reject(new Error('TcpTransport.start() called twice or after close()'));
    this.started = true;
    this.listening = this.listen();
    return this.listening;
  }

  private async listen(): Promise<void> {
    const server = this.factory.createServer((socket) => this.acceptInbound(socket));
    // Before the factory's own listener (TLS wraps the raw socket there): a refused connection
    // is closed before any TLS work is spent on it.
    if (this.factory.wrapsConnections === true) server.prependListener('connection', (raw: net.Socket) => this.acceptRaw(raw));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort, this.options.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log('error', 'listener error', { err: err.message }));
    this.server = server;
    if (this.closing) return; // close() raced start(): shutdown() closes the server
    this.log('info', 'listening', { address: this.address() });
    for (const peer of this.peers.values()) this.dial(peer);
  }

  /** The address the listener is bound to (after start()). */
  address(): PeerAddress {
    const info = this.server?.address() as AddressInfo | null | undefined;
    if (!info || typeof info !== 'object') throw new Error('TcpTransport is not listening');
    return { host: info.address, port: info.port };
  }

  send(to: ReplicaId, frame: Uint8Array): void {
    const peer = this.peers.get(to);
    if (peer === undefined || this.closing) return;
    if (frame.length > this.options.frameBytesMax) {
      peer.droppedFrames++;
      this.log('warn', 'dropping an outbound frame larger than frameBytesMax', { peer: to, bytes: frame.length, frameBytesMax: this.options.frameBytesMax });
      return;
    }
    if (peer.state === 'idle' || peer.state === 'backoff') {
      peer.droppedFrames++; // the peer is known to be unreachable: do not buffer for it
      return;
    }
    const bytes = FRAME_HEADER_BYTES + frame.length;
    if (this.queuedBytes(peer) + bytes > this.options.peerQueueBytesMax) {
      peer.droppedFrames++;
      if (!peer.dropping) {
        peer.dropping = true;
        this.log('warn', 'peer queue full: dropping frames', { peer: to, queuedBytes: this.queuedBytes(peer), peerQueueBytesMax: this.options.peerQueueBytesMax });
      }
      return;
    }
    if (peer.dropping) {
      peer.dropping = false;
      this.log('info', 'peer queue has room again', { peer: to, droppedFrames: peer.droppedFrames });
    }
    peer.queue.push(frame);
    peer.queueBytes += bytes;
    if (peer.state === 'open') this.scheduleFlush(peer);
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  onEvent(handler: TransportEventHandler): void {
    this.eventHandler = handler;
  }

  setIncarnation(incarnation: string): void {
    this.incarnation = incarnation;
  }

  setAdvertisedAddress(address: PeerAddress | null): void {
    this.advertised = address;
  }

  setAdmission(admit: PeerAdmission | null): void {
    this.admission = admit;
    if (admit === null) return;
    for (const conn of this.inbound) {
      if (conn.state !== 'open' || conn.peer === null) continue;
      const reason = admit(conn.peer, conn.incarnation);
      if (reason !== null) {
        const error = new TransportError('SYNOD_TRANSPORT_INCARNATION_MISMATCH', reason);
        this.refuseInbound(conn, error, null);
      }
    }
  }

  setPeers(peers: ReadonlyMap<ReplicaId, PeerAddress>): void {
    if (this.closing) return;
    for (const [id, peer] of this.peers) {
      if (!peers.has(id)) {
        this.detach(peer, false);
        this.peers.delete(id);
        this.log('info', 'peer removed', { peer: id });
      }
    }
    for (const [id, address] of peers) {
      if (id === this.replicaId) continue;
      if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) {
        this.log('warn', 'ignoring a peer with an invalid replica id', { peer: id });
        continue;
      }
      if (typeof address.host !== 'string' || address.host.length === 0 || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535) {
        this.log('warn', 'ignoring a peer with an invalid address', { peer: id, address });
        continue;
      }
      const existing = this.peers.get(id);
      if (existing !== undefined) {
        if (existing.address.host === address.host && existing.address.port === address.port) continue;
        this.log('info', 'peer address changed: reconnecting', { peer: id, from: existing.address, to: address });
        this.detach(existing, true);
        existing.address = { host: address.host, port: address.port };
        existing.failedDials = 0;
        if (this.started && this.server !== null) this.dial(existing);
        continue;
      }
      const peer: Peer = {
        id,
        address: { host: address.host, port: address.port },
        state: 'idle',
        conn: null,
        timer: null,
        failedDials: 0,
        dials: 0,
        legacyHello: false,
        version: 0,
        queue: [],
        queueBytes: 0,
        waitingDrain: false,
        flushPending: false,
        dropping: false,
        sentFrames: 0,
        droppedFrames: 0,
        lastError: null,
      };
      this.peers.set(id, peer);
      if (this.started && this.server !== null) this.dial(peer);
    }
  }

  /** Inbound connections closed at accept, over inboundHandshakingMax or inboundPerAddressMax. */
  get refusedInboundConnections(): number {
    return this.refusedConnections;
  }

  stats(): Map<ReplicaId, PeerStats> {
    const out = new Map<ReplicaId, PeerStats>();
    for (const [id, peer] of this.peers) {
      out.set(id, {
        connected: peer.state === 'open',
        queuedBytes: this.queuedBytes(peer),
        sentFrames: peer.sentFrames,
        droppedFrames: peer.droppedFrames,
        reconnects: Math.max(0, peer.dials - 1),
        receivedFrames: this.receivedFrames.get(id) ?? 0,
        protocolVersion: peer.state === 'open' ? peer.version : 0,
        lastError: peer.lastError,
      });
    }
    return out;
  }

  close(): Promise<void> {
    if (this.closed === null) this.closed = this.shutdown();
    return this.closed;
  }

  // ------------------------------------------------------------------ outbound

  private dial(peer: Peer): void {
    if (this.closing) return;
    peer.timer = null;
    peer.dials++;
    peer.state = 'connecting';
    let socket: net.Socket;
    try {
      socket = this.factory.connect(peer.address, () => this.onOutboundReady(peer, conn));
    } catch (err) {
      // A factory that throws (bad address, TLS misconfiguration) is one more failed dial.
      peer.lastError = new TransportError('SYNOD_TRANSPORT_SOCKET', `cannot dial peer ${peer.id} at ${hostPort(peer.address)}: ${err instanceof Error ? err.message : String(err)}`);
      this.log('warn', 'dial failed', { peer: peer.id, code: peer.lastError.code, reason: peer.lastError.message });
      this.backOff(peer);
      return;
    }
    const conn: OutboundConn = { socket, reader: new HandshakeReader(), failure: null };
    peer.conn = conn;
    this.track(socket);
    socket.on('error', (err) => {
      conn.failure ??= new TransportError('SYNOD_TRANSPORT_SOCKET', `connection to peer ${peer.id} at ${hostPort(peer.address)}: ${err.message}`);
    });
    socket.on('close', () => this.onOutboundClose(peer, conn));
    socket.on('data', (chunk: Buffer) => this.onOutboundData(peer, conn, chunk));
    socket.on('drain', () => {
      if (peer.conn !== conn) return;
      peer.waitingDrain = false;
      this.flush(peer);
    });
    peer.timer = setTimeout(() => {
      peer.timer = null;
      this.failOutbound(conn, new TransportError('SYNOD_TRANSPORT_CONNECT_TIMEOUT', `connecting to peer ${peer.id} at ${hostPort(peer.address)} timed out after ${this.options.connectTimeoutMs} ms`));
    }, this.options.connectTimeoutMs);
  }

  private onOutboundReady(peer: Peer, conn: OutboundConn): void {
    if (peer.conn !== conn || this.closing) return;
    this.clearPeerTimer(peer);
    peer.state = 'handshaking';
    conn.socket.setNoDelay(true);
    if (this.options.keepAliveMs > 0) conn.socket.setKeepAlive(true, this.options.keepAliveMs);
    conn.socket.write(
      encodeHello({
        versionMin: this.options.protocolVersionMin,
        versionMax: this.options.protocolVersionMax,
        senderId: this.replicaId,
        targetId: peer.id,
        clusterId: this.options.clusterId,
        ...(peer.legacyHello || this.options.protocolVersionMax < HELLO_EXTENSIONS_VERSION ? {} : { incarnation: this.incarnation, address: this.advertised }),
      }),
    );
    peer.timer = setTimeout(() => {
      peer.timer = null;
      this.failOutbound(conn, new TransportError('SYNOD_TRANSPORT_HANDSHAKE_TIMEOUT', `peer ${peer.id} at ${hostPort(peer.address)} did not answer the handshake within ${this.options.handshakeTimeoutMs} ms`));
    }, this.options.handshakeTimeoutMs);
  }

  private onOutboundData(peer: Peer, conn: OutboundConn, chunk: Buffer): void {
    if (peer.conn !== conn) return;
    if (peer.state !== 'handshaking') {
      // The acceptor sends nothing after its answer.
      this.refusedOutbound(peer, conn, new TransportError('SYNOD_TRANSPORT_PROTOCOL', `peer ${peer.id} sent ${chunk.length} unexpected bytes after the handshake`));
      return;
    }
    const parsed = conn.reader.push(chunk);
    if (parsed.status === 'more') return;
    if (parsed.status === 'error') {
      this.refusedOutbound(peer, conn, parsed.error);
      return;
    }
    const answer = parsed.message;
    const where = `peer ${peer.id} at ${hostPort(peer.address)}`;
    if (answer.kind === 'refuse') {
      if (answer.code === 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED' && answer.versionMax < HELLO_EXTENSIONS_VERSION && !peer.legacyHello && this.incarnation !== null) {
        // Mid-upgrade: an older replica cannot parse hello extensions. Redial it without them
        // (it does not check incarnations either); it gets them once it is upgraded.
        peer.legacyHello = true;
        this.log('info', 'peer speaks protocol version 1: redialing without hello extensions', { peer: peer.id, address: peer.address });
      } else if (answer.versionMax >= HELLO_EXTENSIONS_VERSION) peer.legacyHello = false; // upgraded since
      this.refusedOutbound(peer, conn, new TransportError(answer.code, `${where} refused the connection: ${answer.message}`, true));
      return;
    }
    if (answer.kind !== 'welcome') {
      this.refusedOutbound(peer, conn, new TransportError('SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', `${where} answered the handshake with a ${answer.kind}`));
      return;
    }
    if (answer.acceptorId !== peer.id) {
      this.refusedOutbound(peer, conn, new TransportError('SYNOD_TRANSPORT_WRONG_REPLICA', `${where} is replica ${answer.acceptorId}, expected ${peer.id}`));
      return;
    }
    if (answer.version < this.options.protocolVersionMin || answer.version > this.options.protocolVersionMax) {
      this.refusedOutbound(
        peer,
        conn,
        new TransportError('SYNOD_TRANSPORT_VERSION_MISMATCH', `${where} chose protocol version ${answer.version}, outside [${this.options.protocolVersionMin}, ${this.options.protocolVersionMax}]`),
      );
      return;
    }
    if (parsed.rest.length > 0) {
      this.refusedOutbound(peer, conn, new TransportError('SYNOD_TRANSPORT_PROTOCOL', `${where} sent unexpected bytes after its welcome`));
      return;
    }
    this.clearPeerTimer(peer);
    peer.state = 'open';
    peer.version = answer.version;
    if (answer.version >= HELLO_EXTENSIONS_VERSION && peer.legacyHello) {
      // The peer was upgraded since it refused our extensions: redial at once so that our hello
      // names our incarnation (the primary binds it only from a hello that does).
      peer.legacyHello = false;
      this.log('info', 'peer now speaks protocol version 2: redialing with hello extensions', { peer: peer.id, address: peer.address });
      this.failOutbound(conn, new TransportError('SYNOD_TRANSPORT_REPLACED', `${where} was upgraded: redialing with hello extensions`));
      return;
    }
    peer.failedDials = 0;
    peer.waitingDrain = false;
    this.log('info', 'connected to peer', { peer: peer.id, address: peer.address, protocolVersion: answer.version });
    this.emit({ type: 'connected', peer: peer.id, direction: 'outbound', protocolVersion: answer.version });
    if (peer.queue.length > 0) this.scheduleFlush(peer);
  }

  private refusedOutbound(peer: Peer, conn: OutboundConn, error: TransportError): void {
    this.log('warn', 'outbound connection refused', { peer: peer.id, address: peer.address, code: error.code, reason: error.message });
    this.emit({ type: 'refused', peer: peer.id, direction: 'outbound', error });
    this.failOutbound(conn, error);
  }

  private failOutbound(conn: OutboundConn, error: TransportError): void {
    conn.failure ??= error;
    conn.socket.destroy();
  }

  private onOutboundClose(peer: Peer, conn: OutboundConn): void {
    this.sockets.delete(conn.socket);
    if (peer.conn !== conn) return; // detached already (peer removed, address changed, shutdown)
    const wasOpen = peer.state === 'open';
    const error = conn.failure ?? new TransportError('SYNOD_TRANSPORT_SOCKET', `connection to peer ${peer.id} at ${hostPort(peer.address)} closed`);
    peer.conn = null;
    peer.lastError = error;
    this.clearPeerTimer(peer);
    this.dropQueue(peer);
    if (wasOpen) {
      this.log('warn', 'lost connection to peer', { peer: peer.id, code: error.code, reason: error.message });
      this.emit({ type: 'disconnected', peer: peer.id, direction: 'outbound', error });
    } else {
      this.log('debug', 'dial failed', { peer: peer.id, code: error.code, reason: error.message });
    }
    if (this.closing) {
      peer.state = 'idle';
      return;
    }
    this.backOff(peer);
  }

  private backOff(peer: Peer): void {
    this.dropQueue(peer);
    peer.state = 'backoff';
    const delayMs = reconnectDelayMs(peer.failedDials, this.options);
    peer.failedDials++;
    peer.timer = setTimeout(() => this.dial(peer), delayMs);
  }

  /** Cuts the peer's current connection (if any) without scheduling a reconnect. */
  private detach(peer: Peer, countDrops: boolean): void {
    this.clearPeerTimer(peer);
    const conn = peer.conn;
    peer.conn = null;
    if (countDrops) this.dropQueue(peer);
    else {
      peer.queue = [];
      peer.queueBytes = 0;
    }
    if (peer.state === 'open') this.emit({ type: 'disconnected', peer: peer.id, direction: 'outbound', error: null });
    peer.state = 'idle';
    peer.waitingDrain = false;
    conn?.socket.destroy();
  }

  private dropQueue(peer: Peer): void {
    peer.droppedFrames += peer.queue.length;
    peer.queue = [];
    peer.queueBytes = 0;
    peer.waitingDrain = false;
  }

  private clearPeerTimer(peer: Peer): void {
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
  }

  private queuedBytes(peer: Peer): number {
    return peer.queueBytes + (peer.conn !== null ? peer.conn.socket.writableLength : 0);
  }

  // ------------------------------------------------------------------ write coalescing

  private scheduleFlush(peer: Peer): void {
    if (peer.flushPending) return;
    peer.flushPending = true;
    this.dirty.push(peer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushDirty);
  }

  private readonly flushDirty = (): void => {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const peer of dirty) {
      peer.flushPending = false;
      this.flush(peer);
    }
  };

  /** Hands every queued frame of `peer` to its socket in one corked batch (one writev). */
  private flush(peer: Peer): void {
    if (peer.state !== 'open' || peer.waitingDrain || peer.queue.length === 0 || this.closing) return;
    const socket = peer.conn!.socket;
    const frames = peer.queue;
    peer.queue = [];
    peer.queueBytes = 0;
    socket.cork();
    // Runs of small frames are copied into one buffer; a large frame ends the run with its
    // header and is written by reference after it.
    let runStart = 0;
    let runBytes = 0;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      runBytes += FRAME_HEADER_BYTES + (frame.length <= BATCH_COPY_FRAME_BYTES_MAX ? frame.length : 0);
      if (frame.length > BATCH_COPY_FRAME_BYTES_MAX || i === frames.length - 1) {
        socket.write(this.copyRun(frames, runStart, i + 1, runBytes));
        if (frame.length > BATCH_COPY_FRAME_BYTES_MAX) socket.write(frame);
        runStart = i + 1;
        runBytes = 0;
      }
    }
    socket.uncork();
    peer.sentFrames += frames.length;
    // The list is garbage now; emptied, it keeps no frame alive if V8 had moved it to the old
    // generation (a scavenge would still follow its pointers, and promote the frames).
    frames.length = 0;
    if (socket.writableNeedDrain) peer.waitingDrain = true;
  }

  private copyRun(frames: Uint8Array[], start: number, end: number, bytes: number): Buffer {
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = start; i < end; i++) {
      const frame = frames[i]!;
      writeFrameHeader(out, at, frame.length);
      at += FRAME_HEADER_BYTES;
      if (frame.length <= BATCH_COPY_FRAME_BYTES_MAX) {
        out.set(frame, at);
        at += frame.length;
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ inbound

  /**
   * Limits before anything is known about the caller (docs/security.md): why a new connection from
   * `address` is over them, or null. Connections still in a wrapping factory's handshake count too.
   */
  private overAcceptLimits(address: string): string | null {
    let handshaking = this.unwrapped.size;
    let fromAddress = 0;
    for (const a of this.unwrapped.values()) if (a === address) fromAddress++;
    for (const c of this.inbound) {
      if (c.state === 'handshake') handshaking++;
      if (c.address === address) fromAddress++;
    }
    return handshaking >= this.options.inboundHandshakingMax
      ? `${handshaking} inbound connections are already handshaking (inboundHandshakingMax)`
      : fromAddress >= this.options.inboundPerAddressMax
        ? `${fromAddress} inbound connections from ${address} already (inboundPerAddressMax)`
        : null;
  }

  /** Refuses by closing at once; logs at most once a second (a flood must not become a log flood), counts every refusal. */
  private refuseAtAccept(socket: net.Socket, address: string, over: string): void {
    this.refusedConnections++;
    const t = Date.now();
    if (t - this.refusalLoggedAtMs >= 1_000) {
      this.refusalLoggedAtMs = t;
      this.log('warn', 'refused an inbound connection at once', { remote: `${address}:${socket.remotePort}`, reason: over, refusedSoFar: this.refusedConnections });
    }
    socket.destroy(); // never tracked: close() waits only for sockets that will say 'close'
  }

  /** A wrapping factory's raw connection, before its handshake: admitted within the limits, or closed. */
  private acceptRaw(raw: net.Socket): void {
    const address = raw.remoteAddress ?? '?';
    const over = this.closing ? 'the transport is closing' : this.overAcceptLimits(address);
    if (over !== null) {
      if (this.closing) raw.destroy();
      else this.refuseAtAccept(raw, address, over);
      return;
    }
    const key = `${address}:${raw.remotePort}`;
    this.unwrapped.set(key, address);
    raw.once('close', () => this.unwrapped.delete(key));
  }

  private acceptInbound(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '?';
    if (this.factory.wrapsConnections === true) this.unwrapped.delete(`${address}:${socket.remotePort}`); // handed over: counted as inbound from here
    const over = this.overAcceptLimits(address);
    if (over !== null) {
      this.refuseAtAccept(socket, address, over);
      return;
    }
    this.track(socket);
    const conn: InboundConn = {
      socket,
      address,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      state: 'handshake',
      peer: null,
      incarnation: null,
      version: 0,
      reader: new HandshakeReader(),
      decoder: null,
      timer: null,
      failure: null,
    };
    this.inbound.add(conn);
    socket.setNoDelay(true);
    if (this.options.keepAliveMs > 0) socket.setKeepAlive(true, this.options.keepAliveMs);
    socket.on('error', (err) => {
      conn.failure ??= new TransportError('SYNOD_TRANSPORT_SOCKET', `inbound connection from ${conn.remote}: ${err.message}`);
    });
    socket.on('close', () => this.onInboundClose(conn));
    socket.on('data', (chunk: Buffer) => this.onInboundData(conn, chunk));
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.refuseInbound(conn, new TransportError('SYNOD_TRANSPORT_HANDSHAKE_TIMEOUT', `no handshake from ${conn.remote} within ${this.options.handshakeTimeoutMs} ms`), null);
    }, this.options.handshakeTimeoutMs);
  }

  private onInboundData(conn: InboundConn, chunk: Uint8Array): void {
    if (conn.state === 'open') {
      const error = conn.decoder!.push(chunk, (frame) => this.deliver(conn, frame));
      if (error !== null) this.refuseInbound(conn, error, null);
      return;
    }
    if (conn.state !== 'handshake') return; // closing: ignore whatever still arrives
    const parsed = conn.reader.push(chunk);
    if (parsed.status === 'more') return;
    if (parsed.status === 'error') {
      // Something that spoke our magic gets a refusal it can read; an HTTP client gets a 400
      // saying what this port is (polite to curl and browsers); anything else is just cut.
      const error = parsed.error;
      let reply: Uint8Array | string | null = null;
      if (isRefuseCode(error.code)) reply = this.refusal(error.code, error.message);
      else if (error.code === 'SYNOD_TRANSPORT_NOT_A_PEER' && error.message.startsWith('received HTTP')) reply = HTTP_REFUSAL;
      this.refuseInbound(conn, error, reply);
      return;
    }
    const hello = parsed.message;
    if (hello.kind !== 'hello') {
      const reason = `expected a hello from ${conn.remote}, got a ${hello.kind}`;
      this.refuseInbound(conn, new TransportError('SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', reason), this.refusal('SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', reason));
      return;
    }
    const refusal = this.checkHello(hello, conn.remote);
    if (refusal !== null) {
      this.refuseInbound(conn, refusal, isRefuseCode(refusal.code) ? this.refusal(refusal.code, refusal.message) : null, hello.senderId);
      return;
    }
    const version = negotiateVersion(hello.versionMin, hello.versionMax, this.options.protocolVersionMin, this.options.protocolVersionMax)!;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'open';
    conn.peer = hello.senderId;
    conn.incarnation = hello.incarnation;
    conn.version = version;
    conn.decoder = new FrameDecoder(this.options.frameBytesMax);
    const previous = this.inboundByPeer.get(hello.senderId);
    this.inboundByPeer.set(hello.senderId, conn);
    if (previous !== undefined) {
      previous.failure ??= new TransportError('SYNOD_TRANSPORT_REPLACED', `replaced by a newer connection from replica ${hello.senderId}`);
      previous.state = 'closing';
      previous.socket.destroy();
    }
    conn.socket.write(encodeWelcome({ version, acceptorId: this.replicaId }));
    this.log('info', 'accepted peer', { peer: hello.senderId, remote: conn.remote, protocolVersion: version });
    this.emit({ type: 'connected', peer: hello.senderId, direction: 'inbound', protocolVersion: version, incarnation: hello.incarnation, address: hello.address });
    if (parsed.rest.length > 0) this.onInboundData(conn, parsed.rest);
  }

  /** The reason to refuse a hello, or null to accept it. */
  private checkHello(hello: Hello, remote: string): TransportError | null {
    const o = this.options;
    if (hello.clusterId !== o.clusterId) {
      return new TransportError('SYNOD_TRANSPORT_CLUSTER_MISMATCH', `replica ${hello.senderId} at ${remote} belongs to cluster ${JSON.stringify(hello.clusterId)}, this replica to ${JSON.stringify(o.clusterId)}`);
    }
    if (negotiateVersion(hello.versionMin, hello.versionMax, o.protocolVersionMin, o.protocolVersionMax) === null) {
      return new TransportError(
        'SYNOD_TRANSPORT_VERSION_MISMATCH',
        `replica ${hello.senderId} at ${remote} speaks protocol versions [${hello.versionMin}, ${hello.versionMax}], replica ${this.replicaId} speaks [${o.protocolVersionMin}, ${o.protocolVersionMax}]: no common version`,
      );
    }
    if (hello.senderId < 1 || hello.senderId > MAX_REPLICA_ID || hello.senderId === this.replicaId) {
      return new TransportError('SYNOD_TRANSPORT_WRONG_REPLICA', `dialer at ${remote} claims replica id ${hello.senderId}, which is invalid or this replica's own`);
    }
    if (hello.targetId !== this.replicaId) {
      return new TransportError('SYNOD_TRANSPORT_WRONG_REPLICA', `replica ${hello.senderId} at ${remote} meant to reach replica ${hello.targetId}, but this is replica ${this.replicaId}`);
    }
    const refused = this.admission?.(hello.senderId, hello.incarnation) ?? null;
    if (refused !== null) return new TransportError('SYNOD_TRANSPORT_INCARNATION_MISMATCH', refused);
    return null;
  }

  private refusal(code: RefuseCode, message: string): Uint8Array {
    return encodeRefuse({ code, versionMin: this.options.protocolVersionMin, versionMax: this.options.protocolVersionMax, message });
  }

  /** Closes an inbound connection for a reason, after sending `reply` (a refusal) when given. */
  private refuseInbound(conn: InboundConn, error: TransportError, reply: Uint8Array | string | null, claimedPeer: ReplicaId | null = null): void {
    if (conn.state === 'closing') return;
    const wasOpen = conn.state === 'open';
    conn.state = 'closing';
    conn.failure ??= error;
    const peer = conn.peer ?? claimedPeer;
    this.log('warn', wasOpen ? 'closing inbound connection' : 'refused inbound connection', { peer, remote: conn.remote, code: error.code, reason: error.message });
    this.emit({ type: 'refused', peer, direction: 'inbound', error });
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    if (reply === null) {
      conn.socket.destroy();
      return;
    }
    conn.socket.end(reply);
    // The dialer hangs up on reading the refusal; do not wait for it forever.
    conn.timer = setTimeout(() => {
      conn.timer = null;
      conn.socket.destroy();
    }, REFUSE_LINGER_MS);
  }

  private deliver(conn: InboundConn, frame: Uint8Array): void {
    if (conn.state !== 'open' || this.closing) return;
    const from = conn.peer!;
    this.receivedFrames.set(from, (this.receivedFrames.get(from) ?? 0) + 1);
    try {
      this.frameHandler(from, frame, conn.version);
    } catch (err) {
      // A throwing handler is a bug in the caller; it must not corrupt the stream for the next frames.
      this.log('error', 'frame handler threw', { peer: from, err: err instanceof Error ? err.stack : String(err) });
    }
  }

  private onInboundClose(conn: InboundConn): void {
    this.sockets.delete(conn.socket);
    this.inbound.delete(conn);
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'closing';
    if (conn.peer === null) return;
    if (this.inboundByPeer.get(conn.peer) === conn) this.inboundByPeer.delete(conn.peer);
    this.emit({ type: 'disconnected', peer: conn.peer, direction: 'inbound', error: conn.failure });
  }

  // ------------------------------------------------------------------ shutdown and helpers

  private async shutdown(): Promise<void> {
    this.closing = true;
    // A start() in progress finishes first, so that its listener is closed below.
    await this.listening?.catch(() => {});
    for (const peer of this.peers.values()) this.detach(peer, true);
    for (const conn of this.inbound) {
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      conn.state = 'closing';
      conn.socket.destroy();
    }
    const socketsClosed = [...this.sockets].map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    const server = this.server;
    const serverClosed =
      server !== null && server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.all([...socketsClosed, serverClosed]);
    if (server !== null) {
      // net.Server emits 'close' before libuv has released the listening handle (that happens in
      // the close-callbacks phase at the end of the loop iteration). Two nested turns of the check
      // phase are past it, so that close() resolves with no handle left behind.
      await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    }
    this.log('info', 'closed', {});
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
  }

  private emit(event: TransportEvent): void {
    try {
      this.eventHandler(event);
    } catch (err) {
      this.log('error', 'event handler threw', { err: err instanceof Error ? err.stack : String(err) });
    }
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    try {
      this.options.logger(level, msg, { replica: this.replicaId, ...fields });
    } catch {
      // A broken logger must not take the transport down.
    }
  }
}

