// MemoryTransport: the PeerTransport interface inside one process, for tests.
//
// Transports join a MemoryNetwork. A frame sent is handed over, not copied (PeerTransport.send:
// the transport owns it, as TCP does with the large frames it writes by reference), and delivered
// on a later event-loop turn: the network keeps one FIFO of deliveries
// and drains it from a single setImmediate, so per-pair order holds and a ping-pong between two
// handlers cannot starve timers (it would with microtasks). Frames sent during a delivery turn go
// to the next turn.
//
// The same rules as TCP where they matter to the runtime: frames larger than frameBytesMax and
// frames beyond peerQueueBytesMax (bytes sent and not yet delivered) are dropped and counted;
// a frame to a peer that is not started, or is cut off by a partition or the drop filter, is
// dropped and counted; a frame in flight to a transport that closes (or restarts) is lost.
// Differences: no handshake (cluster id and versions are not checked), no events, `reconnects`
// stays 0, and addresses given to setPeers are ignored (only the ids matter).

import {
  type FrameHandler,
  type PeerAddress,
  type PeerAdmission,
  type PeerStats,
  type PeerTransport,
  type ReplicaId,
  type TransportError,
  type TransportEventHandler,
} from './types.js';
import { FRAME_HEADER_BYTES } from './frame.js';
import { DEFAULT_TRANSPORT_OPTIONS } from './options.js';

export interface MemoryTransportOptions {
  replicaId: ReplicaId;
  /** Default 16 MiB, as TCP. */
  frameBytesMax?: number;
  /** Default 64 MiB, as TCP. */
  peerQueueBytesMax?: number;
  /** Reported to the frame handler. Default 1. */
  protocolVersion?: number;
}

/** Return true to drop the frame. Called at send time. */
export type DropFilter = (from: ReplicaId, to: ReplicaId, frame: Uint8Array) => boolean;

interface Delivery {
  source: MemoryTransport;
  target: MemoryTransport;
  frame: Uint8Array;
}

export class MemoryNetwork {
  private readonly endpoints = new Map<ReplicaId, MemoryTransport>();
  private queue: Delivery[] = [];
  private immediate: NodeJS.Immediate | null = null;
  private dropFilter: DropFilter | null = null;
  /** Replica -> partition group; null when healed. A replica absent from every group is isolated. */
  private groups: Map<ReplicaId, number> | null = null;

  createTransport(options: MemoryTransportOptions): MemoryTransport {
    return new MemoryTransport(this, options);
  }

  /** Drops every frame for which `filter` returns true (null removes the filter). */
  setDropFilter(filter: DropFilter | null): void {
    this.dropFilter = filter;
  }

  /** Cuts the network into groups: frames flow only within a group. Replicas not listed are isolated. */
  partition(groups: ReplicaId[][]): void {
    this.groups = new Map();
    groups.forEach((group, index) => group.forEach((id) => this.groups!.set(id, index)));
  }

  heal(): void {
    this.groups = null;
  }

  /** Whether frames from `from` to `to` can currently arrive (ignoring the drop filter). */
  reachable(from: ReplicaId, to: ReplicaId): boolean {
    if (!this.endpoints.has(to)) return false;
    if (this.groups === null) return true;
    const a = this.groups.get(from);
    return a !== undefined && a === this.groups.get(to);
  }

  /** Frames waiting for delivery. */
  inFlight(): number {
    return this.queue.length;
  }

  // ---------------------------------------------------------------- used by MemoryTransport

  /** @internal */
  join(transport: MemoryTransport): void {
    const current = this.endpoints.get(transport.replicaId);
    if (current !== undefined && current !== transport) {
      throw new Error(`replica ${transport.replicaId} is already on this memory network (close it before restarting)`);
    }
    this.endpoints.set(transport.replicaId, transport);
  }

  /** @internal */
  leave(transport: MemoryTransport): void {
    if (this.endpoints.get(transport.replicaId) === transport) this.endpoints.delete(transport.replicaId);
    const kept: Delivery[] = [];
    for (const delivery of this.queue) {
      if (delivery.target === transport || delivery.source === transport) delivery.source.undelivered(delivery.target.replicaId, delivery.frame);
      else kept.push(delivery);
    }
    this.queue = kept;
    if (this.queue.length === 0 && this.immediate !== null) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
  }

  /** @internal Returns false when the frame cannot go (peer down, partitioned, filtered). */
  post(source: MemoryTransport, to: ReplicaId, frame: Uint8Array): boolean {
    const target = this.endpoints.get(to);
    if (target === undefined || !this.reachable(source.replicaId, to)) return false;
    if (this.dropFilter !== null && this.dropFilter(source.replicaId, to, frame)) return false;
    this.queue.push({ source, target, frame });
    this.immediate ??= setImmediate(this.drain);
    return true;
  }

  private readonly drain = (): void => {
    this.immediate = null;
    const batch = this.queue;
    this.queue = [];
    for (const { source, target, frame } of batch) {
      // A transport that left (closed, or closed and restarted) loses what was in flight to it.
      if (this.endpoints.get(target.replicaId) === target) {
        source.delivered(target.replicaId, frame);
        target.receive(source.replicaId, frame, source.incarnation, source.advertised);
      } else {
        source.undelivered(target.replicaId, frame);
      }
    }
  };
}

interface MemoryPeer {
  queuedBytes: number;
  sentFrames: number;
  droppedFrames: number;
  lastError: TransportError | null;
}

export class MemoryTransport implements PeerTransport {
  readonly replicaId: ReplicaId;
  private readonly frameBytesMax: number;
  private readonly peerQueueBytesMax: number;
  private readonly protocolVersion: number;
  private readonly peers = new Map<ReplicaId, MemoryPeer>();
  private readonly receivedFrames = new Map<ReplicaId, number>();
  /** The incarnation and address each sender last named (to report new ones as a connection). */
  private readonly seen = new Map<ReplicaId, { incarnation: string | null; address: PeerAddress | null }>();
  private eventHandler: TransportEventHandler = () => {};
  private frameHandler: FrameHandler = () => {};
  private state: 'new' | 'started' | 'closed' = 'new';
  /** @internal Named to every receiver, as a TCP hello does. */
  incarnation: string | null = null;
  /** @internal Named to every receiver, as a TCP hello does. */
  advertised: PeerAddress | null = null;
  private admission: PeerAdmission | null = null;
  /** Frames refused by the admission check (a peer whose incarnation is not the one the cluster knows). */
  refusedFrames = 0;

  constructor(
    private readonly network: MemoryNetwork,
    options: MemoryTransportOptions,
  ) {
    this.replicaId = options.replicaId;
    this.frameBytesMax = options.frameBytesMax ?? DEFAULT_TRANSPORT_OPTIONS.frameBytesMax;
    this.peerQueueBytesMax = options.peerQueueBytesMax ?? DEFAULT_TRANSPORT_OPTIONS.peerQueueBytesMax;
    this.protocolVersion = options.protocolVersion ?? 1;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('MemoryTransport.start() called twice or after close()');
    this.network.join(this);
    this.state = 'started';
  }

  send(to: ReplicaId, frame: Uint8Array): void {
    const peer = this.peers.get(to);
    if (peer === undefined || this.state !== 'started') return;
    const bytes = FRAME_HEADER_BYTES + frame.length;
    if (frame.length > this.frameBytesMax || peer.queuedBytes + bytes > this.peerQueueBytesMax) {
      peer.droppedFrames++;
      return;
    }
    if (!this.network.post(this, to, frame)) {
      peer.droppedFrames++;
      return;
    }
    peer.queuedBytes += bytes;
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  onEvent(handler: TransportEventHandler): void {
    // No connections, hence no connection events, except that each peer's first frame counts as
    // its inbound connection: it tells the receiver the sender's incarnation, as a TCP hello does.
    this.eventHandler = handler;
  }

  setIncarnation(incarnation: string): void {
    this.incarnation = incarnation;
  }

  setAdvertisedAddress(address: PeerAddress | null): void {
    this.advertised = address;
  }

  setAdmission(admit: PeerAdmission | null): void {
    // Checked on every delivery below, so it applies at once to peers already talking.
    this.admission = admit;
  }

  setPeers(peers: ReadonlyMap<ReplicaId, PeerAddress>): void {
    for (const id of this.peers.keys()) if (!peers.has(id)) this.peers.delete(id);
    for (const id of peers.keys()) {
      if (id === this.replicaId || this.peers.has(id)) continue;
      this.peers.set(id, { queuedBytes: 0, sentFrames: 0, droppedFrames: 0, lastError: null });
    }
  }

  stats(): Map<ReplicaId, PeerStats> {
    const out = new Map<ReplicaId, PeerStats>();
    for (const [id, peer] of this.peers) {
      out.set(id, {
        connected: this.state === 'started' && this.network.reachable(this.replicaId, id),
        queuedBytes: peer.queuedBytes,
        sentFrames: peer.sentFrames,
        droppedFrames: peer.droppedFrames,
        reconnects: 0,
        receivedFrames: this.receivedFrames.get(id) ?? 0,
        protocolVersion: this.protocolVersion,
        lastError: peer.lastError,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.network.leave(this);
  }

  // ---------------------------------------------------------------- called by MemoryNetwork

  /** @internal */
  receive(from: ReplicaId, frame: Uint8Array, incarnation: string | null, address: PeerAddress | null): void {
    if (this.state !== 'started') return;
    const seen = this.seen.get(from);
    if (seen === undefined || seen.incarnation !== incarnation || seen.address !== address) {
      this.seen.set(from, { incarnation, address });
      this.eventHandler({ type: 'connected', peer: from, direction: 'inbound', protocolVersion: this.protocolVersion, incarnation, address });
    }
    if (this.admission !== null && this.admission(from, incarnation) !== null) {
      this.refusedFrames++;
      return;
    }
    this.receivedFrames.set(from, (this.receivedFrames.get(from) ?? 0) + 1);
    try {
      this.frameHandler(from, frame, this.protocolVersion);
    } catch (err) {
      // Surface the caller's bug loudly (an uncaught exception fails the test) without losing
      // the rest of this delivery batch.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  /** @internal */
  delivered(to: ReplicaId, frame: Uint8Array): void {
    const peer = this.peers.get(to);
    if (peer === undefined) return;
    // Clamped: the peer may have been removed and re-added while the frame was in flight.
    peer.queuedBytes = Math.max(0, peer.queuedBytes - FRAME_HEADER_BYTES - frame.length);
    peer.sentFrames++;
  }

  /** @internal */
  undelivered(to: ReplicaId, frame: Uint8Array): void {
    const peer = this.peers.get(to);
    if (peer === undefined) return;
    peer.queuedBytes = Math.max(0, peer.queuedBytes - FRAME_HEADER_BYTES - frame.length);
    peer.droppedFrames++;
  }
}
