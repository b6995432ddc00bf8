// Types shared by the protocol core, the codec, the simulator and the runtime.
// The core is pure: everything here is plain data, no I/O handles, no clocks.

/** Replica identifier, 1..MAX_REPLICA_ID. */
export type ReplicaId = number;
/** Log slot number, 1-based. 0 means "none" (e.g. an empty chosen prefix). */
export type Slot = number;
/**
 * A ballot (round, replicaId) packed into one safe integer: round * BALLOT_ID_SPAN + replicaId.
 * Packed so that comparison is plain `<` and messages carry one number. 0 is "no ballot".
 */
export type Ballot = number;

/** One client command. (clientId, seq) identifies it for at-most-once execution. */
export interface Command {
  clientId: number;
  seq: number;
  /** Every seq below this has been answered to the client: the session may forget them. */
  floor: number;
  payload: Uint8Array;
}

/** What a slot holds: a batch of client commands, a no-op (hole filler) or a configuration. */
export type Value =
  | { kind: 'noop' }
  | {
      kind: 'batch';
      commands: Command[];
      /**
       * The leader's time stamp (ms of its injected wall clock, made non-decreasing across leaders):
       * the only time a state machine sees (session expiry, TTLs), so applying stays deterministic.
       * Absent on values written before stamps existed (legacy: see SessionTable.check).
       */
      timeMs?: number;
      /**
       * A "last request" (RSL's isLastDecree): one command alone in its slot, after which the replica
       * set executes nothing and accepts no proposals. Absent on ordinary batches.
       */
      last?: true;
    }
  | { kind: 'config'; members: ReplicaId[] };

/** An accepted (or, with chosen=true, learned-as-chosen) log entry. */
export interface Entry {
  slot: Slot;
  ballot: Ballot;
  value: Value;
  /** True when this replica learned the value as chosen (catch-up) rather than voting for it. */
  chosen?: boolean;
}

/** A configuration and the first slot it governs. */
export interface ConfigEpoch {
  fromSlot: Slot;
  members: ReplicaId[];
}

// ---------------------------------------------------------------- messages

interface Envelope {
  from: ReplicaId;
  to: ReplicaId;
}

/** Phase 1a: "promise me ballot for every slot from fromSlot up". */
export interface PrepareMsg extends Envelope {
  type: 'prepare';
  ballot: Ballot;
  fromSlot: Slot;
  /** Set by a leadership transfer: the acceptor may promise inside a lease. */
  transfer: boolean;
  /**
   * The candidate application's opaque primary cookie (RSL's RSLPrimaryCookie), absent if none. An
   * acceptor whose application refuses it (PrimaryHooks.acceptPrimary) does not promise.
   */
  cookie?: Uint8Array;
}

/**
 * The application's say in elections (RSL's CanBecomePrimary / AcceptMessageFromReplica), injected
 * into the core as plain functions: the core stays free of I/O. Both are optional.
 */
export interface PrimaryHooks {
  /** Consulted before this replica campaigns: false vetoes; otherwise the cookie its prepares carry (null: none). */
  canBecomePrimary?: () => Uint8Array | null | false;
  /** Consulted before promising a new ballot to `candidate`: false refuses the promise. */
  acceptPrimary?: (candidate: ReplicaId, cookie: Uint8Array | null) => boolean;
}

/** Phase 1b: the promise, with everything accepted from fromSlot up. */
export interface PromiseMsg extends Envelope {
  type: 'promise';
  ballot: Ballot;
  fromSlot: Slot;
  /** Accepted entries (and known-chosen ones, flagged) at slots >= max(fromSlot, logStart). */
  entries: Entry[];
  /** The acceptor's chosen prefix: slots <= this are chosen. */
  chosenPrefix: Slot;
  /** The acceptor's first slot still in its log; slots below were compacted into a snapshot. */
  logStart: Slot;
}

/** Phase 2a, with the leader's commit point piggybacked. */
export interface AcceptMsg extends Envelope {
  type: 'accept';
  ballot: Ballot;
  slot: Slot;
  value: Value;
  commitSlot: Slot;
}

/** Phase 2b: sent only after (slot, ballot, value) is durable at the sender. */
export interface AcceptedMsg extends Envelope {
  type: 'accepted';
  ballot: Ballot;
  slot: Slot;
}

/** A refusal: the sender has promised a higher ballot. */
export interface RejectMsg extends Envelope {
  type: 'reject';
  ballot: Ballot;
  promised: Ballot;
}

/** Leader liveness, lease renewal and read-index rounds; carries the commit point. */
export interface HeartbeatMsg extends Envelope {
  type: 'heartbeat';
  ballot: Ballot;
  commitSlot: Slot;
  round: number;
}

export interface HeartbeatAckMsg extends Envelope {
  type: 'heartbeatAck';
  ballot: Ballot;
  round: number;
  /** The follower's chosen prefix, so the leader can see who lags. */
  chosenPrefix: Slot;
}

/** A lagging replica asks for chosen values from fromSlot. */
export interface CatchupRequestMsg extends Envelope {
  type: 'catchupRequest';
  fromSlot: Slot;
}

/** Chosen entries, or (entries empty and snapshotSlot > 0) "those slots are only in my snapshot". */
export interface CatchupReplyMsg extends Envelope {
  type: 'catchupReply';
  entries: Entry[];
  commitSlot: Slot;
  snapshotSlot: Slot;
}

/** Leadership transfer: the receiver campaigns at once, ignoring leases. */
export interface TimeoutNowMsg extends Envelope {
  type: 'timeoutNow';
  ballot: Ballot;
}

/**
 * A member's answer to a prepare from a replica that no configuration it holds names: "my latest
 * configuration, from `configFromSlot`, is `members`". The candidate believes it only if that is
 * newer than every configuration it knows (a lagging member's answer is stale, not news); then it
 * stops campaigning: it was removed while it could not hear of it.
 */
export interface NotMemberMsg extends Envelope {
  type: 'notMember';
  configFromSlot: Slot;
  members: ReplicaId[];
}

/** A member's notMember answer taken as news: this replica was removed while it could not hear of it. */
export interface RemovalNotice {
  /** The first slot of the configuration that leaves this replica out. */
  configFromSlot: Slot;
  members: ReplicaId[];
  /** The member that said so. */
  by: ReplicaId;
}

export type Message =
  | PrepareMsg
  | PromiseMsg
  | AcceptMsg
  | AcceptedMsg
  | RejectMsg
  | HeartbeatMsg
  | HeartbeatAckMsg
  | CatchupRequestMsg
  | CatchupReplyMsg
  | TimeoutNowMsg
  | NotMemberMsg;

export type MessageType = Message['type'];

// ---------------------------------------------------------------- outputs

/** What the runtime must make durable, in this order, before reporting `persisted(seq)`. */
export interface PersistOp {
  seq: number;
  /** A new promised ballot for the metadata, or null if unchanged. */
  promised: Ballot | null;
  /** Accepted or learned entries to append to the log. */
  entries: Entry[];
  /** A chosen prefix worth recording (lazy: losing it is safe), or null. */
  chosenPrefix: Slot | null;
}

export interface CommittedEntry {
  slot: Slot;
  value: Value;
}

export type RejectReason = 'NOT_LEADER' | 'NOT_READY' | 'SHUTTING_DOWN';

/** A proposal that was never put in a slot: the client may retry elsewhere (certain failure). */
export interface Rejection {
  commands: Command[];
  reason: RejectReason;
  leaderHint: ReplicaId | null;
}

export type ReadMode = 'linearizable' | 'lease';

/** A read may be answered once the state machine has applied `slot`. */
export interface ReadGrant {
  readId: number;
  slot: Slot;
}

export interface ReadRefusal {
  readId: number;
  reason: RejectReason;
  leaderHint: ReplicaId | null;
}

export type Role = 'follower' | 'candidate' | 'leader';

export interface RoleChange {
  role: Role;
  ballot: Ballot;
  leader: ReplicaId | null;
  /** On a leader's second notice: every recovered slot and one of its own are chosen; it serves now. */
  recovered?: boolean;
}

/** One batch of work for the runtime: persist, then send, then apply (etcd's Ready). */
export interface Ready {
  /** Must be made durable in order; then call persisted(seq) (the last op's seq covers all). */
  persist: PersistOp[];
  /** Safe to send now: every vote in here is already durable. */
  send: Message[];
  /** Chosen, in slot order, contiguous with the previous Ready's: apply them. */
  committed: CommittedEntry[];
  reads: ReadGrant[];
  readRefusals: ReadRefusal[];
  rejected: Rejection[];
  roleChanges: RoleChange[];
  /** This replica needs a snapshot of at least this slot from this peer (runtime hook). */
  snapshotNeeded: { from: ReplicaId; slot: Slot } | null;
}

/** State recovered from durable storage at start. */
export interface DurableState {
  promised: Ballot;
  entries: Entry[];
  chosenPrefix: Slot;
  /** The last slot covered by the installed snapshot (0 if none). */
  snapshotSlot: Slot;
  /** Configurations as of the snapshot (the log after it is replayed over them). */
  snapshotConfigs: ConfigEpoch[];
}
