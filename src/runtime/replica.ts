// The runtime: drives the pure core (src/core/replica.ts) with real time, storage and network.
//
// Design note
// -----------
// Every input (a peer frame, a tick, a proposal, a durable completion) goes straight into the
// core; a drain, scheduled once per microtask burst, then takes the core's Ready batches and
//   1. appends the persist ops to the log (tentatively) and starts one group commit; when it
//      completes, the core is told persisted(seq) and releases the votes that waited for it;
//   2. sends messages (the core already held back every vote that is not yet durable);
//   3. applies committed slots to the state machine, through the session table;
//   4. answers reads whose slot has been applied.
// Nothing here blocks the event loop on I/O: commits are asynchronous and shared (group commit).
// The same core runs unchanged in the simulator.

import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { decodeMessage, encodeMessage, MESSAGE_FORMAT_VERSION } from '../codec/messages.js';
import { BatchCursor, DecodedBatch, encodedBatchOf } from '../codec/values.js';
import { coreOptions } from '../core/options.js';
import { Replica } from '../core/replica.js';
import { SeqMap } from '../core/seq-map.js';
import { SeqWindow } from '../core/seq-window.js';
import { decodeSessionId, DEFAULT_SESSION_LIMITS, encodeSessionId, isRegisterCommand, REGISTER_PAYLOAD, SessionTable, type SessionLimits } from '../core/sessions.js';
import type { Command, ConfigEpoch, DurableState, Entry, PrimaryHooks, Ready, ReplicaId, Slot, Value } from '../core/types.js';
import { mkdirDurable, nodeIo } from '../storage/io.js';
import { DEFAULT_SEGMENT_BYTES, DEFAULT_SPARE_SEGMENTS_MAX, openLog, type LogStore } from '../storage/log.js';
import { META_FILE, readMetadata, writeMetadata, type Metadata } from '../storage/metadata.js';
import { StorageError } from '../storage/errors.js';
import { tryNativeCrc } from '../storage/native.js';
import { SnapshotStore } from '../storage/snapshot-store.js';
import { crc32c } from '../storage/format.js';
import { TcpTransport } from '../transport/tcp.js';
import { readTlsFiles, tlsSocketFactory } from '../transport/tls.js';
import type { PeerTransport } from '../transport/types.js';
import { StatisticsRecorder, type LatencyHistogram, type ReplicaStatistics } from './statistics.js';
import type { ApplyContext, PeerAddress, PeerHealth, ProposeOptions, ReadOptions, ReadResult, ReplicaOptions, ReplicaStatus, StateMachine } from './api.js';
import { RecoveredLog, recordsOf } from './durable.js';
import { TurnList } from './turn-list.js';
import { DataDirError, NotLeaderError, OutcomeUnknownError, OverloadedError, SessionExpiredError, ShuttingDownError, StaleReadError, StorageFailedError, StoppedError, SynodError } from './errors.js';
import { DeadlineWheel, type WheelItem } from './deadlines.js';
import { PendingEntry, PendingTable, type ProposalCallback } from './pending.js';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import { decodeInternal, encodeEndpointsCommand, encodeOwnSessionCommand, encodeSessionLimitsCommand, ENDPOINTS_PER_REPLICA_MAX, validEndpoint } from './internal-commands.js';
import { decodeSnapshotBody, encodeSnapshotBodyHead, snapshotBodyHeadOf } from './snapshot-body.js';
import { DEFAULT_LOG_MEMORY_BYTES_MAX, RecentLog } from './log-window.js';
import { readChosenEntries } from './log-catchup.js';
import { hex, StateDigests, type DigestMismatch } from './state-digests.js';

const DEFAULT_LEADER_SNAPSHOT_INTERVAL_FACTOR = 4;
const FRAME_SNAPSHOT_REQUEST = 0xf1;
const FRAME_SNAPSHOT_CHUNK = 0xf2;
/** A replica's state digest: kind | slot f64 | digest u32 (state-digests.ts). */
const FRAME_STATE_DIGEST = 0xf3;
const STATE_DIGEST_FRAME_BYTES = 13;
const DEFAULT_STATE_DIGEST_INTERVAL_SLOTS = 100_000;
const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
/**
 * How long (in longest election timeouts) a member keeps dialing a non-member it told so
 * (notMember) after its last prepare: as the core's window for a removed replica's notices.
 */
const NOTICE_PEER_TIMEOUTS = 20;
const SNAPSHOT_FETCH_TIMEOUT_MS = 3_000;
/** A snapshot shipment whose peer reads nothing for this long is abandoned (its fetch timed out long before). */
const SNAPSHOT_SHIP_STALL_MS = 10_000;
/** Most record bytes in one catch-up answer the runtime makes (from the recent log in memory or from disk). */
const LOG_CATCHUP_BYTES_MAX = 4 * 1024 * 1024;


interface PendingRead extends WheelItem<PendingRead> {
  readId: number;
  /** null for readIndex(): the wait without the query (the caller runs it later, with queryLocal). */
  query: Uint8Array | null;
  /** With the result and the applied slot; with the applied slot alone when query is null. */
  resolve: (r: ReadResult | number) => void;
  reject: (e: Error) => void;
  /** The error it ends with at its deadline (readDeadlines). */
  timeout: () => Error;
  /** Granted: answer once this slot is applied. */
  slot: Slot | null;
}

interface SnapshotFetch {
  from: ReplicaId;
  slot: Slot;
  /** For adoptSnapshot (a leader taking a follower's snapshot as its own), not for installSnapshot. */
  adopt: boolean;
  chunks: Uint8Array[];
  received: number;
  total: number;
  /** When the request went out or the last chunk in order arrived: a fetch is dropped after SNAPSHOT_FETCH_TIMEOUT_MS without progress. */
  progressMs: number;
}

const now = () => performance.now();
const silent: NonNullable<ReplicaOptions['logger']> = (level, msg, fields) => {
  if (level === 'warn' || level === 'error') console.error(`[synod] ${level}: ${msg}`, fields ?? '');
};

/**
 * Default ReplicaOptions.snapshotIntervalBytes. 64 MiB rather than 16: at full load the KV bench's
 * followers snapshotted their whole state every second, and their snapshot writes sat in the
 * tails (half load p99 28-30 -> 20-21 ms, session 8). The cost is the log replayed on a restart
 * (600,000 commands: ~1 s in all) and ~64 MiB more log kept on disk.
 */
export const DEFAULT_SNAPSHOT_INTERVAL_BYTES = 64 * 1024 * 1024;

/**
 * The bytes of applied commands between two snapshots: the setting, but at least twice the latest
 * snapshot's size. Each snapshot writes the whole state, so with a large state and a fixed interval
 * most of the disk and CPU would go to snapshots; this way a written byte costs at most half a byte
 * of snapshot, whatever the state's size.
 */
function snapshotIntervalBytesFor(options: Pick<ReplicaOptions, 'snapshotIntervalBytes'>, snapshotBytes: number): number {
  return Math.max(options.snapshotIntervalBytes ?? DEFAULT_SNAPSHOT_INTERVAL_BYTES, 2 * snapshotBytes);
}

/**
 * The file log's spare segments for these settings: as many as a leader's snapshot frees at once
 * (its byte interval, snapshotIntervalBytesFor, times leaderSnapshotIntervalFactor), plus
 * the segments around it (the one in use, the one prepared, the compaction margin's), and never fewer
 * than the log's default. Fewer, and every segment a snapshot frees beyond them is deleted and
 * zero-filled again at a later roll (docs/performance.md, session 14). Spares are segments the log
 * held just before, so they never take more room than its peak.
 */
export function logSpareSegmentsFor(options: Pick<ReplicaOptions, 'snapshotIntervalBytes' | 'leaderSnapshotIntervalFactor'>, snapshotBytes: number, segmentBytes = DEFAULT_SEGMENT_BYTES): number {
  const leaderInterval = snapshotIntervalBytesFor(options, snapshotBytes) * (options.leaderSnapshotIntervalFactor ?? DEFAULT_LEADER_SNAPSHOT_INTERVAL_FACTOR);
  return Math.max(DEFAULT_SPARE_SEGMENTS_MAX, Math.ceil(leaderInterval / segmentBytes) + 3);
}

/** Default ReplicaOptions.proposalQueueCommandsMax: twice the benchmark's most lanes (LANES_MAX, 65,536 in flight). */
export const DEFAULT_PROPOSAL_QUEUE_COMMANDS_MAX = 131_072;
/** Default ReplicaOptions.proposalQueueBytesMax: 256 of the KV server's largest values (1 MiB). */
export const DEFAULT_PROPOSAL_QUEUE_BYTES_MAX = 256 * 1024 * 1024;

export class SynodReplica {
  readonly id: ReplicaId;
  private readonly sm: StateMachine;
  private sessions: SessionTable<Uint8Array>;
  private readonly pending = new PendingTable();
  /** Proposals queued since the last drain ride in this generation (see PendingEntry.generation). */
  private proposalGeneration = 1;
  private proposalFlushScheduled = false;
  /** By read id (sequential): a ring, not a Map (src/core/seq-map.ts). */
  private readonly pendingReads = new SeqMap<PendingRead>();
  private readonly readDeadlines = new DeadlineWheel<PendingRead>();
  private waitingReads: number[] = [];
  /**
   * Proposals waiting for the next drain. Each drain hands the core an exact copy (8 bytes a
   * command) rather than an array grown by push (~34 bytes a command, and its slack kept with the
   * batch in the log).
   */
  private readonly proposalQueue = new TurnList<Command>();
  /** Payload bytes of proposalQueue (the admission limit counts them with the core's queue). */
  private proposalQueueBytes = 0;
  /** The admission limits (proposalQueueCommandsMax, proposalQueueBytesMax). */
  private readonly queueCommandsMax: number;
  private readonly queueBytesMax: number;
  private nextReadId = 1;
  /** The replica's own session (propose() without clientId; the HTTP API): 0 until opened, again after it expired. */
  private ownSession = 0;
  private ownSessionOpening: Promise<number> | null = null;
  /** The own session's sequence numbers: the next one, those not yet answered, the floor. */
  private readonly ownSeqs = new SeqWindow();
  private appliedSlot: Slot = 0;
  private snapshotSlot: Slot = 0;
  /** The log on disk holds every record of the slots above this one (a snapshot covers the rest). */
  private compactedSlot: Slot = 0;
  /** The latest applied slots' entry records, for lagging peers (the core forgets entries once applied). */
  private readonly recentLog = new RecentLog();
  /** Peers being answered from the log on disk (one read each at a time; the head waits for them). */
  private readonly logCatchups = new Set<ReplicaId>();
  private snapshotting = false;
  /** Command payload bytes applied since start, and that figure when the last snapshot was taken. */
  private appliedPayloadBytes = 0;
  private snapshotPayloadBytes = 0;
  /** What apply() is told about each command: refilled per command (ApplyContext is borrowed for the call). */
  private readonly applyContext: ApplyContext = { slot: 0, clientId: 0, seq: 0, timeMs: 0 };
  /** Proposals of this event-loop turn, whose timeouts start at the next proposal flush (PendingTable.date). */
  private readonly undated = new TurnList<PendingEntry>();
  /** applyEncodedBatch()'s lists for prefetchAt, reused from slot to slot. */
  private prefetchOffsets = new Int32Array(0);
  private prefetchLengths = new Int32Array(0);
  /** While leading, the snapshot intervals are this many times longer (leaderSnapshotIntervalFactor). */
  private readonly leaderSnapshotFactor: number;
  private readonly leaderAdoptsSnapshots: boolean;
  /**
   * The snapshot slot this replica had when it last asked a follower for a snapshot to adopt: if
   * it still has that slot when the next snapshot is due, the ask failed (no answer in time, a
   * gap, nothing usable) and it makes its own.
   */
  private adoptionAskedAt: Slot | null = null;
  /** Round robin over the followers asked for snapshots to adopt. */
  private adoptionTurn = 0;
  /** Size of the latest snapshot this replica wrote (the bytes interval is at least twice it). */
  private snapshotBytes = 0;
  private snapshotsAllowed = true;
  private snapshotInFlight: Promise<Slot> | null = null;
  /** A fetched snapshot being written and installed: close() waits for it (it writes the snapshot store and the metadata). */
  private installing: Promise<void> | null = null;
  /** The latest metadata write (writeMeta): the next waits for it. */
  private metaWrite: Promise<void> = Promise.resolve();
  private readonly statsRecorder = new StatisticsRecorder(now());
  /** Each peer's dial count when it was last seen connected (health's consecutiveFailures). */
  private readonly reconnectsWhenUp = new Map<ReplicaId, number>();
  /** The slot of the chosen last request this replica set stopped at (0: none): nothing after it runs. */
  private stoppedAtSlot: Slot = 0;
  private entryLsns: Array<[number, number]>;
  private drainScheduled = false;
  private committing = 0;
  private closed = false;
  private failed: Error | null = null;
  private fetch: SnapshotFetch | null = null;
  /** Peers a snapshot is being shipped to (one shipment each). */
  private readonly shipping = new Set<ReplicaId>();
  private closing: Promise<void> | null = null;
  private readonly tickTimer: NodeJS.Timeout;
  /** Leading with the recovery round chosen (what the application was told). */
  private primary = false;
  private readonly log: NonNullable<ReplicaOptions['logger']>;
  /** The replicated address book (initial members, then every added member). */
  private readonly addresses = new Map<ReplicaId, PeerAddress>();
  private learnerIds: ReplicaId[] = [];
  /**
   * The replicated endpoint book: each replica's client-facing addresses by name (the KV server's
   * `http`, `binary`), from `endpoints` commands and snapshots, as the log says (this replica's own
   * entry included: it is what announceEndpoints compares with). The runtime only carries it.
   */
  private readonly endpointBook = new Map<ReplicaId, Map<string, PeerAddress>>();
  /** This replica's own endpoints (advertiseEndpoints), announced through the log while it is primary. */
  private ownEndpoints: Map<string, PeerAddress> | null = null;
  /** The encoded announcement in flight, so that one is not proposed twice. */
  private endpointsProposed: string | null = null;
  /** The peers handed to the transport (those we can dial). */
  private peerAddresses = new Map<ReplicaId, PeerAddress>();
  /**
   * The replicated incarnation book: the incarnation id bound to each replica id (SAFETY.md: a
   * replica whose data directory was wiped must not rejoin under its old identity). Bound through
   * the log by a primary the first time it hears from a replica; never rebound.
   */
  private readonly incarnations = new Map<ReplicaId, string>();
  /** Every replica's own session ids (replicated: `ownSession` commands, snapshots): clients may not name them. */
  private ownSessions = new Set<number>();
  /** The incarnation each peer named on its latest inbound connection (not replicated). */
  private readonly heardIncarnations = new Map<ReplicaId, string>();
  /** Where replicas that dialed this one said they listen (their hello), for reachBack. */
  private readonly heardAddresses = new Map<ReplicaId, PeerAddress>();
  /**
   * A replica this one asks for catch-up although no configuration it knows names it, at the
   * address its own hello gave: a joiner hears from a leader added after the members it was
   * started with, whose address is in a log it has not read yet. One at a time.
   */
  private reachBack: ReplicaId | null = null;
  /** core.departedVersion when the transport peers were last set (refreshPeers). */
  private departedVersionSeen = -1;
  /**
   * Replicas no configuration names that campaigned here (a replica removed while it was down),
   * dialed at the address their hello gave to carry the core's notMember answer, and until when
   * (ms): while they keep campaigning the answer keeps them here, then they are dropped.
   */
  private readonly noticePeers = new Map<ReplicaId, number>();
  /** The removal notice last logged (its configuration's first slot), so it is logged once. */
  private removalLogged = 0;
  /** This data directory's incarnation id as hex (fixed for its life). */
  private readonly incarnation: string;
  /** The transport's admission check (handed over again when a binding applies: that re-checks open connections). */
  private readonly admission = (peer: ReplicaId, incarnation: string | null): string | null => this.admitPeer(peer, incarnation);
  private readonly bindingsProposed = new Set<string>();
  private refusedIncarnationLogMs = 0;
  private readonly stats = {
    proposals: 0,
    /** Proposals answered OverloadedError: refused at admission, or taken back unproposed at their deadline. */
    proposalsOverloaded: 0,
    slotsApplied: 0,
    commandsApplied: 0,
    commits: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsAdopted: 0,
    catchupsFromDisk: 0,
    stateDigests: 0,
    stateDigestsSkipped: 0,
    stateDigestMismatches: 0,
  };
  /** Own and peers' state digests, compared slot by slot (stateDigestIntervalSlots). */
  private readonly digests = new StateDigests();
  private readonly digestInterval: number;
  /** A digest's capture is being hashed (one at a time; it holds the application's copy). */
  private digesting = false;

  private constructor(
    private readonly options: ReplicaOptions,
    private readonly core: Replica,
    private readonly logStore: LogStore,
    private readonly snapshots: SnapshotStore,
    private readonly transport: PeerTransport,
    private meta: Metadata,
    recovered: { snapshotSlot: Slot; entryLsns: Array<[number, number]> },
  ) {
    this.id = options.id;
    this.sm = options.stateMachine;
    this.leaderSnapshotFactor = options.leaderSnapshotIntervalFactor ?? DEFAULT_LEADER_SNAPSHOT_INTERVAL_FACTOR;
    this.leaderAdoptsSnapshots = options.leaderAdoptsSnapshots ?? false;
    this.digestInterval = options.stateDigestIntervalSlots ?? DEFAULT_STATE_DIGEST_INTERVAL_SLOTS;
    this.queueCommandsMax = options.proposalQueueCommandsMax ?? DEFAULT_PROPOSAL_QUEUE_COMMANDS_MAX;
    this.queueBytesMax = options.proposalQueueBytesMax ?? DEFAULT_PROPOSAL_QUEUE_BYTES_MAX;
    const logger = options.logger ?? silent;
    this.log = (level, msg, fields) => {
      try {
        logger(level, msg, fields);
      } catch {
        // A broken logger must not stop the replica: it is called from socket and timer callbacks.
      }
    };
    // Settings start at the defaults on every replica and change only through the log
    // (proposeSessionLimitsIfChanged): a replay from the first slot decides as live did.
    this.sessions = new SessionTable();
    this.snapshotSlot = recovered.snapshotSlot;
    this.appliedSlot = recovered.snapshotSlot;
    this.compactedSlot = recovered.snapshotSlot;
    this.entryLsns = recovered.entryLsns;
    for (const [peer, address] of options.members) this.addresses.set(peer, address);
    if (options.listen) this.addresses.set(options.id, options.listen);
    transport.onFrame((from, frame) => this.onFrame(from, frame));
    transport.onEvent((event) => {
      if (event.type !== 'connected' || event.direction !== 'inbound') return;
      if (event.address) this.heardAddresses.set(event.peer, event.address);
      if (event.incarnation) {
        this.heardIncarnations.set(event.peer, event.incarnation);
        this.bindIncarnations();
      }
    });
    this.incarnation = Buffer.from(meta.incarnation).toString('hex');
    transport.setAdmission(this.admission);
    this.installPrimaryHooks();
    this.tickTimer = setInterval(() => this.onTick(), options.tickMs ?? 10);
  }

  /** Open (or create) the data directory, recover, join the peers and start. */
  static async start(options: ReplicaOptions): Promise<SynodReplica> {
    const { id, clusterId, dataDir } = options;
    if (!options.join && !options.members.has(id)) throw new DataDirError(`replica ${id} is not among the members ${[...options.members.keys()].join(',')} (use join to add it to a running cluster)`);
    if (options.join && options.members.has(id)) throw new DataDirError(`replica ${id} is already an initial member; start it without join`);
    if (options.join && !options.listen && !options.transport) throw new DataDirError('a joining replica needs its own listen address');
    const factor = options.leaderSnapshotIntervalFactor;
    if (factor !== undefined && !(Number.isFinite(factor) && factor >= 1)) throw new RangeError(`leaderSnapshotIntervalFactor must be a number >= 1, got ${factor}`);
    const digestEvery = options.stateDigestIntervalSlots;
    if (digestEvery !== undefined && !(Number.isSafeInteger(digestEvery) && digestEvery >= 0)) throw new RangeError(`stateDigestIntervalSlots must be an integer >= 0 (0: off), got ${digestEvery}`);
    for (const name of ['proposalQueueCommandsMax', 'proposalQueueBytesMax'] as const) {
      const v = options[name];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new RangeError(`${name} must be an integer >= 1, got ${v}`);
    }
    const backend = options.logBackend ?? 'file';
    if (options.storageIo && !(backend === 'file' || (backend === 'pmem' && options.storagePmem))) {
      throw new RangeError(`storageIo needs the file log backend (or pmem with storagePmem), got ${options.logBackend}`);
    }
    tryNativeCrc(); // the hardware CRC for frames and snapshots, whatever the log backend
    // Every storage call below and in writeMeta goes through this one file system (tests inject one).
    const io = options.storageIo ?? nodeIo;
    await mkdirDurable(io, dataDir); // recursive, and its new name durable (io.ts)
    const found = await readMetadata(dataDir, io);
    const fresh = found === null;
    const given = [...options.members.keys()].sort((a, b) => a - b);
    // The configuration before the log's first change: the members this directory first started
    // with, as recorded then. A restart with other members (an updated --initial-cluster after
    // changes) must not replay the log under another first configuration: its quorums would differ
    // from its peers'. (Older directories recorded none: the given members, as before.)
    let initialMembers = given;
    if (found) {
      const owner = parseMetaConfig(found.config);
      if (owner.initialMembers) {
        initialMembers = owner.initialMembers;
        if (initialMembers.join() !== given.join()) {
          (options.logger ?? silent)('warn', `replica ${id} first started with members [${initialMembers.join(',')}]; they stay the configuration before the log's first change (given now: [${given.join(',')}], used only to reach peers)`);
        }
      }
      if (owner.clusterId !== clusterId) {
        throw new DataDirError(`data dir ${dataDir} belongs to cluster '${owner.clusterId}', not '${clusterId}': use another --data directory`);
      }
      if (owner.replicaId !== id) throw new DataDirError(`data dir ${dataDir} belongs to replica ${owner.replicaId}, not ${id}`);
    }
    const snapshots = await SnapshotStore.open(join(dataDir, 'snapshots'), { io });
    // No meta but snapshots: a damaged directory, not a new one (see below); refused before restore().
    if (fresh && (await snapshots.slots()).length > 0) throw missingMetaError(dataDir, 'snapshots');
    const latest = await snapshots.latest();
    let snapshot = { slot: 0, configs: [] as ConfigEpoch[] };
    let sessions: SessionTable<Uint8Array> | null = null;
    let addresses: Array<[number, string, number]> = [];
    let incarnations: Array<[number, string]> = [];
    let stoppedAt = 0;
    let ownSessions: number[] = [];
    let endpoints: Array<[number, string, string, number]> = [];
    if (latest) {
      const body = decodeSnapshotBody(await snapshots.readWhole(latest.slot));
      options.stateMachine.restore(body.app);
      sessions = body.sessions;
      addresses = body.addresses;
      incarnations = body.incarnations;
      stoppedAt = body.stoppedAt ?? 0;
      ownSessions = body.ownSessions ?? [];
      endpoints = body.endpoints ?? [];
      snapshot = { slot: body.slot, configs: body.configs };
    }
    const recovered = new RecoveredLog();
    const spareSegmentsMax = logSpareSegmentsFor(options, latest?.bodyBytes ?? 0, options.logSegmentBytes);
    const logStore = await openLog(join(dataDir, 'log'), options.logBackend ?? 'file', {
      onRecord: recovered.onRecord,
      spareSegmentsMax,
      ...(options.storageIo ? { io } : {}),
      ...(options.storagePmem ? { pmemAddon: options.storagePmem } : {}),
      ...(options.logSegmentBytes !== undefined ? { segmentBytes: options.logSegmentBytes } : {}),
    });
    let meta: Metadata;
    if (found) meta = found;
    else {
      // Taken for new, a directory whose log holds records would vote again from nothing (slots
      // it accepted or saw chosen overwritten, promises forgotten) and drop what it applied. The
      // meta file is written (atomically) before the log's first record, so only damage or a
      // partial copy leaves a log with records and no meta.
      if (logStore.headTailCapacity().tail > 1) {
        await logStore.close();
        throw missingMetaError(dataDir, 'a log');
      }
      // A joiner's members are only whom it can reach: it learns the configuration from its peers.
      meta = { promised: 0, incarnation: new Uint8Array(randomBytes(16)), config: metaConfig(clusterId, id, options.join ? undefined : given), snapshotSlot: 0 };
      await writeMetadata(dataDir, meta, io);
    }
    const durable: DurableState = recovered.durableState(meta.promised, logStore.highestBallot(), snapshot);
    const core = new Replica(
      coreOptions({ ...(options.core ?? {}), id, members: initialMembers }),
      Math.random,
      now(),
      fresh ? undefined : durable,
    );
    const listen = options.listen ?? options.members.get(id)!;
    if (!options.transport && !options.tls && !isLoopback(listen.host)) {
      (options.logger ?? silent)('warn', `peer traffic on ${listen.host}:${listen.port} is plain TCP: anyone who can reach it and knows the cluster id can claim a replica id; use TLS (synod certs) off loopback`);
    }
    const socketFactory = options.tls ? tlsSocketFactory({ ...readTlsFiles(options.tls), clusterId, logger: options.logger }) : undefined;
    const transport =
      options.transport ??
      new TcpTransport({ ...(options.peerLimits ?? {}), replicaId: id, clusterId, listenHost: listen.host, listenPort: listen.port, logger: options.logger, socketFactory });
    transport.setPeers(new Map([...options.members].filter(([peer]) => peer !== id)));
    transport.setIncarnation(Buffer.from(meta.incarnation).toString('hex'));
    // Not a bind-anywhere host: a peer could not dial it back there.
    const advertised = options.advertise ?? listen;
    transport.setAdvertisedAddress(advertised && !isUnspecified(advertised.host) ? advertised : null);
    await transport.start();
    const replica = new SynodReplica(options, core, logStore, snapshots, transport, meta, { snapshotSlot: snapshot.slot, entryLsns: recovered.entryLsns });
    if (sessions) replica.adoptSessions(sessions);
    replica.stoppedAtSlot = stoppedAt;
    replica.ownSessions = new Set(ownSessions);
    for (const [peer, host, port] of addresses) replica.learnAddress(peer, { host, port });
    replica.adoptEndpointTuples(endpoints);
    for (const [peer, incarnation] of incarnations) replica.bindIncarnation(peer, incarnation);
    replica.refreshPeers();
    replica.scheduleDrain(); // replays the recovered chosen prefix into the state machine
    return replica;
  }

  /** The state machine's election callbacks (veto, primary cookie), wrapped so a throw is a "no". */
  private installPrimaryHooks(): void {
    const sm = this.sm;
    const hooks: PrimaryHooks = {};
    if (sm.canBecomePrimary) {
      hooks.canBecomePrimary = () => {
        try {
          const answer = sm.canBecomePrimary!();
          return answer === false ? false : answer === true ? null : answer;
        } catch (e) {
          this.log('warn', 'canBecomePrimary() threw: treated as a veto', { error: String(e) });
          return false;
        }
      };
    }
    if (sm.acceptPrimary) {
      hooks.acceptPrimary = (candidate, cookie) => {
        try {
          return sm.acceptPrimary!(candidate, cookie) === true;
        } catch (e) {
          this.log('warn', 'acceptPrimary() threw: treated as a refusal', { error: String(e) });
          return false;
        }
      };
    }
    this.core.setPrimaryHooks(hooks);
  }

  // ================================================================ the application's calls

  /** Replicate a command; resolves with the state machine's result once applied here. */
  propose(command: Uint8Array, options: ProposeOptions = {}): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.proposeWith(command, options, (e, r) => (e === null ? resolve(r!) : reject(e))));
  }

  /**
   * propose() with the outcome passed to `done` (error, result, cookie) instead of a promise: no
   * promise and no closures per command, for servers that answer many requests per second (one
   * callback for all requests, each told apart by its `cookie`). `done` runs exactly once,
   * possibly before this returns (a refusal). With a clientId, `options` is read before this
   * returns: the caller may reuse the object.
   */
  proposeWith<C = undefined>(command: Uint8Array, options: ProposeOptions, done: ProposalCallback<C>, cookie?: C): void {
    const callback = done as ProposalCallback;
    if (this.closed) return callback(new ShuttingDownError(), null, cookie);
    if (this.failed) return callback(this.failed, null, cookie);
    if (this.stoppedAtSlot > 0) return callback(new StoppedError(this.stoppedAtSlot), null, cookie);
    if (options.clientId !== undefined && (!Number.isSafeInteger(options.clientId) || options.clientId < 1)) {
      return callback(new SynodError('SYNOD_BAD_SESSION', `clientId must be a positive safe integer (0 is reserved), got ${options.clientId}`), null, cookie);
    }
    if (options.seq !== undefined && (!Number.isSafeInteger(options.seq) || options.seq < 1)) {
      return callback(new SynodError('SYNOD_BAD_SESSION', `seq must be a positive safe integer, got ${options.seq}`), null, cookie);
    }
    // A floor goes into the slot's encoding as a varint: one that is not a safe integer >= 0 threw
    // there, inside the drain loop, and stopped the replica (with every other command in the batch).
    if (options.floor !== undefined && (!Number.isSafeInteger(options.floor) || options.floor < 0)) {
      return callback(new SynodError('SYNOD_BAD_SESSION', `floor must be a non-negative safe integer, got ${options.floor}`), null, cookie);
    }
    // NaN, 0 or a negative timeout ended the proposal at the next tick with "no result before the
    // proposal timeout", an unknown outcome for what was a caller's mistake.
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      return callback(new SynodError('SYNOD_BAD_TIMEOUT', `timeoutMs must be a positive number of milliseconds, got ${options.timeoutMs}`), null, cookie);
    }
    const own = options.clientId === undefined;
    // seq and floor belong to a session the caller names. Without a clientId they landed on the
    // replica's own session: a caller's seq was one the replica hands out later (that later call
    // was then answered with this one's result, never applied), a floor above it made every later
    // session-less proposal fail. With a clientId and no seq, the seq came from the own session's
    // counter: unrelated to the caller's numbering, so it could collide with one of its own.
    if (own ? options.seq !== undefined || options.floor !== undefined : options.seq === undefined) {
      return callback(new SynodError('SYNOD_BAD_SESSION', own ? 'seq and floor need a clientId (a session of your own: openSession())' : 'a clientId needs a seq'), null, cookie);
    }
    // The floor is the lowest seq not yet answered: above this very seq, the session would drop
    // this command's own result (the servers refuse it the same way).
    if (!own && options.floor !== undefined && options.floor > options.seq!) {
      return callback(new SynodError('SYNOD_BAD_SESSION', `floor (${options.floor}) may not exceed seq (${options.seq}): the floor is the lowest seq not yet answered`), null, cookie);
    }
    if (!own && this.ownSessions.has(options.clientId!)) {
      return callback(new SynodError('SYNOD_BAD_SESSION', `session ${options.clientId} is a replica's own: open a session of your own`), null, cookie);
    }
    if (own && this.ownSession === 0) return this.proposeOnceOpen(command, options, callback, cookie);
    const clientId = options.clientId ?? this.ownSession;
    const seq = options.seq ?? this.ownSeqs.next();
    if (own) this.ownSeqs.add(seq);
    const floor = options.floor ?? (own ? this.ownSeqs.floor() : 0);
    if (options.exclusive || options.last) this.core.markExclusive(clientId, seq, options.last === true);
    this.submit(command, clientId, seq, floor, options.timeoutMs ?? this.options.proposeTimeoutMs ?? 5000, own, true, callback, cookie);
  }

  /**
   * proposeWith() once the replica's own session is open. Its own method: a closure in proposeWith
   * itself would make V8 allocate a context for its arguments on every call, rare branch or not.
   */
  private proposeOnceOpen(command: Uint8Array, options: ProposeOptions, callback: ProposalCallback, cookie: unknown): void {
    this.openOwnSession().then(
      () => this.proposeWith(command, options, callback, cookie),
      (e: unknown) => callback(e as Error, null, cookie),
    );
  }

  /**
   * Open a client session through the log (a register command): resolves with its id, the same on
   * every replica. Pass it as `clientId` with seq 1, 2, 3... A session idle for longer than
   * sessionExpiryMs of leader-stamped time, or evicted beyond sessionsMax, is gone: its commands
   * then fail with SessionExpiredError and are never executed; open a new one.
   */
  openSession(options: { timeoutMs?: number } = {}): Promise<number> {
    if (this.closed) return Promise.reject(new ShuttingDownError());
    if (this.failed) return Promise.reject(this.failed);
    if (this.stoppedAtSlot > 0) return Promise.reject(new StoppedError(this.stoppedAtSlot));
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 5000;
    return this.submitInternal(REGISTER_PAYLOAD, timeoutMs, true).then(decodeSessionId);
  }

  /** The replica's own session, opened once by whoever needs it first (and again after it expired). */
  private openOwnSession(): Promise<number> {
    if (this.ownSessionOpening) return this.ownSessionOpening;
    // Reserved through the log before its first use, so that every replica refuses clients naming it.
    const timeoutMs = this.options.proposeTimeoutMs ?? 5000;
    const opening = this.openSession().then((id) => this.submitInternal(encodeOwnSessionCommand(id), timeoutMs).then(() => id)).then(
      (id) => {
        this.ownSessionOpening = null;
        this.ownSession = id;
        return id;
      },
      (e: unknown) => {
        this.ownSessionOpening = null;
        throw e;
      },
    );
    this.ownSessionOpening = opening;
    return opening;
  }

  /**
   * Queues a command for the next drain. `bounded`: a client's command, refused beyond the
   * admission limits (the runtime's own commands, rare and needed to make progress, are not).
   */
  private submit(command: Uint8Array, clientId: number, seq: number, floor: number, timeoutMs: number, own: boolean, bounded: boolean, done: ProposalCallback, cookie: unknown): void {
    const existing = this.pending.get(clientId, seq);
    if (existing) return existing.join(done, cookie); // the same request retried here: one answer for both, nothing more queued
    if (bounded) {
      const refusal = this.admissionRefusal(command.length);
      if (refusal !== null) {
        this.stats.proposalsOverloaded++;
        if (own) this.ownSeqs.delete(seq);
        return done(refusal, null, cookie);
      }
    }
    const entry = new PendingEntry(this.pending, clientId, seq, timeoutMs, this.proposalGeneration, own ? this.ownSeqs : null, done, cookie);
    this.pending.add(entry);
    this.undated.push(entry);
    this.stats.proposals++;
    this.proposalQueue.push({ clientId, seq, floor, payload: command });
    this.proposalQueueBytes += command.length;
    this.scheduleProposalFlush();
  }

  /**
   * Admission: what waits to be proposed here (this turn's queue and the core's, for room in the
   * pipeline window) is bounded in commands and bytes. Beyond, a command is refused before it is
   * queued: certainly never proposed. A single command larger than the bytes limit still goes
   * when nothing else waits, so that no command is refused for ever.
   */
  private admissionRefusal(bytes: number): OverloadedError | null {
    const commands = this.proposalQueue.count + this.core.queuedCommands;
    if (commands >= this.queueCommandsMax) {
      return new OverloadedError(`${commands} commands wait to be proposed on replica ${this.id} (proposalQueueCommandsMax ${this.queueCommandsMax}): the pipeline window is not moving fast enough`);
    }
    const queuedBytes = this.proposalQueueBytes + this.core.queuedBytes;
    if (queuedBytes > 0 && queuedBytes + bytes > this.queueBytesMax) {
      return new OverloadedError(`${queuedBytes} bytes of commands wait to be proposed on replica ${this.id} (proposalQueueBytesMax ${this.queueBytesMax}): the pipeline window is not moving fast enough`);
    }
    return null;
  }

  /**
   * Proposals are handed to the core once per event-loop turn (setImmediate), not per microtask
   * burst: every client connection read in this turn then lands in the same slot, so a slot's
   * records, messages and fdatasync are shared by all of them (docs/performance.md).
   */
  private scheduleProposalFlush(): void {
    if (this.proposalFlushScheduled) return;
    this.proposalFlushScheduled = true;
    setImmediate(this.flushProposals);
  }

  /**
   * The once-per-turn flush, made once: a closure written inside scheduleProposalFlush made V8
   * allocate a context (~100 bytes) on every call, even the calls that return at once.
   */
  private readonly flushProposals = (): void => {
    this.proposalFlushScheduled = false;
    this.pending.date(this.undated.items, this.undated.count, now());
    this.undated.clear();
    this.drain();
  };

  /** Handed to the core: a failure after this is an unknown outcome, not a certain one. */
  private submitted(p: PendingEntry): boolean {
    return p.generation < this.proposalGeneration;
  }

  /** A read-only query with the chosen consistency (SAFETY.md: read-index, lease, or local). */
  read(query: Uint8Array, options: ReadOptions = {}): Promise<ReadResult> {
    return this.startRead(query, options) as Promise<ReadResult>;
  }

  /**
   * read()'s wait without its query: resolves with the applied slot once a query run on this
   * replica from then on (queryLocal) answers as read() with the same options would. The state
   * only moves forward, so running the query later is still within the read's interval. For a
   * caller that runs the query when it has room for the answer (the binary port holds queries
   * while its client is not reading, instead of holding their answers).
   */
  readIndex(options: ReadOptions = {}): Promise<number> {
    return this.startRead(null, options) as Promise<number>;
  }

  /** Runs a read-only query on the state applied now (a local read without waiting). */
  queryLocal(query: Uint8Array): Uint8Array {
    return this.sm.query(query);
  }

  /** A read's wait, then its query, or (query null) the applied slot alone. */
  private startRead(query: Uint8Array | null, options: ReadOptions): Promise<ReadResult | number> {
    if (this.closed) return Promise.reject(new ShuttingDownError());
    if (this.failed) return Promise.reject(this.failed);
    const consistency = options.consistency ?? 'linearizable';
    if (consistency !== 'linearizable' && consistency !== 'lease' && consistency !== 'local') {
      return Promise.reject(new SynodError('SYNOD_BAD_READ', `consistency must be 'linearizable', 'lease' or 'local', got ${JSON.stringify(consistency)}`));
    }
    if (consistency === 'local') {
      const minSlot = options.minSlot ?? 0;
      if (this.appliedSlot >= minSlot) {
        try {
          return Promise.resolve(query === null ? this.appliedSlot : { result: this.sm.query(query), appliedSlot: this.appliedSlot });
        } catch (e) {
          return Promise.reject(e as Error);
        }
      }
      if (!options.maxWaitMs) return Promise.reject(new StaleReadError(this.appliedSlot, minSlot));
    }
    return new Promise<ReadResult | number>((resolve, reject) => {
      const readId = this.nextReadId++;
      const timeoutMs = options.maxWaitMs ?? this.options.proposeTimeoutMs ?? 5000;
      const read: PendingRead = {
        readId,
        query,
        resolve,
        reject,
        slot: consistency === 'local' ? options.minSlot ?? 0 : null,
        bucket: -1,
        wheelPrev: null,
        wheelNext: null,
        timeout: () => (consistency === 'local' ? new StaleReadError(this.appliedSlot, options.minSlot ?? 0) : new SynodError('SYNOD_READ_TIMEOUT', `read not confirmed within ${timeoutMs} ms`)),
      };
      this.readDeadlines.add(read, now() + timeoutMs);
      this.pendingReads.set(readId, read);
      if (consistency === 'local') this.waitingReads.push(readId);
      else {
        this.core.read(readId, consistency, now());
        this.scheduleDrain();
      }
    });
  }

  /** Hand leadership to another member (RSL's relinquish primary). */
  transferLeadership(target: ReplicaId): void {
    const refusal = this.core.transferLeadership(target, now());
    this.scheduleDrain();
    if (refusal) throw new SynodError('SYNOD_TRANSFER_REFUSED', refusal);
  }

  /** RSL's ChangeElectionDelay: new election timeouts from now on (validated: ≥ lease, min ≤ max). */
  setElectionTimeout(minMs: number, maxMs = 2 * minMs): void {
    this.core.setElectionTimeouts(minMs, maxMs);
  }

  /** RSL's AllowSaveState: stop (or resume) periodic snapshots, e.g. while the application is busy. */
  setSnapshotsAllowed(allowed: boolean): void {
    this.snapshotsAllowed = allowed;
  }

  /** Campaign at once (RSL's attempt promotion); refused inside a live leader's lease. */
  campaign(): void {
    const refusal = this.core.campaign(now());
    this.scheduleDrain();
    if (refusal) throw new SynodError('SYNOD_CAMPAIGN_REFUSED', refusal);
  }

  /** Take a snapshot now (also taken every snapshotIntervalSlots). Resolves with its slot. */
  takeSnapshot(): Promise<Slot> {
    if (this.snapshotInFlight) return this.snapshotInFlight;
    this.snapshotInFlight = this.writeSnapshot().finally(() => {
      this.snapshotInFlight = null;
    });
    return this.snapshotInFlight;
  }

  /** The application's state now, as the chunks of its snapshot (the capture is the pause; snapshotStream's chunks are made later, from its copy). */
  private captureApp(): Iterable<Uint8Array> {
    return this.sm.snapshotStream ? this.sm.snapshotStream() : [this.sm.snapshot()];
  }

  private async writeSnapshot(): Promise<Slot> {
    this.snapshotting = true;
    try {
      const slot = this.appliedSlot;
      const payloadBytes = this.appliedPayloadBytes;
      if (slot <= this.snapshotSlot || this.closed) return this.snapshotSlot;
      // The only pause of the apply loop: the application's serialization, at a consistent point.
      const addresses = [...this.addresses].map(([peer, a]) => [peer, a.host, a.port] as [number, string, number]);
      const incarnations = [...this.incarnations];
      // Own sessions that expired are dropped here (a client naming one is told it expired anyway).
      for (const id of this.ownSessions) if (!this.sessions.has(id)) this.ownSessions.delete(id);
      const ownSessions = [...this.ownSessions];
      const endpoints = this.endpointTuples();
      const head = encodeSnapshotBodyHead({ slot, configs: this.core.configs, addresses, incarnations, sessions: this.sessions, stoppedAt: this.stoppedAtSlot, ownSessions, endpoints });
      const app = this.captureApp();
      let bytes = 0;
      const counted = async function* (): AsyncGenerator<Uint8Array> {
        yield head;
        for (const chunk of app) {
          // An empty chunk: the application has work to do before its next bytes (a sort in steps);
          // let the event loop (applies, votes) run first.
          if (chunk.length === 0) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            continue;
          }
          bytes += chunk.length;
          yield chunk;
        }
      };
      // With snapshotStream() the application's chunks are made as they are written: each chunk's
      // write lets the event loop (applies, votes) run before the next is asked for.
      await this.snapshots.save(slot, new Uint8Array(0), counted());
      await this.snapshotSaved(slot, payloadBytes, head.length + bytes);
      this.stats.snapshotsTaken++;
      return slot;
    } finally {
      this.snapshotting = false;
    }
  }

  /**
   * A snapshot of `slot` is durable in the store (this replica's own or an adopted one): the
   * metadata names it, the intervals count from it, and the log below it (less the margin) goes.
   */
  private async snapshotSaved(slot: Slot, payloadBytes: number, bytes: number): Promise<void> {
    // A snapshot installed from a peer while this one was written names a newer slot already.
    if (slot <= this.snapshotSlot) return;
    this.meta = { ...this.meta, snapshotSlot: slot, promised: Math.max(this.meta.promised, this.core.status.promised) };
    await this.writeMeta();
    if (slot <= this.snapshotSlot) return; // overtaken while the metadata was written
    this.snapshotSlot = slot;
    this.snapshotPayloadBytes = payloadBytes;
    this.snapshotBytes = bytes;
    this.compactBelow(slot - (this.options.compactionMarginSlots ?? 1000));
  }

  /**
   * Writes `this.meta` as it is when the previous write has finished: one write at a time. Two at
   * once (an own snapshot finishing while one from a peer is installed) shared the temp file
   * `meta.tmp`, and one of them failed its rename with ENOENT.
   */
  private writeMeta(): Promise<void> {
    const write = this.metaWrite.catch(() => {}).then(() => writeMetadata(this.options.dataDir, this.meta, this.options.storageIo ?? nodeIo));
    this.metaWrite = write;
    return write;
  }

  // ================================================================ state digests

  /**
   * Slot `slot` was just applied and is a digest slot: capture the replicated state as it is now
   * (between two applies, so exactly the state after `slot`), hash it in the background, then
   * compare and send the digest. What is hashed is replicated state only, in a fixed order: the
   * snapshot body's head without the configurations and addresses (the core's configurations may
   * run ahead of the applied slot within a drain, and each replica's initial addresses are its
   * own view of the network), with the incarnation book sorted, followed by the application's
   * snapshot bytes. Skipped (and counted) while a snapshot or the previous digest holds the
   * application's copy.
   */
  private digestState(slot: Slot): void {
    if (this.snapshotting || this.digesting || this.closed) {
      this.stats.stateDigestsSkipped++;
      return;
    }
    const incarnations = [...this.incarnations].sort((a, b) => a[0] - b[0]);
    const head = encodeSnapshotBodyHead({ slot, configs: [], addresses: [], incarnations, sessions: this.sessions, stoppedAt: this.stoppedAtSlot });
    const app = this.captureApp();
    this.digesting = true;
    void this.hashState(head, app)
      .then((digest) => {
        if (digest !== null) this.onOwnDigest(slot, digest);
      })
      .catch((e) => this.log('warn', `could not digest the state at slot ${slot}`, { error: String(e) }))
      .finally(() => {
        this.digesting = false;
      });
  }

  /** CRC32C of the head and the application's chunks, a chunk per event-loop turn; null if the replica closed meanwhile. */
  private async hashState(head: Uint8Array, app: Iterable<Uint8Array>): Promise<number | null> {
    let crc = crc32c(head);
    // Breaking out of for...of (closed) ends the application's iterator, so its copy goes back.
    for (const chunk of app) {
      if (this.closed) return null;
      crc = crc32c(chunk, crc);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return this.closed ? null : crc;
  }

  private onOwnDigest(slot: Slot, digest: number): void {
    this.stats.stateDigests++;
    for (const m of this.digests.recordOwn(slot, digest)) this.reportDivergence(m);
    const frame = new Uint8Array(STATE_DIGEST_FRAME_BYTES);
    const view = new DataView(frame.buffer);
    frame[0] = FRAME_STATE_DIGEST;
    view.setFloat64(1, slot, true);
    view.setUint32(9, digest, true);
    for (const peer of this.peerAddresses.keys()) this.transport.send(peer, frame);
  }

  private onPeerDigest(from: ReplicaId, frame: Uint8Array): void {
    if (frame.length !== STATE_DIGEST_FRAME_BYTES) {
      this.log('warn', `dropped a state digest of ${frame.length} bytes from replica ${from} (expected ${STATE_DIGEST_FRAME_BYTES})`);
      return;
    }
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const slot = view.getFloat64(1, true);
    if (!Number.isSafeInteger(slot) || slot < 1) {
      this.log('warn', `dropped a state digest of slot ${slot} from replica ${from}`);
      return;
    }
    const mismatch = this.digests.recordPeer(from, slot, view.getUint32(9, true));
    if (mismatch !== null) this.reportDivergence(mismatch);
  }

  /** The alarm: two replicas hold different states after the same slot. */
  private reportDivergence(m: DigestMismatch): void {
    this.stats.stateDigestMismatches++;
    this.log(
      'error',
      `state divergence: after slot ${m.slot} this replica's state digest is ${hex(m.mine)} and replica ${m.peer}'s is ${hex(m.theirs)}. ` +
        'Replicas applied different commands or a state machine is not deterministic (apply, or snapshot bytes): compare the replicas before trusting either',
      { slot: m.slot, peer: m.peer, mine: hex(m.mine), theirs: hex(m.theirs) },
    );
  }

  // ================================================================ membership

  /**
   * Add a replica (started with `join`): its address is replicated, it follows the log as a
   * non-voting learner until it is within `caughtUpSlots` of the commit point, then a
   * configuration change makes it a member (governing from W slots after it is chosen).
   */
  async addMember(id: ReplicaId, address: PeerAddress, options: { caughtUpSlots?: number; timeoutMs?: number; endpoints?: Record<string, PeerAddress> } = {}): Promise<void> {
    await this.addMemberBy(id, address, options.caughtUpSlots ?? 64, now() + (options.timeoutMs ?? 60_000), options.endpoints);
  }

  /** addMember with an absolute deadline (replaceMember's one deadline covers both halves). */
  private async addMemberBy(id: ReplicaId, address: PeerAddress, margin: number, deadline: number, endpoints: Record<string, PeerAddress> | undefined): Promise<void> {
    if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new SynodError('SYNOD_MEMBERSHIP', `a replica id is an integer in 1..${MAX_REPLICA_ID}, got ${id}`);
    if (typeof address?.host !== 'string' || address.host === '' || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535) {
      throw new SynodError('SYNOD_MEMBERSHIP', `replica ${id}'s address needs a host and a port in 1..65535, got ${JSON.stringify(address)}`);
    }
    const named = Object.entries(endpoints ?? {});
    if (named.length > ENDPOINTS_PER_REPLICA_MAX || !named.every(([name, a]) => validEndpoint(name, a?.host, a?.port))) {
      throw new SynodError('SYNOD_MEMBERSHIP', `replica ${id}'s endpoints are at most ${ENDPOINTS_PER_REPLICA_MAX} lowercase names, each with a host and a port in 1..65535, got ${JSON.stringify(endpoints)}`);
    }
    this.requireLeader();
    if (this.core.status.members.includes(id)) throw new SynodError('SYNOD_MEMBERSHIP', `replica ${id} is already a member`);
    await this.proposeInternal({ op: 'address', id, host: address.host, port: address.port });
    // The operator's client addresses for it, if given: known everywhere from the add on (the
    // replica announces its own anyway whenever it leads, which is when followers need them).
    if (named.length > 0) await this.proposeEndpoints(id, Object.fromEntries(named));
    this.learnerIds = [...new Set([...this.learnerIds, id])];
    this.core.setLearners(this.learnerIds);
    this.refreshPeers();
    // Deposed while the learner catches up (an election under load): fail now with NotLeaderError,
    // so that the caller retries on the new leader, rather than wait out the whole deadline.
    // A learner that has not answered yet counts as having nothing (-1): caught up while the
    // cluster has fewer than `margin` slots. But only if it is there: a connection to it is up
    // (the handshake names this cluster and its id). Without that, a replica that was never
    // started became a voting member of a young cluster. (Its answers may not reach us yet: a
    // joiner that knows only the initial members learns this leader's address from the log.)
    const caughtUp = () => {
      this.requireLeader();
      const progress = this.core.peerProgress().get(id);
      if (progress === undefined && this.transport.stats().get(id)?.connected !== true) return false;
      return (progress ?? -1) >= this.core.status.chosenPrefix - margin;
    };
    try {
      await this.waitFor(caughtUp, deadline, `replica ${id} did not catch up`);
    } catch (e) {
      this.learnerIds = this.learnerIds.filter((x) => x !== id);
      this.core.setLearners(this.learnerIds);
      throw e;
    }
    await this.changeConfig((members) => (members.includes(id) ? members : [...members, id]), (members) => members.includes(id), deadline);
    this.learnerIds = this.learnerIds.filter((x) => x !== id);
    this.core.setLearners(this.learnerIds);
  }

  /**
   * Remove a member. Refused when the members left would not include a quorum of live,
   * caught-up replicas (SAFETY.md). A leader that removes itself hands over once the change applies.
   * With `waitForQuorum`, such a refusal is made only at the deadline: until then the check is
   * made again as the leader hears from its peers (the leader's figure for a member can lag its
   * last answer: replaceMember's new member, right after its own add).
   */
  async removeMember(id: ReplicaId, options: { timeoutMs?: number; waitForQuorum?: boolean } = {}): Promise<void> {
    await this.removeMemberBy(id, now() + (options.timeoutMs ?? 60_000), options.waitForQuorum === true);
  }

  /**
   * Without waitForQuorum the quorum check still waits this long (within the deadline) before it
   * refuses: the leader learns a member's progress from its answers, so right after an add the
   * new member's figure can lag by a heartbeat or two, and a removal then was refused at once.
   */
  private static readonly REMOVAL_PROGRESS_GRACE_MS = 2_000;

  private async removeMemberBy(id: ReplicaId, deadline: number, waitForQuorum: boolean): Promise<void> {
    const refuseAfter = waitForQuorum ? deadline : Math.min(deadline, now() + SynodReplica.REMOVAL_PROGRESS_GRACE_MS);
    for (;;) {
      this.requireLeader();
      const members = this.core.status.members;
      if (!members.includes(id)) throw new SynodError('SYNOD_MEMBERSHIP', `replica ${id} is not a member`);
      const remaining = members.filter((m) => m !== id);
      const commit = this.core.status.chosenPrefix;
      const progress = this.core.peerProgress();
      const stats = this.transport.stats();
      const healthy = remaining.filter((m) => m === this.id || (stats.get(m)?.connected && (progress.get(m) ?? -1) >= commit - REMOVAL_CAUGHT_UP_SLOTS));
      if (remaining.length > 0 && healthy.length * 2 > remaining.length) break;
      if (remaining.length === 0 || now() > refuseAfter) {
        throw new SynodError('SYNOD_MEMBERSHIP', `removing replica ${id} would leave ${healthy.length} of ${remaining.length} members live and caught up: no quorum`);
      }
      if (this.closed) throw new ShuttingDownError();
      if (this.failed) throw this.failed;
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.changeConfig((current) => current.filter((m) => m !== id), (current) => !current.includes(id), deadline);
  }

  /**
   * Replace one member with another: add the new one, then remove the old one, within one
   * `timeoutMs` (default 60000) for both. The removal waits, within it, for the live, caught-up
   * quorum it needs (the leader learns the new member's progress from its next answers), and is
   * refused at the deadline if there is still none. `caughtUpSlots` is the add's (addMember).
   */
  async replaceMember(oldId: ReplicaId, newId: ReplicaId, address: PeerAddress, options: { timeoutMs?: number; caughtUpSlots?: number } = {}): Promise<void> {
    const deadline = now() + (options.timeoutMs ?? 60_000);
    await this.addMemberBy(newId, address, options.caughtUpSlots ?? 64, deadline, undefined);
    await this.removeMemberBy(oldId, deadline, true);
  }

  /**
   * Proposes `change(current members)`, retrying while another change is in progress: the target is
   * made again from the members of each try, so that two changes made at once (two addMember calls)
   * both take effect instead of the second undoing the first. Resolves once `done(members)` holds.
   */
  private async changeConfig(change: (members: ReplicaId[]) => ReplicaId[], done: (members: ReplicaId[]) => boolean, deadline: number): Promise<void> {
    for (;;) {
      this.requireLeader();
      const target = change([...this.core.status.members]).sort((a, b) => a - b);
      const refusal = this.core.proposeConfig(target, now());
      this.scheduleDrain();
      if (refusal === null) break;
      if (!refusal.includes('in progress') || now() > deadline) throw new SynodError('SYNOD_MEMBERSHIP', refusal);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The leader re-runs Phase 1 once the new configuration is chosen (briefly not leading), and
    // whoever leads fills the slots up to it: wait for it to govern, from this replica's view.
    try {
      await this.waitFor(() => done(this.core.status.members), deadline, 'the configuration change did not take effect');
    } catch (e) {
      // Proposed: it may be chosen (and govern) whatever becomes of this replica, so shutting
      // down or stopping now is no certain failure (a ShuttingDownError was answered 503).
      if (e instanceof ShuttingDownError || e === this.failed) {
        throw new OutcomeUnknownError(`the configuration change was proposed, then this replica ${e instanceof ShuttingDownError ? 'shut down' : 'stopped'} before it was known to govern`, 'see whether it took effect (the members list)');
      }
      throw e;
    }
  }

  private requireLeader(): void {
    if (this.closed) throw new ShuttingDownError();
    if (this.failed) throw this.failed;
    const s = this.core.status;
    if (s.role !== 'leader') throw new NotLeaderError(s.leader);
  }

  private proposeInternal(body: Record<string, unknown>): Promise<Uint8Array> {
    return this.submitInternal(new TextEncoder().encode(JSON.stringify(body)), this.options.proposeTimeoutMs ?? 5000);
  }

  /** A command of the replicas' own (session registration, membership, settings): a random seq, no floor. */
  private submitInternal(command: Uint8Array, timeoutMs: number, bounded = false): Promise<Uint8Array> {
    // A stopped replica expires nothing (its tick is off): refuse now rather than never answer.
    if (this.closed) return Promise.reject(new ShuttingDownError());
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) =>
      this.submit(command, INTERNAL_CLIENT, randomInt(1, 2 ** 47), 0, timeoutMs, false, bounded, (e, r) => (e === null ? resolve(r!) : reject(e)), undefined),
    );
  }

  private applyInternal(payload: Uint8Array): Uint8Array {
    const cmd = decodeInternal(payload);
    if (cmd.op === 'address') {
      this.learnAddress(cmd.id, { host: cmd.host, port: cmd.port });
      this.refreshPeers();
    } else if (cmd.op === 'incarnation') {
      this.bindIncarnation(cmd.id, cmd.incarnation);
    } else if (cmd.op === 'sessionLimits') {
      this.sessions.setLimits(cmd.limits);
    } else if (cmd.op === 'ownSession') {
      this.ownSessions.add(cmd.id);
    } else if (cmd.op === 'endpoints') {
      this.endpointBook.set(cmd.id, new Map(cmd.endpoints));
    } else {
      this.log('warn', 'ignored a malformed or unknown internal command');
    }
    return EMPTY;
  }

  /**
   * A new primary whose own session settings differ from the replicated table's proposes its
   * settings through the log: every replica, and every later replay, switches at that slot.
   */
  private proposeSessionLimitsIfChanged(): void {
    const mine = sessionLimitsOf(this.options);
    const current = this.sessions.settings;
    if (current.sessionsMax === mine.sessionsMax && current.sessionExpiryMs === mine.sessionExpiryMs) return;
    this.submitInternal(encodeSessionLimitsCommand(mine), this.options.proposeTimeoutMs ?? 5000).catch((e: unknown) =>
      this.log('warn', 'could not propose the session settings; the next primary will', { error: String(e) }),
    );
  }

  /**
   * A session table from a snapshot, with the settings it recorded: settings change only through
   * the log (a new primary with other settings proposes them), so a replay decides as live did.
   * The core learns the snapshot's clock so that its stamps never go below it.
   */
  private adoptSessions(table: SessionTable<Uint8Array>): void {
    this.sessions = table;
    this.core.noteTimeStamp(table.timeMs);
  }

  /**
   * A replicated address (an added member's, or from a snapshot). The addresses this replica was
   * started with win: the operator may route them differently (proxies, NAT, a 0.0.0.0 bind on the
   * other side), and our own listen address is never taken from someone else's book.
   */
  private learnAddress(id: ReplicaId, address: PeerAddress): void {
    if (id === this.id || this.options.members.has(id)) return;
    this.addresses.set(id, address);
  }

  // ================================================================ client endpoints

  /**
   * This replica's client-facing addresses by name (the KV server passes `http` and `binary` once
   * it listens). Whenever this replica is primary and the replicated endpoint book says otherwise
   * for it, it proposes them (an `endpoints` command): the replica that leads is the one clients
   * must be sent to, and it knows its own addresses, so followers can forward or redirect to a
   * leader that was added after they started without anyone restarting them or passing more
   * flags. Unspecified hosts (0.0.0.0, ::) say nothing to others and are not announced.
   */
  advertiseEndpoints(endpoints: Record<string, PeerAddress>): void {
    const named = Object.entries(endpoints).filter(([, a]) => !isUnspecified(a.host));
    if (named.length > ENDPOINTS_PER_REPLICA_MAX) throw new SynodError('SYNOD_BAD_ENDPOINT', `at most ${ENDPOINTS_PER_REPLICA_MAX} endpoints, got ${named.length}`);
    for (const [name, a] of named) {
      if (!validEndpoint(name, a.host, a.port)) throw new SynodError('SYNOD_BAD_ENDPOINT', `endpoint ${JSON.stringify(name)} needs a lowercase name and a host and a port in 1..65535, got ${JSON.stringify(a)}`);
    }
    this.ownEndpoints = new Map(named.map(([name, a]) => [name, { host: a.host, port: a.port }]));
    this.announceEndpoints();
  }

  /**
   * Replica `id`'s endpoint `name` as the log says (the KV server's `--initial-http` and
   * `--initial-binary` win over it where given), or undefined.
   */
  endpointOf(id: ReplicaId, name: string): PeerAddress | undefined {
    return this.endpointBook.get(id)?.get(name);
  }

  /** Replica `id`'s peer address: this replica's own, its initial members' as given, others' from the log. */
  peerAddressOf(id: ReplicaId): PeerAddress | undefined {
    return this.addresses.get(id);
  }

  /** Proposes this replica's endpoints if it is primary and the book differs (at most one proposal in flight). */
  private announceEndpoints(): void {
    if (!this.primary || this.closed || this.failed || this.ownEndpoints === null || this.ownEndpoints.size === 0) return;
    const booked = this.endpointBook.get(this.id);
    const same = booked !== undefined && booked.size === this.ownEndpoints.size && [...this.ownEndpoints].every(([n, a]) => booked.get(n)?.host === a.host && booked.get(n)?.port === a.port);
    if (same) return;
    const command = encodeEndpointsCommand(this.id, [...this.ownEndpoints]);
    const key = Buffer.from(command).toString('latin1');
    if (this.endpointsProposed === key) return;
    this.endpointsProposed = key;
    this.submitInternal(command, this.options.proposeTimeoutMs ?? 5000)
      .then(
        () => {
          if (this.endpointsProposed === key) this.endpointsProposed = null;
        },
        (e: unknown) => {
          if (this.endpointsProposed === key) this.endpointsProposed = null;
          this.log('debug', "could not announce this replica's endpoints yet; trying again in 1 s while primary", { error: String(e) });
          setTimeout(() => this.announceEndpoints(), ENDPOINTS_RETRY_MS).unref();
        },
      );
  }

  /** Proposes replica `id`'s endpoints (an operator's, at an add). */
  private proposeEndpoints(id: ReplicaId, endpoints: Record<string, PeerAddress>): Promise<Uint8Array> {
    return this.submitInternal(encodeEndpointsCommand(id, Object.entries(endpoints)), this.options.proposeTimeoutMs ?? 5000);
  }

  private endpointTuples(): Array<[number, string, string, number]> {
    const out: Array<[number, string, string, number]> = [];
    for (const [id, named] of this.endpointBook) for (const [name, a] of named) out.push([id, name, a.host, a.port]);
    return out;
  }

  /** The endpoint book from a snapshot: it replaces the book (the snapshot holds every entry up to its slot). */
  private adoptEndpointTuples(tuples: Array<[number, string, string, number]>): void {
    this.endpointBook.clear();
    for (const [id, name, host, port] of tuples) {
      let named = this.endpointBook.get(id);
      if (!named) this.endpointBook.set(id, (named = new Map()));
      named.set(name, { host, port });
    }
  }

  // ================================================================ incarnations

  /** Applies a binding (from the log or a snapshot): the first one for an id stands. */
  private bindIncarnation(id: ReplicaId, incarnation: string): void {
    if (this.incarnations.has(id)) return;
    this.incarnations.set(id, incarnation);
    if (id === this.id && incarnation !== this.incarnation) {
      this.log('error', `the cluster knows replica ${id} as incarnation ${incarnation}, not this data directory's: peers refuse this replica; give it a new id (docs/operations.md)`);
    }
    // Connections already open from another incarnation of `id` are cut at once.
    this.transport.setAdmission(this.admission);
  }

  /** The transport's admission check: a bound id must come back with the incarnation bound to it. */
  private admitPeer(peer: ReplicaId, incarnation: string | null): string | null {
    const bound = this.incarnations.get(peer);
    if (bound === undefined || bound === incarnation) return null;
    const t = now();
    if (t - this.refusedIncarnationLogMs > 1000) {
      this.refusedIncarnationLogMs = t;
      this.log('warn', `refused replica ${peer}: incarnation ${incarnation ?? '(none)'} is not the one bound to it`, { peer, incarnation, bound });
    }
    return (
      `replica ${peer} is known to this cluster as incarnation ${bound}, but this one is ${incarnation ?? '(none)'}: ` +
      `its data directory was replaced or wiped, so it has forgotten its votes; a replica that lost its data must rejoin under a new id (docs/operations.md)`
    );
  }

  /**
   * A primary binds, through the log, every replica it has heard from (and itself) that has no
   * incarnation yet. Until bound, any incarnation is admitted: the window is the first contact.
   */
  private bindIncarnations(): void {
    if (!this.primary || this.closed) return;
    const candidates: Array<[ReplicaId, string]> = [[this.id, this.incarnation], ...this.heardIncarnations];
    for (const [id, incarnation] of candidates) {
      if (this.incarnations.has(id) || !this.addresses.has(id)) continue;
      const key = `${id}:${incarnation}`;
      if (this.bindingsProposed.has(key)) continue;
      this.bindingsProposed.add(key);
      this.proposeInternal({ op: 'incarnation', id, incarnation }).catch((e: unknown) => {
        this.bindingsProposed.delete(key); // the next primary, or the next connection, tries again
        this.log('debug', `could not bind replica ${id}'s incarnation yet`, { error: String(e) });
      });
    }
  }

  /** Connect to every member of every known configuration, and to learners. */
  private refreshPeers(): void {
    this.departedVersionSeen = this.core.departedVersion;
    const ids = new Set<ReplicaId>([...this.learnerIds, ...this.core.departedPeers]);
    for (const epoch of this.core.configs) for (const m of epoch.members) ids.add(m);
    for (const m of this.options.members.keys()) if (this.options.join) ids.add(m);
    ids.delete(this.id);
    this.digests.retain(ids);
    const peers = new Map<ReplicaId, PeerAddress>();
    for (const id of ids) {
      const a = this.addresses.get(id);
      if (a) peers.set(id, a);
    }
    for (const id of this.noticePeers.keys()) {
      const heard = this.heardAddresses.get(id);
      if (heard && !peers.has(id)) peers.set(id, heard);
    }
    if (this.reachBack !== null) {
      // Once a configuration names it and the log gave its address, the hint has done its job
      // (and must not keep a replica removed later among the peers).
      if (peers.has(this.reachBack)) this.reachBack = null;
      else {
        const heard = this.heardAddresses.get(this.reachBack);
        if (heard) peers.set(this.reachBack, heard);
      }
    }
    this.peerAddresses = peers;
    this.transport.setPeers(peers);
  }

  /**
   * Makes a replica that no configuration names reachable for a notMember answer, at the address
   * its hello gave (false: it gave none, so it cannot be told).
   */
  private reachNonMember(id: ReplicaId, configFromSlot: number, members: ReplicaId[]): boolean {
    const until = now() + NOTICE_PEER_TIMEOUTS * this.core.options.electionTimeoutMaxMs;
    if (this.noticePeers.has(id)) {
      this.noticePeers.set(id, until); // it campaigns still: keep dialing it
      return true;
    }
    if (this.peerAddresses.has(id)) return true; // a peer already (its departed window)
    if (!this.heardAddresses.has(id)) return false;
    this.noticePeers.set(id, until);
    this.refreshPeers();
    this.log('warn', `replica ${id} campaigns but is not a member: telling it that the configuration from slot ${configFromSlot} is ${members.join(',')} (stop it: docs/operations.md)`, { peer: id });
    return true;
  }

  private expireNoticePeers(t: number): void {
    let expired = false;
    for (const [id, until] of this.noticePeers) {
      if (t < until) continue;
      this.noticePeers.delete(id);
      expired = true;
    }
    if (expired) this.refreshPeers();
  }

  /** A peer with an address, preferring one whose connection is open (for redirected catch-up). */
  private reachableMember(): ReplicaId | null {
    let any: ReplicaId | null = null;
    const stats = this.transport.stats();
    for (const id of this.peerAddresses.keys()) {
      if (stats.get(id)?.connected) return id;
      any ??= id;
    }
    return any;
  }

  private async waitFor(condition: () => boolean, deadline: number, what: string): Promise<void> {
    while (!condition()) {
      if (this.closed) throw new ShuttingDownError();
      if (this.failed) throw this.failed;
      if (now() > deadline) throw new SynodError('SYNOD_MEMBERSHIP', `${what} in time`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Whether this replica leads now (cheap: for per-request checks; status() builds much more). */
  isLeader(): boolean {
    return this.core.isLeader;
  }

  /** The leader this replica knows of (itself when leading), or null. */
  leaderId(): ReplicaId | null {
    return this.core.knownLeader;
  }

  status(): ReplicaStatus {
    const s = this.core.status;
    const log = this.logStore.headTailCapacity();
    const peers: ReplicaStatus['peers'] = {};
    for (const [peer, st] of this.transport.stats()) peers[String(peer)] = { connected: st.connected, queuedBytes: st.queuedBytes, droppedFrames: st.droppedFrames };
    return {
      id: this.id,
      role: s.role,
      leader: s.leader,
      ballot: s.ballot,
      commitSlot: s.chosenPrefix,
      appliedSlot: this.appliedSlot,
      members: s.members,
      configs: this.core.configs,
      snapshotSlot: this.snapshotSlot,
      stoppedAtSlot: this.stoppedAtSlot || null,
      removal: s.removal,
      log: { headLsn: log.head, tailLsn: log.tail, usedBytes: log.usedBytes, memoryBytes: this.recentLog.heldBytes, memoryStartSlot: this.core.logStartSlot, writePath: this.logStore.writePath ?? 'memory' },
      peers,
      incarnation: this.incarnation,
      incarnations: Object.fromEntries([...this.incarnations].map(([id, inc]) => [String(id), inc])),
      stateDigest: this.digests.status(),
      proposalQueue: { commands: this.proposalQueue.count + this.core.queuedCommands, bytes: this.proposalQueueBytes + this.core.queuedBytes },
    };
  }

  /** Per-peer health (RSL's GetReplicasInformation): connection, outstanding sends, progress, failures. */
  health(): Record<string, PeerHealth> {
    const progress = this.core.peerProgress();
    const out: Record<string, PeerHealth> = {};
    for (const [peer, st] of this.transport.stats()) {
      if (st.connected) this.reconnectsWhenUp.set(peer, st.reconnects);
      out[String(peer)] = {
        connected: st.connected,
        outstandingBytes: st.queuedBytes,
        sentFrames: st.sentFrames,
        droppedFrames: st.droppedFrames,
        lastAckedSlot: progress.get(peer) ?? null,
        consecutiveFailures: st.connected ? 0 : Math.max(0, st.reconnects - (this.reconnectsWhenUp.get(peer) ?? 0)),
        lastError: st.lastError?.message ?? null,
      };
    }
    return out;
  }

  /**
   * What happened since the previous call (or start), RSL's GetStatisticsSnapshot: slots and
   * commands executed, log writes and group-commit latency, and (leading) voting time per slot.
   */
  statistics(): ReplicaStatistics {
    return this.statsRecorder.take(now(), this.stats, this.logStore.stats());
  }

  /**
   * Group-commit latency and (while leading) voting time since start, as cumulative histograms
   * with fixed buckets (LATENCY_BUCKET_BOUNDS_MS): what a metrics scraper wants, where statistics()
   * gives one caller's intervals. The KV server exports them in /metrics.
   */
  latencyHistograms(): { logCommit: LatencyHistogram; voting: LatencyHistogram } {
    return this.statsRecorder.histograms();
  }

  /**
   * RSL's CopyStateFromReplica: fetch the newest snapshot of `peer` (it takes one if it has none
   * newer than what this replica applied) and install it: restore() is called, and the log goes on
   * from there. Resolves with the installed slot (RSL's StateCopied). Rejects with SynodError
   * SYNOD_COPY_STATE if the peer has nothing newer within timeoutMs (default 30 s).
   */
  async copyStateFrom(peer: ReplicaId, options: { timeoutMs?: number } = {}): Promise<Slot> {
    if (this.closed) throw new ShuttingDownError();
    if (this.failed) throw this.failed;
    if (peer === this.id || !this.addresses.has(peer)) throw new SynodError('SYNOD_COPY_STATE', `replica ${peer} is not a known peer`);
    const deadline = now() + (options.timeoutMs ?? 30_000);
    const installedBefore = this.stats.snapshotsInstalled;
    const wanted = this.appliedSlot + 1;
    for (;;) {
      if (this.stats.snapshotsInstalled > installedBefore) return this.snapshotSlot;
      if (this.closed) throw new ShuttingDownError();
      if (this.failed) throw this.failed;
      if (now() > deadline) throw new SynodError('SYNOD_COPY_STATE', `replica ${peer} sent no snapshot above slot ${wanted - 1} in time`);
      if (!this.fetch) this.requestSnapshot(peer, wanted); // again after a fetch timed out or failed
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  counters() {
    return { ...this.stats, log: this.logStore.stats() };
  }

  /** Stop cleanly: unanswered requests end (certainly-not-proposed ones as such), then I/O closes. */
  /** Idempotent: every call resolves when the first one has finished (the data dir may then be reopened). */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  /**
   * Tests/simulation: stop at once, as if the process died (kill -9, a power cut): no flush, no
   * more frames sent or handled (the transport endpoint closes, its frames in flight are lost),
   * timers stopped, and nothing awaited, storage least of all (on a file system that lost power,
   * calls never complete). Whatever storage calls are in flight are abandoned, not finished: over
   * an injected file system (storageIo) that is then cut, they never land; over node:fs they
   * would still land, as a killed process's page cache does. Waiting callers get an unknown
   * outcome (OutcomeUnknownError), what a client sees when its connection drops: the process
   * cannot tell it anything. The data directory may be reopened at once on the surviving image.
   */
  kill(): void {
    if (this.closed) return;
    const killed = () => new OutcomeUnknownError('the replica was killed');
    this.stopTaking(killed, killed);
    this.transport.close().catch(() => {});
    this.closing ??= Promise.resolve();
  }

  /** The first steps of a close or a kill: no more ticks or proposals; every waiting caller answered. */
  private stopTaking(proposalError: (p: PendingEntry) => Error, readError: () => Error): void {
    this.closed = true;
    clearInterval(this.tickTimer);
    this.clearProposalQueue();
    for (const p of this.pending.values()) p.reject(proposalError(p));
    for (const r of this.pendingReads.values()) {
      this.endRead(r);
      r.reject(readError());
    }
  }

  private clearProposalQueue(): void {
    this.proposalQueue.clear();
    this.proposalQueueBytes = 0;
  }

  private async closeNow(): Promise<void> {
    this.stopTaking(
      (p) => (this.submitted(p) ? new OutcomeUnknownError('the replica shut down') : new ShuttingDownError()),
      () => new ShuttingDownError(),
    );
    await this.snapshotInFlight?.catch(() => {});
    // Nothing of this replica writes to its directory after close() resolves (it may be reopened at once).
    await this.installing;
    await this.transport.close();
    await this.logStore.close();
  }

  // ================================================================ inputs

  private onTick(): void {
    if (this.closed || this.failed) return;
    const t = now();
    this.core.tick(t, Date.now());
    // A removed replica's notice window ended: stop dialing it (it is no longer in any list).
    if (this.core.departedVersion !== this.departedVersionSeen) this.refreshPeers();
    if (this.noticePeers.size > 0) this.expireNoticePeers(t);
    const removal = this.core.removalNotice();
    if (removal !== null && removal.configFromSlot !== this.removalLogged) {
      this.removalLogged = removal.configFromSlot;
      this.log(
        'error',
        `this replica was removed from the cluster while it could not hear of it: replica ${removal.by} holds a configuration from slot ${removal.configFromSlot} of members ${removal.members.join(',')}; it will not campaign. Stop it (docs/operations.md)`,
        { removal },
      );
    }
    if (this.pending.clients > 0) {
      const expired = this.pending.expired(t);
      if (expired.length > 0) this.expireProposals(expired);
    }
    if (this.pendingReads.size > 0) {
      for (const r of this.readDeadlines.takeExpired(t)) {
        this.pendingReads.delete(r.readId);
        r.reject(r.timeout());
      }
    }
    if (this.fetch && now() - this.fetch.progressMs > SNAPSHOT_FETCH_TIMEOUT_MS) this.fetch = null; // retry on the next hint
    this.scheduleDrain();
  }

  /**
   * Proposals past their deadline. Those still waiting to be proposed, in this replica's queue for
   * the next drain or in the core's for room in the pipeline window, are in no slot: they are taken
   * back and answered as certainly never proposed (OverloadedError), so that neither they nor their
   * callers' retries pile up while the window is full. The rest were handed to a slot, or may
   * have been: their outcome is unknown, and they stay where they are.
   */
  private expireProposals(expired: PendingEntry[]): void {
    let inOwnQueue = 0;
    for (const p of expired) {
      p.expiring = true;
      if (!this.submitted(p)) inOwnQueue++;
    }
    // A command's entry is the pending one of its (clientId, seq): one entry queues one command,
    // and a second entry of the same request is only made once the first has settled.
    const gone = (c: Command): boolean => this.pending.get(c.clientId, c.seq)?.expiring === true;
    if (inOwnQueue > 0) {
      const dropped = this.proposalQueue.removeWhere(gone);
      for (const c of dropped) this.proposalQueueBytes -= c.payload.length;
      this.core.unmarkExclusive(dropped);
    }
    // The core holds at most those handed to it, and its scan stops once it has found that many
    // (a submitted entry whose command it did not reach is answered unknown below, which is
    // always true).
    const handedOver = expired.length - inOwnQueue;
    const withdrawn = handedOver > 0 && this.core.queuedCommands > 0 ? this.core.withdrawQueued(gone, handedOver) : [];
    const reason = (p: PendingEntry) => `no slot for it within its timeout (${p.timeoutMs} ms) on replica ${this.id}: the pipeline window is not moving fast enough`;
    for (const c of withdrawn) {
      const p = this.pending.get(c.clientId, c.seq)!;
      this.stats.proposalsOverloaded++;
      p.reject(new OverloadedError(reason(p)));
    }
    for (const p of expired) {
      if (p.settled) continue;
      if (this.submitted(p)) p.reject(new OutcomeUnknownError('no result before the proposal timeout'));
      else {
        this.stats.proposalsOverloaded++;
        p.reject(new OverloadedError(reason(p)));
      }
    }
  }

  private onFrame(from: ReplicaId, frame: Uint8Array): void {
    if (this.closed || this.failed || frame.length === 0) return;
    const kind = frame[0];
    if (kind === MESSAGE_FORMAT_VERSION) {
      let msg;
      try {
        msg = decodeMessage(frame);
      } catch (e) {
        this.log('warn', `dropped an undecodable message from replica ${from}`, { error: (e as Error).message });
        return;
      }
      if (msg.from !== from || msg.to !== this.id) {
        this.log('warn', `dropped a message whose envelope (${msg.from}->${msg.to}) does not match its connection (${from}->${this.id})`);
        return;
      }
      if (msg.type === 'catchupRequest' && msg.fromSlot < this.core.logStartSlot) {
        this.answerCatchupFromLog(msg.from, msg.fromSlot);
        return;
      }
      this.core.receive(msg, now());
      this.scheduleDrain();
    } else if (kind === FRAME_SNAPSHOT_REQUEST) {
      void this.shipSnapshot(from, frame).catch((e) => this.log('warn', `snapshot shipping to ${from} failed`, { error: String(e) }));
    } else if (kind === FRAME_SNAPSHOT_CHUNK) {
      this.onSnapshotChunk(from, frame);
    } else if (kind === FRAME_STATE_DIGEST) {
      this.onPeerDigest(from, frame);
    } else {
      this.log('warn', `dropped a frame of unknown kind ${kind} from replica ${from}`);
    }
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  // ================================================================ the drain loop

  private drain(): void {
    if (this.closed || this.failed) return;
    try {
      // Adaptive batching: while a group commit of this replica's log is in flight, proposals
      // wait for it (its completion drains again), so the next slot gathers everything that
      // arrived meanwhile. An idle replica proposes at once; a loaded one makes fewer, larger
      // slots, which cost fewer fdatasyncs and messages per command. A full batch goes anyway, so
      // a slow local disk does not stop followers from forming a quorum on new slots.
      const batchMax = this.core.options.batchCommandsMax;
      const queued = this.proposalQueue.count;
      if (queued > 0 && (this.committing === 0 || queued >= batchMax)) {
        const batch = this.proposalQueue.copy();
        this.clearProposalQueue();
        this.proposalGeneration++; // every queued proposal is now submitted
        this.core.propose(batch, now(), Date.now());
      }
      let lastSeq = 0;
      for (let ready = this.core.takeReady(); ready; ready = this.core.takeReady()) {
        for (const op of ready.persist) {
          for (const record of recordsOf(op)) {
            const lsn = this.logStore.tentativelyAppend(record);
            if (record.type === 1) {
              this.entryLsns.push([lsn, record.slot]);
              this.recentLog.appended(record.slot, record.payload);
            }
          }
          // The leader's own batches, now encoded (their records above): held by their bytes from
          // here, so their commands' objects die young (and a machine with applyAt applies them
          // where they lie). Accepts already made reuse the same encoding.
          if (this.core.isLeader) {
            for (const e of op.entries) {
              const encoded = encodedBatchOf(e.value);
              if (encoded !== null) this.core.adoptEncoding(e.slot, e.ballot, encoded);
            }
          }
          lastSeq = op.seq;
        }
        for (const msg of ready.send) {
          if (msg.type === 'notMember' && !this.reachNonMember(msg.to, msg.configFromSlot, msg.members)) continue;
          if (msg.type === 'catchupRequest' && !this.peerAddresses.has(msg.to)) {
            // We cannot reach the replica we would learn from by any configuration we know (a
            // joiner started with the initial members hears a leader that was added later, whose
            // address is in a log it has not read yet).
            if (this.heardAddresses.has(msg.to)) {
              // It dialed us and said where it listens: reach it there. It knows us (we are its
              // learner), so it answers below its log start too, which a follower does not
              // (core.mayFetchLog).
              this.reachBack = msg.to;
              this.refreshPeers();
            } else {
              // Nor did it say where (a build before hello addresses): any member answers
              // catch-up with chosen entries above its log start, so ask one we can reach.
              const via = this.reachableMember();
              if (via !== null) {
                this.transport.send(via, encodeMessage({ ...msg, to: via }));
                continue;
              }
            }
          }
          this.transport.send(msg.to, encodeMessage(msg));
        }
        for (const c of ready.committed) this.applySlot(c.slot, c.value);
        this.handleReadsAndRoles(ready);
      }
      if (lastSeq > 0) this.commit(lastSeq);
      this.serveWaitingReads();
      this.maybeSnapshot();
      this.releaseAppliedLog();
    } catch (e) {
      this.fail(e);
    }
  }

  private commit(seq: number): void {
    this.committing++;
    this.stats.commits++;
    const startedMs = now();
    this.logStore.commit().then(
      () => {
        this.committing--;
        this.statsRecorder.logCommitted(now() - startedMs);
        if (this.closed || this.failed) return;
        this.core.persisted(seq, now());
        this.drain();
      },
      (e) => this.fail(e),
    );
  }

  /** Storage failed (ENOSPC, EIO) or an invariant broke: stop voting, answer nothing more. */
  private fail(e: unknown): void {
    if (this.failed) return;
    this.failed = e instanceof SynodError ? e : new StorageFailedError(e);
    this.log('error', 'replica stopped', { error: String(e) });
    clearInterval(this.tickTimer);
    for (const p of this.pending.values()) p.reject(this.submitted(p) ? new OutcomeUnknownError('the replica stopped') : this.failed);
    for (const r of this.pendingReads.values()) {
      this.endRead(r);
      r.reject(this.failed);
    }
  }

  private applySlot(slot: Slot, value: Value): void {
    if (slot <= this.appliedSlot) return; // covered by an installed snapshot
    if (this.stoppedAtSlot > 0) return this.skipAfterStop(slot, value);
    if (value.kind === 'batch') {
      // The batch's stamp moves the session clock (expiring idle sessions) before anything runs.
      const timeMs = this.sessions.advance(value.timeMs);
      this.sm.beforeBatch?.(slot);
      // A batch decoded from bytes (a follower's accept, a replayed record) is read with a cursor:
      // no Command object per command, and no payload view either when the machine has applyAt
      // (else one view each: codec/values.ts, DecodedBatch).
      // The cursor and the payload list are this call's own: an answer's callback may re-enter.
      const cursor = value instanceof DecodedBatch ? new BatchCursor(value) : null;
      const commands = cursor === null ? value.commands : null;
      const count = cursor !== null ? cursor.batch.count : commands!.length;
      if (cursor !== null && this.sm.applyAt !== undefined) this.applyEncodedBatch(slot, timeMs, cursor, count);
      else this.applyCommands(slot, timeMs, cursor, commands, count);
      this.sm.afterBatch?.(slot);
      if (value.last === true) this.stoppedAtSlot = slot; // a last request: nothing after it runs
    } else if (value.kind === 'config') {
      this.sm.onConfigChange?.(value.members);
      this.refreshPeers();
    }
    this.appliedSlot = slot;
    this.recentLog.applied(slot);
    this.stats.slotsApplied++;
    if (this.digestInterval > 0 && slot % this.digestInterval === 0) this.digestState(slot);
  }

  /** A batch's commands through StateMachine.apply (and prefetch): objects, or a cursor making a view per command. */
  private applyCommands(slot: Slot, timeMs: number, cursor: BatchCursor | null, commands: readonly Command[] | null, count: number): void {
    let payloads: Uint8Array[] | null = null;
    if (this.sm.prefetch !== undefined && count > 1) {
      payloads = new Array<Uint8Array>(count);
      for (let i = 0; i < count; i++) {
        if (cursor === null) payloads[i] = commands![i]!.payload;
        else {
          cursor.next(true);
          payloads[i] = cursor.payload;
        }
      }
      cursor?.rewind();
      this.sm.prefetch(payloads);
    }
    for (let i = 0; i < count; i++) {
      let cmd: Command;
      if (cursor === null) cmd = commands![i]!;
      else {
        cursor.next(payloads === null);
        if (payloads !== null) cursor.payload = payloads[i]!;
        cmd = cursor;
      }
      this.applyCommand(slot, timeMs, cmd, null);
    }
  }

  /**
   * An encoded batch's commands through StateMachine.applyAt (and prefetchAt): read where they lie
   * in the batch's bytes, with no view per command (a follower's accepts, a replayed log, the
   * leader's own batches once encoded).
   */
  private applyEncodedBatch(slot: Slot, timeMs: number, cursor: BatchCursor, count: number): void {
    if (this.sm.prefetchAt !== undefined && count > 1) {
      if (this.prefetchOffsets.length < count) {
        this.prefetchOffsets = new Int32Array(count);
        this.prefetchLengths = new Int32Array(count);
      }
      for (let i = 0; i < count; i++) {
        cursor.next(false);
        this.prefetchOffsets[i] = cursor.payloadOffset;
        this.prefetchLengths[i] = cursor.payloadLength;
      }
      cursor.rewind();
      this.sm.prefetchAt(cursor.bytes, this.prefetchOffsets, this.prefetchLengths, count);
    }
    for (let i = 0; i < count; i++) {
      cursor.next(false);
      cursor.payload = EMPTY; // while applyAt reads the command in place: a view is made only where one is needed (applyCommand)
      this.applyCommand(slot, timeMs, cursor, cursor);
    }
  }

  /**
   * Runs one command of a batch (at most once: the session table) and answers its proposer here.
   * `cmd` may be the batch cursor: not kept. With `at` (the cursor itself, for applyAt) the
   * command's payload is where the cursor says, and its view is made only where one is needed.
   */
  private applyCommand(slot: Slot, timeMs: number, cmd: Command, at: BatchCursor | null): void {
    this.appliedPayloadBytes += at !== null ? at.payloadLength : cmd.payload.length; // for snapshotIntervalBytes
    if (cmd.clientId === INTERNAL_CLIENT) {
      at?.view();
      const registered = isRegisterCommand(cmd) ? encodeSessionId(this.sessions.register()) : this.applyInternal(cmd.payload);
      this.pending.get(cmd.clientId, cmd.seq)?.resolve(registered);
      return;
    }
    const outcome = this.sessions.check(cmd);
    let result: Uint8Array | null;
    if (outcome.kind === 'execute') {
      const context = this.applyContext; // one object, refilled: no allocation per command
      context.slot = slot;
      context.clientId = cmd.clientId;
      context.seq = cmd.seq;
      context.timeMs = timeMs;
      try {
        result = at !== null ? this.sm.applyAt!(at.bytes, at.payloadOffset, at.payloadLength, context) : this.sm.apply(cmd.payload, context);
      } catch (e) {
        // A throwing apply leaves this replica's state unknown: it must not go on voting.
        throw new SynodError('SYNOD_STATE_MACHINE_FAILED', `apply() threw at slot ${slot}: ${(e as Error).message}`);
      }
      this.sessions.record(cmd, result);
      this.stats.commandsApplied++;
    } else if (outcome.kind === 'duplicate') {
      result = outcome.result;
    } else {
      result = null;
    }
    const p = this.pending.size > 0 ? this.pending.get(cmd.clientId, cmd.seq) : undefined;
    if (p) {
      if (result !== null) p.resolve(result);
      else if (outcome.kind === 'expired' && p.own) {
        at?.view();
        this.reproposeOwn(cmd, p);
      } else p.reject(new SessionExpiredError(cmd.clientId, cmd.seq));
    }
  }

  /**
   * The replica's own session expired (idle longer than sessionExpiryMs, or evicted) and a command
   * of it was refused. It certainly never ran: own commands get a fresh seq each and are handed to
   * the core once, so this slot was their only one. So it goes again under a new own session, and
   * its caller (e.g. an HTTP write after an idle hour) sees no error.
   */
  private reproposeOwn(cmd: Command, p: PendingEntry): void {
    if (this.ownSession === cmd.clientId) this.ownSession = 0;
    this.proposeWith(cmd.payload, {}, (e, r) => (e === null ? p.resolve(r!) : p.reject(e)));
  }

  /**
   * A slot after the last request the replica set stopped at: executed nowhere (every replica
   * stops at the same slot), so its proposers get a certain StoppedError. Slots still count as
   * applied, so that snapshots and log compaction go on.
   */
  private skipAfterStop(slot: Slot, value: Value): void {
    if (value.kind === 'batch' && this.pending.size > 0) {
      for (const cmd of value.commands) this.pending.get(cmd.clientId, cmd.seq)?.reject(new StoppedError(this.stoppedAtSlot));
    }
    this.appliedSlot = slot;
    this.recentLog.applied(slot);
  }

  private handleReadsAndRoles(ready: Ready): void {
    this.statsRecorder.onReady(ready, this.id, this.core.isLeader, now());
    for (const r of ready.rejected) {
      for (const cmd of r.commands) {
        this.pending.get(cmd.clientId, cmd.seq)?.reject(r.reason === 'SHUTTING_DOWN' ? new StoppedError(this.stoppedAtSlot || null) : new NotLeaderError(r.leaderHint));
      }
    }
    for (const g of ready.reads) {
      const read = this.pendingReads.get(g.readId);
      if (!read) continue;
      read.slot = g.slot;
      this.waitingReads.push(g.readId);
    }
    for (const refusal of ready.readRefusals) {
      const read = this.pendingReads.get(refusal.readId);
      if (!read) continue;
      this.endRead(read);
      read.reject(new NotLeaderError(refusal.leaderHint));
    }
    for (const rc of ready.roleChanges) {
      const wasPrimary = this.primary;
      // RSL: "became primary" only once the recovery round is chosen; "secondary" when that ends.
      if (rc.role === 'leader' && rc.recovered) {
        this.primary = true;
        this.proposeSessionLimitsIfChanged();
        this.bindIncarnations();
        this.announceEndpoints();
        this.sm.onRoleChange?.('primary', this.id);
      } else if (rc.role !== 'leader' && wasPrimary) {
        this.primary = false;
        this.sm.onRoleChange?.('secondary', rc.leader);
      }
    }
    if (ready.snapshotNeeded) this.requestSnapshot(ready.snapshotNeeded.from, ready.snapshotNeeded.slot);
  }

  /** A read is answered (or failed): it leaves the table and the deadline wheel. */
  private endRead(read: PendingRead): void {
    this.pendingReads.delete(read.readId);
    this.readDeadlines.remove(read);
  }

  private serveWaitingReads(): void {
    if (this.waitingReads.length === 0) return;
    const still: number[] = [];
    for (const id of this.waitingReads) {
      const read = this.pendingReads.get(id);
      if (!read) continue;
      if (read.slot !== null && this.appliedSlot >= read.slot) {
        this.endRead(read);
        try {
          read.resolve(read.query === null ? this.appliedSlot : { result: this.sm.query(read.query), appliedSlot: this.appliedSlot });
        } catch (e) {
          read.reject(e as Error);
        }
      } else still.push(id);
    }
    this.waitingReads = still;
  }

  // ================================================================ snapshots and compaction

  private maybeSnapshot(): void {
    const interval = this.options.snapshotIntervalSlots ?? 10_000;
    const intervalBytes = snapshotIntervalBytesFor(this.options, this.snapshotBytes);
    // Replicas apply the same stream, so equal thresholds would make every one of them serialise
    // its state at the same slot: the leader and its whole quorum paused at once. The first
    // snapshot after a start comes early by a share that depends on the id (0, 1/4, 1/2, 3/4 of the
    // interval), and later ones keep that spacing.
    const share = this.stats.snapshotsTaken + this.stats.snapshotsAdopted === 0 ? 1 - ((this.id - 1) % 4) / 4 : 1;
    // A leader's snapshot pauses the whole cluster's writes: it takes them less often (see
    // leaderSnapshotIntervalFactor), leaving them to its followers.
    const factor = this.core.isLeader ? this.leaderSnapshotFactor : 1;
    const due =
      this.appliedSlot - this.snapshotSlot >= Math.ceil(interval * share * factor) ||
      (this.appliedPayloadBytes - this.snapshotPayloadBytes >= intervalBytes * share * factor && this.appliedSlot > this.snapshotSlot);
    // Not while a digest holds the application's copy: a second capture would copy into fresh memory.
    if (!this.snapshotsAllowed || this.snapshotting || this.digesting || !due) return;
    if (this.core.isLeader && this.leaderAdoptsSnapshots) {
      if (this.fetch?.adopt) return; // on its way (the tick drops it after SNAPSHOT_FETCH_TIMEOUT_MS)
      if (this.adoptionAskedAt !== this.snapshotSlot) {
        const peer = this.adoptionPeer();
        if (peer !== null && !this.fetch) {
          this.adoptionAskedAt = this.snapshotSlot;
          this.requestSnapshot(peer, this.snapshotSlot + 1, true);
          return;
        }
      }
      // Asked already since this replica's last snapshot, and none came (or none usable): its own.
      if (this.adoptionAskedAt !== null) this.log('info', 'no follower snapshot to adopt came in time: taking one of this leader\'s own');
      this.adoptionAskedAt = null;
    }
    void this.takeSnapshot().catch((e) => this.log('warn', 'snapshot failed; will retry', { error: String(e) }));
  }

  /** The next member in turn to ask for a snapshot to adopt, or null if this replica is alone. */
  private adoptionPeer(): ReplicaId | null {
    const peers = this.core.status.members.filter((m) => m !== this.id && this.addresses.has(m));
    if (peers.length === 0) return null;
    return peers[this.adoptionTurn++ % peers.length]!;
  }

  /**
   * A follower's snapshot (fetched by maybeSnapshot while leading) taken as this replica's own,
   * as RSL's primary copies a secondary's checkpoint instead of making one (leaderAdoptsSnapshots,
   * off by default: with the three replicas on one 2-core machine the follower's shipping and the
   * transfer cost the cluster more than the leader's own capture, docs/performance.md, session 13).
   * A follower's snapshot is the same bytes as the leader's own would be, since every
   * replica applies the same chosen commands to a deterministic machine (a lagging replica's
   * installSnapshot relies on that too). Nothing is restored: this replica's state is already at
   * or past `slot`. The snapshot is made durable here, then the metadata names it, then the log
   * below it (less the margin) goes, as after a snapshot of its own. Runs as snapshotInFlight, so
   * it never overlaps one of this replica's own.
   */
  private adoptSnapshot(slot: Slot, chunks: Uint8Array[], bytes: number): void {
    if (slot <= this.snapshotSlot || slot > this.appliedSlot || !this.snapshotsAllowed || this.snapshotting || this.snapshotInFlight || this.closed) return;
    const adopted = (async (): Promise<Slot> => {
      this.snapshotting = true;
      try {
        // Its head must read back (a restart restores from it); the chunks go to disk as they came
        // (joining ~10 MB into one buffer stopped the event loop for up to 6 ms: fresh pages).
        const body = decodeSnapshotBody(snapshotBodyHeadOf(chunks));
        if (body.slot !== slot) throw new Error(`snapshot body says slot ${body.slot}, frames said ${slot}`);
        // The bytes interval counts from now, not from `slot` (the payload applied up to a past slot
        // is not kept): an adopted snapshot up to a follower's interval old delays the next by that much.
        const payloadBytes = this.appliedPayloadBytes;
        await this.snapshots.save(slot, new Uint8Array(0), chunks);
        await this.snapshotSaved(slot, payloadBytes, bytes);
        this.stats.snapshotsAdopted++;
        return slot;
      } finally {
        this.snapshotting = false;
      }
    })();
    this.snapshotInFlight = adopted.finally(() => {
      this.snapshotInFlight = null;
    });
    this.snapshotInFlight.catch((e) => this.log('warn', 'adopting a snapshot failed', { error: String(e) }));
  }

  /** Release the log below `slot` (a durable snapshot covers it). */
  private compactBelow(slot: Slot): void {
    if (slot <= this.compactedSlot || slot > this.appliedSlot) return;
    this.core.compact(slot);
    this.recentLog.releaseThrough(slot);
    this.compactedSlot = slot;
    // The head moves to the first entry record of a slot above `slot`; records before it are
    // for compacted slots (or promises, whose ballot floor the log keeps).
    let i = 0;
    while (i < this.entryLsns.length && this.entryLsns[i]![1] <= slot) i++;
    const head = i < this.entryLsns.length ? this.entryLsns[i]![0] : this.logStore.headTailCapacity().tail;
    this.entryLsns = this.entryLsns.slice(i);
    const { head: current, tail } = this.logStore.headTailCapacity();
    // Not while a peer is answered from the log (its read must not meet a recycled segment): the
    // next snapshot moves the head past these records too.
    if (head > current && head <= tail && this.logCatchups.size === 0) {
      // Releasing segments can fail (EIO on unlink): the log keeps them, nothing is lost; say so.
      this.logStore.advanceHead(head).catch((e: unknown) => this.log('warn', 'could not release log segments below a snapshot', { error: String(e) }));
    }
  }

  /**
   * Entries leave the core once applied (their objects die young); the recent log keeps their
   * records up to logMemoryBytesMax for lagging peers (log-window.ts), the log on disk until a
   * snapshot covers them (answerCatchupFromLog() serves both).
   */
  private releaseAppliedLog(): void {
    const applied = Math.min(this.appliedSlot, this.core.appliedSlot);
    if (applied >= this.core.logStartSlot) this.core.compact(applied);
    this.recentLog.release(this.options.logMemoryBytesMax ?? DEFAULT_LOG_MEMORY_BYTES_MAX);
  }

  /**
   * A peer asks for chosen entries from `fromSlot`, below what the core holds (applied slots):
   * from the recent log in memory, else read back from the log on disk (log-catchup.ts) while it
   * has them, else point the peer at the latest snapshot (it covers every slot the disk log
   * released). The core's own answer would be "take a snapshot of logStart - 1", which, with
   * entries leaving the core at apply, would make this replica write a snapshot for every
   * lagging peer.
   */
  private answerCatchupFromLog(to: ReplicaId, fromSlot: Slot): void {
    if (!this.core.mayFetchLog(to) || this.logCatchups.has(to)) return; // not a peer; or asked again before the answer
    const lastSlot = this.core.logStartSlot - 1;
    const entriesMax = this.core.options.catchupEntriesMax;
    const reply = (entries: Entry[], snapshotSlot: Slot) =>
      this.transport.send(to, encodeMessage({ type: 'catchupReply', from: this.id, to, entries, commitSlot: this.core.chosenSlot, snapshotSlot }));
    const held = this.recentLog.entries(fromSlot, lastSlot, entriesMax, LOG_CATCHUP_BYTES_MAX);
    if (held.length > 0) return reply(held, 0);
    if (fromSlot <= this.compactedSlot) return reply([], this.snapshotSlot);
    this.logCatchups.add(to);
    this.stats.catchupsFromDisk++;
    readChosenEntries(this.logStore, this.entryLsns, fromSlot, lastSlot, { entriesMax, bytesMax: LOG_CATCHUP_BYTES_MAX })
      .then((entries) => {
        // Nothing readable yet (its last record is not durable): the peer asks again.
        if (entries.length > 0 && !this.closed && !this.failed) reply(entries, 0);
      })
      .catch((e: unknown) => this.log('warn', `could not read slots from ${fromSlot} back from the log for replica ${to}`, { error: String(e) }))
      .finally(() => this.logCatchups.delete(to));
  }

  private requestSnapshot(from: ReplicaId, slot: Slot, adopt = false): void {
    if (this.fetch) return;
    this.fetch = { from, slot, adopt, chunks: [], received: 0, total: -1, progressMs: now() };
    const frame = new Uint8Array(9);
    frame[0] = FRAME_SNAPSHOT_REQUEST;
    new DataView(frame.buffer).setFloat64(1, slot, true);
    this.transport.send(from, frame);
    this.log('info', `requesting a snapshot of at least slot ${slot} from replica ${from}${adopt ? ' (to adopt as this leader\'s own)' : ''}`);
  }

  private async shipSnapshot(to: ReplicaId, frame: Uint8Array): Promise<void> {
    if (frame.length !== 9) return;
    const wanted = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getFloat64(1, true);
    if (!Number.isSafeInteger(wanted) || wanted < 0) {
      this.log('warn', `dropped a snapshot request from replica ${to} for slot ${wanted}`);
      return;
    }
    // One shipment per peer: each holds a file, a pin and chunk buffers until the peer has read it
    // all, so repeated requests (a peer that retried, or one that asks and never reads) must not
    // pile them up. A request while one runs is dropped; the peer asks again when its fetch ends.
    if (this.shipping.has(to)) return;
    this.shipping.add(to);
    try {
      await this.shipSnapshotNow(to, wanted);
    } finally {
      this.shipping.delete(to);
    }
  }

  private async shipSnapshotNow(to: ReplicaId, wanted: Slot): Promise<void> {
    let latest = await this.snapshots.latest();
    if (!latest || latest.slot < wanted) {
      // A snapshot taken now covers only what is applied: asked past it, there is nothing to send.
      if (wanted > this.appliedSlot) return; // the peer asks again on its next catch-up attempt
      // Nothing recent enough on disk (the log was compacted by a snapshot since removed): take
      // one now and ship that, rather than leave the peer waiting.
      await this.takeSnapshot();
      latest = await this.snapshots.latest();
      if (!latest || latest.slot < wanted) return;
    }
    const release = this.snapshots.pin(latest.slot);
    try {
      const reader = this.snapshots.read(latest.slot, SNAPSHOT_CHUNK_BYTES);
      let offset = 0;
      const total = latest.bodyBytes;
      for await (const chunk of reader.body) {
        const last = offset + chunk.length >= total;
        const out = new Uint8Array(26 + chunk.length);
        const view = new DataView(out.buffer);
        out[0] = FRAME_SNAPSHOT_CHUNK;
        view.setFloat64(1, latest.slot, true);
        view.setFloat64(9, offset, true);
        view.setFloat64(17, total, true);
        out[25] = last ? 1 : 0;
        out.set(chunk, 26);
        this.transport.send(to, out);
        offset += chunk.length;
        // Flow control: let the socket drain before queuing more than a few chunks. A peer that
        // reads nothing for SNAPSHOT_SHIP_STALL_MS is given up on (it asks again if it still needs it).
        let queued = this.transport.stats().get(to)?.queuedBytes ?? 0;
        let movedMs = now();
        while (queued > 4 * SNAPSHOT_CHUNK_BYTES && !this.closed) {
          await new Promise((r) => setTimeout(r, 5));
          const q = this.transport.stats().get(to)?.queuedBytes ?? 0;
          if (q < queued) movedMs = now();
          else if (now() - movedMs > SNAPSHOT_SHIP_STALL_MS) {
            this.log('warn', `stopped shipping the snapshot of slot ${latest.slot} to replica ${to}: it read nothing for ${SNAPSHOT_SHIP_STALL_MS} ms`);
            return;
          }
          queued = q;
        }
      }
      await reader.finish();
    } finally {
      release();
    }
  }

  private onSnapshotChunk(from: ReplicaId, frame: Uint8Array): void {
    const f = this.fetch;
    if (!f || f.from !== from || frame.length < 26) return;
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const slot = view.getFloat64(1, true);
    const offset = view.getFloat64(9, true);
    const total = view.getFloat64(17, true);
    const last = frame[25] === 1;
    if (offset === 0) {
      if (!Number.isSafeInteger(slot) || slot < 1 || !Number.isSafeInteger(total) || total < 0) {
        this.log('warn', `dropped a snapshot chunk from ${from} naming slot ${slot} and ${total} bytes`);
        this.fetch = null;
        return;
      }
      if (total > (this.options.snapshotBytesMax ?? 1 << 30)) {
        this.log('warn', `refused a snapshot of ${total} bytes from ${from} (snapshotBytesMax)`);
        this.fetch = null;
        return;
      }
      f.slot = slot;
      f.total = total;
      f.chunks = [];
      f.received = 0;
    }
    if (slot !== f.slot || offset !== f.received) {
      this.fetch = null; // a gap (dropped under backpressure): start over on the next hint
      return;
    }
    if (f.received + frame.length - 26 > f.total) {
      // More bytes than the first chunk announced: a confused or hostile sender. Holding them would
      // let it grow this replica's memory past snapshotBytesMax.
      this.log('warn', `dropped a snapshot from ${from} that ran past the ${f.total} bytes it announced`);
      this.fetch = null;
      return;
    }
    f.chunks.push(frame.slice(26));
    f.received += frame.length - 26;
    f.progressMs = now(); // a large snapshot over a slow link may take longer than the timeout, as long as it moves
    if (!last) return;
    this.fetch = null;
    if (f.received !== f.total) return;
    if (f.adopt) return this.adoptSnapshot(f.slot, f.chunks, f.received);
    // One install at a time (a later fetch's waits for it, then skips itself if it is not newer).
    const bytes = Buffer.concat(f.chunks);
    const installing = (this.installing ?? Promise.resolve())
      .then(() => this.installSnapshot(f.slot, bytes))
      .catch((e) => this.log('warn', 'installing a snapshot failed', { error: String(e) }))
      .finally(() => {
        if (this.installing === installing) this.installing = null;
      });
    this.installing = installing;
  }

  private async installSnapshot(slot: Slot, bytes: Uint8Array): Promise<void> {
    if (slot <= this.appliedSlot || this.closed) return;
    const body = decodeSnapshotBody(bytes);
    if (body.slot !== slot) throw new Error(`snapshot body says slot ${body.slot}, frames said ${slot}`);
    await this.snapshots.save(slot, new Uint8Array(0), [bytes]); // durable before we rely on it
    if (slot <= this.appliedSlot || this.closed) return;
    this.sm.restore(body.app);
    this.adoptSessions(body.sessions);
    if (body.stoppedAt) this.stoppedAtSlot = body.stoppedAt;
    for (const [peer, host, port] of body.addresses) this.learnAddress(peer, { host, port });
    this.adoptEndpointTuples(body.endpoints ?? []);
    for (const [peer, incarnation] of body.incarnations) this.bindIncarnation(peer, incarnation);
    this.ownSessions = new Set(body.ownSessions ?? []);
    this.appliedSlot = slot;
    this.recentLog.reset(slot);
    this.snapshotSlot = slot;
    this.compactedSlot = slot;
    this.meta = { ...this.meta, snapshotSlot: slot };
    try {
      await this.writeMeta();
    } catch (e) {
      // The machine already holds the snapshot's state and the core does not know it: going on
      // would leave the core behind for good (its peers compacted what it lacks, and a newer
      // fetch of this slot is skipped). A metadata write that fails is a storage failure anyway.
      this.fail(e);
      throw e;
    }
    this.core.installSnapshot(slot, body.configs, now());
    this.refreshPeers();
    this.stats.snapshotsInstalled++;
    this.log('info', `installed a snapshot of slot ${slot}`);
    this.scheduleDrain();
  }
}

/**
 * A remaining member counts toward the live quorum a removal needs when the leader knows it holds
 * the log to within this many slots of the commit point (SAFETY.md; not addMember's caughtUpSlots:
 * a safety bar, not the operator's).
 */
const REMOVAL_CAUGHT_UP_SLOTS = 64;

/** How long a primary waits before announcing its endpoints again after a try failed (an overloaded queue, a lost round). */
const ENDPOINTS_RETRY_MS = 1_000;

/** A bind-anywhere host ("every interface" when listening): where this replica listens, not where others can reach it. */
function isUnspecified(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}


/** Commands of this client id are the runtime's own (the address book, session registration), never the application's. */
const INTERNAL_CLIENT = 0;
const EMPTY = new Uint8Array(0);

function sessionLimitsOf(options: ReplicaOptions): SessionLimits {
  return {
    sessionsMax: options.sessionsMax ?? DEFAULT_SESSION_LIMITS.sessionsMax,
    sessionExpiryMs: options.sessionExpiryMs ?? DEFAULT_SESSION_LIMITS.sessionExpiryMs,
  };
}

export function metaConfig(clusterId: string, replicaId: ReplicaId, initialMembers?: readonly ReplicaId[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(initialMembers ? { clusterId, replicaId, initialMembers } : { clusterId, replicaId }));
}

function missingMetaError(dataDir: string, what: string): StorageError {
  const file = join(dataDir, META_FILE);
  const error = new StorageError(
    'SYNOD_STORAGE_CORRUPT',
    `data dir ${dataDir} holds ${what} but no ${META_FILE} file: its promises and incarnation are lost, so it must not start as a new replica. ` +
      `Restore ${file} if it was copied without it; otherwise move the directory aside and recover the replica from its peers as a lost disk.`,
    file,
    0,
  );
  error.reason = `${what} without a ${META_FILE} file`;
  return error;
}

function parseMetaConfig(bytes: Uint8Array): { clusterId: string; replicaId: number; initialMembers?: number[] } {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as { clusterId: string; replicaId: number; initialMembers?: unknown };
    const members = v.initialMembers;
    const membersOk = members === undefined || (Array.isArray(members) && members.length > 0 && members.every((m) => Number.isSafeInteger(m) && m >= 1));
    if (typeof v.clusterId === 'string' && typeof v.replicaId === 'number' && membersOk) return v as { clusterId: string; replicaId: number; initialMembers?: number[] };
  } catch {
    // fall through
  }
  throw new DataDirError('the data directory metadata names no cluster (not a Synod data dir?)');
}
