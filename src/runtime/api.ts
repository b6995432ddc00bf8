// The application-facing contract: what a replicated state machine implements, and how a
// replica is started. Modelled on RSL's RSLStateMachine (rsl.h): ExecuteReplicatedRequest ->
// apply, ExecuteFastReadRequest -> query, SaveState/LoadState -> snapshot/restore,
// NotifyStatus -> onRoleChange, NotifyConfigurationChanged -> onConfigChange.

import type { StateDigestStatus } from './state-digests.js';
import type { CoreOptions } from '../core/options.js';
import type { ConfigEpoch, RemovalNotice, ReplicaId } from '../core/types.js';
import type { StorageIo } from '../storage/io.js';
import type { LogBackend } from '../storage/log.js';
import type { PeerTransport } from '../transport/types.js';
import type { PmemMappingCalls } from '../storage/native.js';

/** About one command, for apply(): valid during that call only (the replica refills one object per command). */
export interface ApplyContext {
  /** The slot whose batch holds this command. */
  slot: number;
  /** The command's session. */
  clientId: number;
  seq: number;
  /**
   * The time of this command, stamped by the leader into the log (ms since the epoch of the
   * leader's wall clock, made non-decreasing): the same on every replica. Use it for TTLs and
   * expiry, never a clock of your own. 0 for commands logged before stamps existed.
   */
  timeMs: number;
}

/**
 * A deterministic state machine. Every replica applies the same commands in the same order and
 * must reach the same state: no clocks, no randomness, no I/O inside apply().
 * Callbacks run on the event loop, one at a time; they must not block for long.
 */
export interface StateMachine {
  /** Execute a committed command; the result goes back to the proposer (and into the session table). */
  apply(command: Uint8Array, context: ApplyContext): Uint8Array;
  /** Answer a read-only query against the current state. */
  query(request: Uint8Array): Uint8Array;
  /**
   * Serialize the whole state. Called between two applies, so the state is consistent; the
   * bytes are then written to disk in the background (the apply loop stops only for this call).
   */
  snapshot(): Uint8Array;
  /**
   * Optional, used instead of snapshot() when present: capture the state now (between two applies,
   * as snapshot()) and return its bytes — exactly snapshot()'s, concatenated — as chunks produced
   * later. The runtime writes each chunk before asking for the next, and applies go on in between,
   * so the iterable must read a copy, never the live state. For a large state this turns one long
   * pause of the apply loop into a short copy. An empty chunk adds no bytes: it asks the runtime
   * to let the event loop run before the next chunk is asked for (work in steps, e.g. a sort).
   */
  snapshotStream?(): Iterable<Uint8Array>;
  /**
   * Optional hint: the commands of one slot, just before they are applied (the same arrays
   * apply() will get, borrowed for this call only; retries that will be skipped included). It
   * must not change the state. A state machine whose apply() waits on memory (a large hash table:
   * a cache miss chain per command) can touch what the commands will touch here, all commands at
   * once, so the misses overlap instead of coming one per apply().
   */
  prefetch?(commands: readonly Uint8Array[]): void;
  /**
   * Optional zero-copy form of apply(), used when present for commands read from an encoded batch
   * (a follower's accepts, a replayed or caught-up log): the command is `bytes[offset, offset +
   * length)`, borrowed for this call only. It must do exactly what apply() does with those bytes
   * (`apply(bytes.subarray(offset, offset + length), context)`); the runtime then makes no view
   * per command (on a follower at full load, most of what it allocated per write).
   */
  applyAt?(bytes: Uint8Array, offset: number, length: number, context: ApplyContext): Uint8Array;
  /**
   * Optional, prefetch() for applyAt(): the slot's commands are `bytes[offsets[i], offsets[i] +
   * lengths[i])` for i < count (the arrays are the runtime's, reused: read them during the call only).
   */
  prefetchAt?(bytes: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): void;
  /** Replace the state with a snapshot's. */
  restore(snapshot: Uint8Array): void;
  /** Before and after the commands of one slot (RSL's batch brackets). */
  beforeBatch?(slot: number): void;
  afterBatch?(slot: number): void;
  /** This replica became primary (after its recovery round committed) or stopped being it. */
  onRoleChange?(role: 'primary' | 'secondary', leader: ReplicaId | null): void;
  onConfigChange?(members: ReplicaId[]): void;
  /**
   * RSL's CanBecomePrimary: consulted before this replica campaigns (election timeout, campaign(),
   * a leadership transfer to it). false vetoes (it does not campaign; asked again after the next
   * timeout); true lets it campaign; a Uint8Array lets it campaign with that opaque primary cookie,
   * which rides in its prepares (keep it small: bytes, not state). A throw counts as a veto.
   */
  canBecomePrimary?(): boolean | Uint8Array;
  /**
   * RSL's AcceptMessageFromReplica: consulted before this replica promises a new ballot to
   * `candidate`, with the candidate's cookie (null if it sent none). false refuses the promise (the
   * candidate cannot count this replica towards its quorum). A throw counts as a refusal.
   */
  acceptPrimary?(candidate: ReplicaId, cookie: Uint8Array | null): boolean;
}

export interface PeerAddress {
  host: string;
  port: number;
}

export type Consistency = 'linearizable' | 'lease' | 'local';

export interface ReplicaOptions {
  id: ReplicaId;
  /** The cluster's name: peers and data directories of another cluster are refused. */
  clusterId: string;
  dataDir: string;
  /** Initial members and their peer addresses (this replica included, unless it joins). */
  members: Map<ReplicaId, PeerAddress>;
  /**
   * Join an existing cluster instead of bootstrapping: `members` is then the cluster's initial
   * member list (this replica is not in it) and `listen` this replica's own address. It follows the
   * log as a learner until a member adds it (addMember on the leader).
   */
  join?: boolean;
  stateMachine: StateMachine;
  /** Where to listen for peers (TCP); ignored when `transport` is given. */
  listen?: PeerAddress;
  /**
   * Where peers should dial this replica, named in its hellos (docs/transport.md, extension 2), when
   * that is not `listen` (a proxy, NAT, or a wildcard listen host). Default `listen`; a wildcard
   * host is never named. A joiner uses it to reach a leader no configuration it knows names yet.
   */
  advertise?: PeerAddress;
  /**
   * Mutual TLS between replicas (PEM files): each certificate names its replica as the SAN URI
   * synod://replica/<id> (and the cluster as synod://cluster/<id>); `synod certs` makes a dev set.
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** An existing transport (tests: the in-memory one). */
  transport?: PeerTransport;
  logBackend?: LogBackend;
  /**
   * Limits of the peer transport (defaults in src/transport/options.ts, docs/security.md):
   * largest frame, bytes queued for one slow peer, handshake time, and inbound connections
   * handshaking at once and per remote address. Ignored with `transport` (tests).
   */
  peerLimits?: PeerLimits;
  /** Protocol tunables (pipeline window, batching, election timeout, lease...). */
  core?: Partial<Omit<CoreOptions, 'id' | 'members'>>;
  /** Core tick period. Default 10 ms. */
  tickMs?: number;
  /** Take a snapshot after this many applied slots. Default 10,000. */
  snapshotIntervalSlots?: number;
  /**
   * Also take one after this many command payload bytes applied since the last (whichever comes
   * first), and never fewer than twice the latest snapshot's size: a snapshot writes the whole
   * state, so this keeps its cost at most half a byte per byte written, whatever the state's size.
   * This bounds the log kept on disk (with the compaction margin). Default 64 MiB.
   */
  snapshotIntervalBytes?: number;
  /**
   * While this replica leads, both snapshot intervals are this many times longer. Default 4; 1
   * makes no difference. The leader's snapshot pauses every write of the cluster for as long as
   * the application's capture takes (a follower's pauses only that follower: the other
   * followers make the quorum), and serializing costs the leader, already the busiest replica,
   * CPU. In exchange the leader keeps up to this many intervals of log on disk, and replays that
   * much more at a restart. A new leader's latest snapshot is recent: it took them as a follower.
   */
  leaderSnapshotIntervalFactor?: number;
  /**
   * When a snapshot is due while this replica leads, ask a follower (in turn) for that follower's
   * latest snapshot and keep it as its own (RSL's primary copies a secondary's checkpoint) instead
   * of capturing and serializing its state. The leader's state machine is not touched: every
   * replica applies the same chosen commands, so the follower's snapshot of slot s is the leader's
   * state at s. If none comes within 3 s (or none newer than the leader's own), the leader makes
   * its own instead. Default false: measured with three replicas sharing one 2-core machine, the
   * follower's shipping and the transfer cost more than the leader's own snapshot (worse p99 while
   * it ran, docs/performance.md); meant for replicas on machines of their own, where the follower
   * pays with its own CPU and disk. Counted in `counters().snapshotsAdopted`.
   */
  leaderAdoptsSnapshots?: boolean;
  /**
   * After applying each slot that is a multiple of this, the replica hashes its replicated state
   * (the application's snapshot bytes, the session table and the incarnation book: CRC32C) and
   * sends the digest to its peers; each replica compares every peer's digest of a slot with its
   * own and raises an alarm when they differ (SAFETY.md: divergence caught early). Set it equal on
   * every replica (digests are only compared at equal slots). Costs one capture and serialization
   * of the state, without disk writes, per interval. Requires a deterministic snapshot: the same
   * state must give the same bytes on every replica. Default 100,000 (about every 100–200 s at
   * full load); 0 turns it off.
   */
  stateDigestIntervalSlots?: number;
  /** Keep this many slots of log on disk below a snapshot for lagging peers. Default 1,000. */
  compactionMarginSlots?: number;
  /**
   * The log held in memory: applied entries are released once the newer applied entries reach
   * this many bytes (estimated: command payloads plus 128 bytes per command and 256 per slot for
   * their objects). A peer that lags further is answered from the log on disk, or, below the
   * disk log's start, with a snapshot. Unapplied entries (at most the pipeline window) come on
   * top. Default 4 MiB (DEFAULT_LOG_MEMORY_BYTES_MAX).
   */
  logMemoryBytesMax?: number;
  /** A proposal with no result after this long ends in OutcomeUnknownError. Default 5 s. */
  proposeTimeoutMs?: number;
  /**
   * Admission limit of the leader: most commands waiting to be proposed (queued for the next
   * drain, or in the protocol core for room in the pipeline window: in no slot yet). A proposal
   * beyond it is refused at once with OverloadedError (SYNOD_OVERLOADED, certain: never proposed).
   * Without a limit a window kept full (a follower's disk stalled while heartbeats pass) let the
   * queue grow with every request and retry. Default 131,072: twice the benchmark's most lanes
   * (65,536 requests in flight over the whole cluster), so no load that waits for its answers
   * meets it; each waiting command costs ~250 bytes besides its payload (~32 MiB at the limit).
   */
  proposalQueueCommandsMax?: number;
  /**
   * The same limit in command payload bytes. Default 256 MiB: 256 of the KV server's largest
   * values (1 MiB) waiting at once; the benchmark's most lanes with its 64-byte values need 4 MiB.
   * A single command larger than the limit is still admitted when nothing waits.
   */
  proposalQueueBytesMax?: number;
  /**
   * Most client sessions the replicated session table keeps (openSession(), the binary protocol's
   * REGISTER); a registration beyond it evicts the least recently active one. Part of the
   * replicated state's rules: every replica must use the same value. Default 100,000.
   */
  sessionsMax?: number;
  /**
   * A session with no executed command for this long (leader-stamped time, ms) expires: its
   * commands then fail with SessionExpiredError. Every replica must use the same value. Default 1 hour.
   */
  sessionExpiryMs?: number;
  /** Largest snapshot accepted from a peer. Default 1 GiB. */
  snapshotBytesMax?: number;
  logger?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /**
   * Tests/simulation: injected file system for every storage call of the replica (the data
   * directory, metadata, snapshot store, log); file log backend only; default node:fs. With it
   * the log writes through its JavaScript flush loop, not the native writer.
   * test/runtime/power-loss.test.ts passes src/sim/power-loss-fs.ts here.
   */
  storageIo?: StorageIo;
  /**
   * Tests/simulation, with storageIo and logBackend 'pmem': the native addon's mapping calls, as
   * modelled over that file system (src/sim/power-loss-fs.ts, mount().pmem).
   */
  storagePmem?: PmemMappingCalls;
  /**
   * Tests/simulation: the log's segment size (default 64 MiB, preallocated). An in-memory file
   * system cannot hold 64 MiB segments for every replica, and small ones roll and recycle often.
   */
  logSegmentBytes?: number;
}

export interface ProposeOptions {
  /** The caller's session (exactly-once across retries); default: the replica's own session. */
  clientId?: number;
  /** This command's number in the caller's session: required with clientId, refused without it. */
  seq?: number;
  /** Every seq below this was answered to the caller. Only with clientId. */
  floor?: number;
  timeoutMs?: number;
  /** Put this command alone in its slot, batched with no other (RSL's ReplicateRequestExclusiveVote). */
  exclusive?: boolean;
  /**
   * A "last request" (RSL's isLastDecree; implies exclusive): once it is chosen the replica set
   * executes nothing after it and every replica refuses proposals with StoppedError, durably
   * (across restarts and snapshots). Reads keep working. See docs/api.md for how to go on.
   */
  last?: boolean;
}

export interface ReadOptions {
  consistency?: Consistency;
  /** local reads: wait until this slot is applied (read-your-writes), up to maxWaitMs. */
  minSlot?: number;
  maxWaitMs?: number;
}

export interface ReadResult {
  result: Uint8Array;
  /** The slot applied when the query ran (a caller can bound staleness with it). */
  appliedSlot: number;
}

/** One peer as this replica sees it (RSL's GetReplicaInformation). */
export interface PeerHealth {
  /** The outbound connection is established. */
  connected: boolean;
  /** Bytes queued for the peer and not yet handed to the kernel (outstanding sends). */
  outstandingBytes: number;
  sentFrames: number;
  droppedFrames: number;
  /** The peer's chosen prefix from its last heartbeat acknowledgement (leader only; null elsewhere). */
  lastAckedSlot: number | null;
  /** Dial attempts since the connection was last seen up (0 while connected). */
  consecutiveFailures: number;
  lastError: string | null;
}

export interface ReplicaStatus {
  id: ReplicaId;
  role: 'leader' | 'follower' | 'candidate';
  leader: ReplicaId | null;
  ballot: number;
  commitSlot: number;
  appliedSlot: number;
  members: ReplicaId[];
  configs: ConfigEpoch[];
  snapshotSlot: number;
  /** The slot of the last request the replica set stopped at (propose({last: true})), or null. */
  stoppedAtSlot: number | null;
  /**
   * Set when a member answered this replica's campaign with a configuration newer than any it
   * knows that leaves it out (a notMember message): it was removed while it could not hear of it
   * (down through the removal). It no longer campaigns; stop it. Null otherwise.
   */
  removal: RemovalNotice | null;
  /**
   * The log: on disk (headLsn..tailLsn, usedBytes), and in memory: the applied slots' records
   * kept for lagging peers (memoryBytes, bounded by logMemoryBytesMax) and the first slot the
   * protocol core still holds as objects (memoryStartSlot: entries leave it once applied).
   */
  log: {
    headLsn: number;
    tailLsn: number;
    usedBytes: number;
    memoryBytes: number;
    memoryStartSlot: number;
    /**
     * How the log writes: 'native' (the addon's pipelined writer), 'flush-loop' (JavaScript, one
     * write and fdatasync at a time: the addon is not built, slower), 'mapped' (pmem), 'memory',
     * or 'injected' (tests).
     */
    writePath: 'native' | 'injected' | 'flush-loop' | 'mapped' | 'memory';
  };
  peers: Record<string, { connected: boolean; queuedBytes: number; droppedFrames: number }>;
  /** This replica's incarnation id (32 hex digits, made with its data directory). */
  incarnation: string;
  /** The replicated incarnation book: replica id -> the incarnation bound to it (SAFETY.md). */
  incarnations: Record<string, string>;
  /**
   * The newest state digest of this replica (`stateDigestIntervalSlots`): its slot, the digest,
   * and the peers whose digest of that slot is the same (`agree`) or not (`differ`: the states
   * diverged; also logged at error level and counted in `counters().stateDigestMismatches`).
   * Null before the first digest slot.
   */
  stateDigest: StateDigestStatus | null;
  /**
   * What this replica holds waiting to be proposed (commands and their payload bytes: the next
   * drain's and the core's queue for room in the pipeline window), against proposalQueueCommandsMax
   * and proposalQueueBytesMax. Near the limits on a leader: the window is not moving (a follower's
   * disk, the network) or the load is more than the cluster commits.
   */
  proposalQueue: { commands: number; bytes: number };
}

/** The peer transport's limits that an operator may set (TransportOptions of the same names). */
export interface PeerLimits {
  frameBytesMax?: number;
  peerQueueBytesMax?: number;
  handshakeTimeoutMs?: number;
  inboundHandshakingMax?: number;
  inboundPerAddressMax?: number;
}
