// The peer transport's public contract: what the runtime sees of the network.
//
// A transport moves opaque frames (Uint8Array) between replica ids. It knows nothing of the
// message codec; the runtime encodes and decodes messages with src/codec. Two implementations
// share this interface and one compliance suite: TcpTransport (tcp.ts) and MemoryTransport
// (memory.ts). Delivery is best-effort: a frame may be dropped (backpressure, a peer down, a
// connection lost mid-write), never duplicated, never reordered within one (sender, receiver)
// pair on one connection. Consensus retransmits what it needs.

import type { ReplicaId } from '../core/types.js';

export type { ReplicaId };

/** Where a peer listens. */
export interface PeerAddress {
  host: string;
  port: number;
}

/** HOST:PORT, with an IPv6 host in brackets ([::1]:7001), as URLs and the clients' parsers take it. */
export function hostPort(address: PeerAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Called for every inbound frame, synchronously, in arrival order per sender. */
export type FrameHandler = (from: ReplicaId, frame: Uint8Array, protocolVersion: number) => void;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A logger hook: no logging library required (the runtime wires pino later). */
export type TransportLogger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Observability of one peer, as seen by this replica. Plain data, a snapshot at the call. */
export interface PeerStats {
  /** The outbound connection to the peer is established (handshake done). */
  connected: boolean;
  /** Bytes accepted by send() and not yet handed to the kernel (never above peerQueueBytesMax). */
  queuedBytes: number;
  /** Frames handed to the socket (TCP) or delivered (memory). */
  sentFrames: number;
  /** Frames dropped: queue bound exceeded, peer down or backing off, connection lost with frames queued, oversized. */
  droppedFrames: number;
  /** Dial attempts after the first one. */
  reconnects: number;
  /** Frames received from this peer (on its inbound connection). */
  receivedFrames: number;
  /** Protocol version agreed on the outbound connection, 0 when not connected. */
  protocolVersion: number;
  /** The last error seen on the outbound connection, or null. */
  lastError: TransportError | null;
}

/** Something operators may want to see happen: connections and refusals. */
export type TransportEvent =
  /**
   * On inbound connections, from the peer's hello: incarnation, its incarnation id (32 hex
   * digits); address, where it listens for peers. Each null when it sent none.
   */
  | { type: 'connected'; peer: ReplicaId; direction: 'outbound' | 'inbound'; protocolVersion: number; incarnation?: string | null; address?: PeerAddress | null }
  | { type: 'disconnected'; peer: ReplicaId; direction: 'outbound' | 'inbound'; error: TransportError | null }
  /** A handshake failed or a connection was closed for a protocol reason. peer is null when unknown. */
  | { type: 'refused'; peer: ReplicaId | null; direction: 'outbound' | 'inbound'; error: TransportError };

export type TransportEventHandler = (event: TransportEvent) => void;

/**
 * Decides whether a peer may talk to this replica: its id and the incarnation id its hello named
 * (null when none). Returns null to admit it, or the reason to refuse it.
 */
export type PeerAdmission = (peer: ReplicaId, incarnation: string | null) => string | null;

export interface PeerTransport {
  /** This replica's id. */
  readonly replicaId: ReplicaId;
  /** Starts listening (TCP) or joins the network (memory), then dials the known peers. */
  start(): Promise<void>;
  /**
   * Queues one frame for `to`. Never throws, never blocks: it may drop the frame (counted in
   * stats) under backpressure, while the peer is unreachable, or after close(). The transport
   * owns `frame` from here on: do not modify it afterwards.
   */
  send(to: ReplicaId, frame: Uint8Array): void;
  /**
   * Sets the one handler for inbound frames. A frame may be a view into a larger receive buffer:
   * copy it if it is kept for long (it pins that buffer).
   */
  onFrame(handler: FrameHandler): void;
  /** Sets the handler for connection events (optional). */
  onEvent(handler: TransportEventHandler): void;
  /**
   * This replica's incarnation id (32 hex digits), named in every hello from now on, so peers can
   * tell a replica that lost its data from the one they knew under the same id (SAFETY.md).
   */
  setIncarnation(incarnation: string): void;
  /**
   * Where this replica listens for peers, named in every hello from now on (null: not named), so
   * a replica it dials can reach it back before the log tells that replica its address.
   */
  setAdvertisedAddress(address: PeerAddress | null): void;
  /**
   * Sets who may talk to this replica. Checked at each handshake (a refusal names the reason) and
   * again at once for the connections already open: those no longer admitted are closed and no
   * frame of theirs is delivered after this call.
   */
  setAdmission(admit: PeerAdmission | null): void;
  /**
   * Replaces the set of peers (membership change). New peers are dialed, removed peers are
   * disconnected and their queues dropped, a changed address reconnects. The own id is ignored.
   */
  setPeers(peers: ReadonlyMap<ReplicaId, PeerAddress>): void;
  /** Per-peer statistics for the current peers. */
  stats(): Map<ReplicaId, PeerStats>;
  /** Closes every connection and the listener; resolves when they are closed and no timer is left. */
  close(): Promise<void>;
}

/**
 * Stable codes for everything a transport can refuse or fail with. The first six are also
 * sent on the wire in a refusal (see handshake.ts and docs/transport.md).
 */
export type TransportErrorCode =
  | 'SYNOD_TRANSPORT_CLUSTER_MISMATCH'
  | 'SYNOD_TRANSPORT_VERSION_MISMATCH'
  | 'SYNOD_TRANSPORT_WRONG_REPLICA'
  | 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED'
  | 'SYNOD_TRANSPORT_SHUTTING_DOWN'
  | 'SYNOD_TRANSPORT_INCARNATION_MISMATCH'
  | 'SYNOD_TRANSPORT_NOT_A_PEER'
  | 'SYNOD_TRANSPORT_HANDSHAKE_TIMEOUT'
  | 'SYNOD_TRANSPORT_CONNECT_TIMEOUT'
  | 'SYNOD_TRANSPORT_FRAME_TOO_LARGE'
  | 'SYNOD_TRANSPORT_PROTOCOL'
  | 'SYNOD_TRANSPORT_SOCKET'
  | 'SYNOD_TRANSPORT_REPLACED';

export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    /** True when the other side reported this reason (a refusal received), false when detected here. */
    readonly remote = false,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
