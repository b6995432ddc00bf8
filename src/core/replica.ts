// The multi-Paxos replica: a pure, deterministic state machine.
//
// Design note
// -----------
// Inputs: receive(msg), tick(), propose(commands), read(), persisted(seq), and a few admin calls;
// each takes `now` (ms of an injected monotonic clock). Randomness (election jitter) comes from an
// injected PRNG. tick() and propose() also take the wall clock (`wallMs`, injected like `now`):
// the leader stamps every batch it creates with max(wall clock, highest stamp seen in any value),
// the time the state machines see (docs/protocol.md, "Sessions and stamped time"). After any inputs, takeReady() returns one batch of work, etcd-style:
//   persist  - must be made durable; then call persisted(seq) (in seq order)
//   send     - may be sent at once: a vote (promise 1b, accepted 2b) is only ever put here once the
//              state it votes for is durable (votes wait in `awaitingPersist` until then)
//   committed- chosen values in slot order: apply them
// Roles: follower (acceptor + learner), candidate (running Phase 1), leader (Phase 2 per slot).
// Every replica is an acceptor; the leader is also one, and counts its own vote only once its
// own accept is durable. Invariants are in checkInvariants(); handler contracts are inline.
// The protocol, message by message, is in docs/protocol.md.

import { ballotReplica, formatBallot, nextBallot } from './ballot.js';
import { CONTRACTS, ensures, invariant, requires } from './contracts.js';
import { Membership } from './membership.js';
import { SeqMap } from './seq-map.js';
import type { CoreOptions } from './options.js';
import { validateCoreOptions } from './options.js';
import type {
  AcceptMsg,
  AcceptedMsg,
  Ballot,
  CatchupReplyMsg,
  CatchupRequestMsg,
  Command,
  DurableState,
  Entry,
  HeartbeatAckMsg,
  HeartbeatMsg,
  Message,
  NotMemberMsg,
  PersistOp,
  PrepareMsg,
  PrimaryHooks,
  PromiseMsg,
  ReadMode,
  Ready,
  RejectMsg,
  RejectReason,
  RemovalNotice,
  ReplicaId,
  Role,
  Slot,
  TimeoutNowMsg,
  Value,
} from './types.js';
import { NOOP, sameValue } from './values.js';

/**
 * How long (in longest election timeouts) a replica removed from the configuration still gets a
 * leader's commit notices once its last configuration is pruned (Replica.departed): long enough for
 * several heartbeats and a catch-up, short enough that a removed replica the operator stopped is
 * not dialed for long.
 */
const DEPARTED_NOTICE_TIMEOUTS = 20;

/** A log slot as this replica holds it. `seq` is the persist op that last wrote it. */
interface Cell {
  entry: Entry;
  seq: number;
}

interface AwaitingPersist {
  seq: number;
  messages: Message[];
  /** Slots this replica accepted as leader at `ballot`: its own votes, counted once durable. */
  selfVotes: Slot[];
  ballot: Ballot;
  /** This candidate's own promise, counted once durable. */
  selfPromise: boolean;
}

interface InflightSlot {
  value: Value;
  votes: Set<ReplicaId>;
  sentAtMs: number;
}

interface PendingRead {
  readId: number;
  /** The commit point noted when the read arrived (or when the leader became ready). */
  slot: Slot;
  /** Leadership is confirmed by a quorum ack of a heartbeat round >= this. */
  round: number;
}

interface CandidateState {
  ballot: Ballot;
  fromSlot: Slot;
  promises: Map<ReplicaId, PromiseMsg>;
  selfPromised: boolean;
  asked: Set<ReplicaId>;
  transfer: boolean;
}

interface LeaderState {
  ballot: Ballot;
  nextSlot: Slot;
  /** Proposed, not yet known chosen. */
  /** A SeqMap, as `cells`: one insert and one delete per slot. */
  inflight: SeqMap<InflightSlot>;
  /** The last slot proposed on election: once the prefix reaches it, the leader may serve reads. */
  readyAtSlot: Slot;
  ready: boolean;
  queue: Command[];
  queueBytes: number;
  queueSinceMs: number;
  pendingConfig: ReplicaId[] | null;
  heartbeatRound: number;
  heartbeatDueMs: number;
  roundSentAtMs: Map<number, number>;
  roundAcks: Map<number, Set<ReplicaId>>;
  lastQuorumRoundSentAtMs: number;
  leaseUntilMs: number;
  pendingReads: PendingRead[];
  readRoundNeeded: boolean;
  /** The highest heartbeat round a quorum has acknowledged (a read round is sent only when none is outstanding). */
  confirmedRound: number;
  /** Set while handing leadership to another replica: no new proposals, no lease reads. */
  transferring: boolean;
  /** When a transfer that has not happened lapses: the leader steps down (the target may be down or veto). */
  transferUntilMs: number;
  /** Values recovered in Phase 1, waiting for the window to reach their slots. */
  recovered: Map<Slot, Value>;
  /** A configuration became known that our Phase 1 did not cover: run it again. */
  rerunPhase1: boolean;
  /** Each peer's chosen prefix, from its heartbeat acks (who lags; is a learner caught up?). */
  progress: Map<ReplicaId, Slot>;
}

export type PersistSink = never;

export class Replica {
  readonly id: ReplicaId;
  readonly options: CoreOptions;
  private readonly random: () => number;

  // --- acceptor state (volatile mirror; durable once its persist op completes)
  private promised: Ballot = 0;
  // Slot -> cell. A SeqMap, not a Map: a Map with one insert and one delete per slot rehashes
  // every few dozen slots, and each table it leaves behind in the old generation keeps the cells
  // it held, their values and the socket reads those values view, alive until the next full
  // collection (docs/performance.md, "Session 16").
  private readonly cells = new SeqMap<Cell>();
  private logStart: Slot = 1;
  private maxSlotSeen: Slot = 0;

  // --- learner state
  private chosenPrefix: Slot = 0;
  private appliedPrefix: Slot = 0;
  /** The highest commit point any leader has told us of. */
  private knownCommit: Slot = 0;
  private knownCommitFrom: ReplicaId | null = null;
  private catchupRetryAtMs = 0;
  private chosenPrefixPersisted: Slot = 0;
  private membership: Membership;
  /** Replicas being added: they get heartbeats and may fetch the log, but do not vote. */
  private learners = new Set<ReplicaId>();
  /**
   * Replicas a configuration change removed, whose last configuration was pruned here, and until
   * when (ms) they still get this replica's commit notices while it leads (and may fetch chosen
   * entries from it): the runtime compacts the core as soon as slots are applied, which prunes a
   * superseded configuration the moment the change governs, before the removed replica has heard
   * that the slots it voted on were chosen. Without a notice it stays below its removal, takes
   * itself for a member and campaigns for good.
   */
  private departed = new Map<ReplicaId, number>();
  /** Bumped whenever `departed` gains or loses a replica: the runtime's cue to update its transport peers. */
  private departedChanges = 0;
  /**
   * A member told us (notMember) that its latest configuration, newer than any we know, leaves us
   * out: we were removed while we could not hear of it (down through the removal and the window
   * above). We no longer campaign while no configuration we know is as new (removalNotice()).
   */
  private removal: RemovalNotice | null = null;

  // --- role
  private role: Role = 'follower';
  private leaderId: ReplicaId | null = null;
  private maxBallotSeen: Ballot = 0;
  private lastLeaderContactMs = -Infinity;
  private promiseBlockedUntilMs: number;
  private electionDeadlineMs: number;
  private candidate: CandidateState | null = null;
  private leader: LeaderState | null = null;
  private nowMs: number;
  /** The latest wall clock reading given (tick, propose): what the leader stamps batches with. */
  private wallMs = 0;
  /** The highest stamp seen in any value (own, accepted, learned, recovered, or from a snapshot). */
  private stampSeenMs = 0;

  // --- persistence
  private nextPersistSeq = 1;
  private durableSeq = 0;
  private pending: PersistOp | null = null;
  private readonly awaiting: AwaitingPersist[] = [];

  // --- exclusive and last requests (RSL's ReplicateRequestExclusiveVote and isLastDecree)
  /** Queued commands (clientId -> seq -> mode) the leader proposes alone in their slot. */
  private readonly exclusiveMarks = new Map<number, Map<number, 'exclusive' | 'last'>>();
  /** The ballot at which this replica, leading, proposed a last request: it proposes nothing new after it. */
  private lastProposedBallot: Ballot = 0;
  /** The slot of the first chosen last request (0: none): the replica set executes nothing after it. */
  private stoppedAtSlot: Slot = 0;

  // --- the application's say in elections (RSL's CanBecomePrimary, primary cookie)
  private primaryHooks: PrimaryHooks = {};
  /** The cookie this replica's prepares carry (from the last canBecomePrimary consulted). */
  private primaryCookie: Uint8Array | null = null;

  // --- outputs, drained by takeReady()
  private out: Ready = emptyReady();

  constructor(options: CoreOptions, random: () => number, nowMs: number, durable?: DurableState) {
    this.options = validateCoreOptions(options);
    this.id = options.id;
    this.random = random;
    this.nowMs = nowMs;
    const snapshotSlot = durable?.snapshotSlot ?? 0;
    this.membership = new Membership(
      durable && durable.snapshotConfigs.length > 0 ? durable.snapshotConfigs : [{ fromSlot: 1, members: options.members }],
    );
    // A restarted replica may have promised things it no longer remembers (unsynced writes):
    // it waits one lease before promising anything, so it cannot undercut a live leader's lease.
    this.promiseBlockedUntilMs = durable ? nowMs + options.leaseMs : nowMs;
    if (durable) this.recover(durable, snapshotSlot);
    this.electionDeadlineMs = nowMs + this.electionTimeout();
    if (CONTRACTS) this.checkInvariants();
  }

  private recover(durable: DurableState, snapshotSlot: Slot): void {
    // SAFETY.md: promised = max(metadata's ballot, highest ballot found in the log).
    let promised = durable.promised;
    this.logStart = snapshotSlot + 1;
    this.chosenPrefix = snapshotSlot;
    this.appliedPrefix = snapshotSlot;
    for (const entry of durable.entries) {
      if (!entry.chosen && entry.ballot > promised) promised = entry.ballot;
      if (entry.slot <= snapshotSlot) continue;
      const prior = this.cells.get(entry.slot);
      // A learned-chosen value is final; a later accept of the same slot can only carry it again.
      const chosen = entry.chosen === true || (prior?.entry.chosen === true);
      this.cells.set(entry.slot, { entry: { ...entry, chosen }, seq: 0 });
      if (entry.slot > this.maxSlotSeen) this.maxSlotSeen = entry.slot;
      this.noteStamp(entry.value);
    }
    this.promised = promised;
    this.maxBallotSeen = promised;
    const recordedPrefix = Math.max(snapshotSlot, durable.chosenPrefix);
    for (let s = snapshotSlot + 1; s <= recordedPrefix; s++) {
      const cell = this.cells.get(s);
      if (!cell) break; // the marker outlived a record: keep the proven prefix only
      if (!cell.entry.chosen) cell.entry = { ...cell.entry, chosen: true };
    }
    this.advanceChosenPrefix();
    this.chosenPrefixPersisted = this.chosenPrefix;
  }

  // ================================================================ public inputs

  tick(nowMs: number, wallMs?: number): void {
    this.setNow(nowMs);
    if (wallMs !== undefined && wallMs > this.wallMs) this.wallMs = Math.floor(wallMs); // whole ms: stamps are varints
    this.forgetDeparted();
    if (this.role === 'leader') this.leaderTick();
    else this.followerTick();
    this.finishStep();
  }

  receive(msg: Message, nowMs: number): void {
    this.setNow(nowMs);
    if (CONTRACTS) requires(msg.to === this.id, `message for ${msg.to} delivered to ${this.id}`);
    const learnerMessage =
      (this.learners.has(msg.from) && (msg.type === 'catchupRequest' || msg.type === 'heartbeatAck')) ||
      (this.departed.has(msg.from) && msg.type === 'catchupRequest');
    // A replica that lags may not yet know the configuration its leader belongs to (it learns it
    // from the log): it may still learn from anyone — commit notices and chosen values — never vote.
    const learningMessage = msg.type === 'heartbeat' || msg.type === 'catchupReply';
    if (msg.from === this.id || (!this.membership.isKnown(msg.from) && !learnerMessage && !learningMessage)) {
      // Messages from non-members are ignored (SAFETY.md): they cannot vote or lead here.
      // Learners (joining replicas) may only fetch the log and acknowledge heartbeats.
      // A candidate we do not know is told what we know, so that a replica removed while it was
      // down stops campaigning (it checks that our configuration is newer than its own).
      const silent = this.options.plantedBug === 'member-ignores-non-member'; // PLANTED BUG (tests only)
      if (msg.type === 'prepare' && msg.from !== this.id && !silent) this.answerNonMember(msg.from);
      this.finishStep();
      return;
    }
    switch (msg.type) {
      case 'prepare':
        this.onPrepare(msg);
        break;
      case 'promise':
        this.onPromise(msg);
        break;
      case 'accept':
        this.onAccept(msg);
        break;
      case 'accepted':
        this.onAccepted(msg);
        break;
      case 'reject':
        this.onReject(msg);
        break;
      case 'heartbeat':
        this.onHeartbeat(msg);
        break;
      case 'heartbeatAck':
        this.onHeartbeatAck(msg);
        break;
      case 'catchupRequest':
        this.onCatchupRequest(msg);
        break;
      case 'catchupReply':
        this.onCatchupReply(msg);
        break;
      case 'timeoutNow':
        this.onTimeoutNow(msg);
        break;
      case 'notMember':
        this.onNotMember(msg);
        break;
    }
    this.finishStep();
  }

  /**
   * Client commands. Rejected at once (never proposed) unless this replica leads. The array
   * becomes the core's (its queue, a slot's batch, a rejection): the caller must not change it.
   */
  propose(commands: Command[], nowMs: number, wallMs?: number): void {
    this.setNow(nowMs);
    if (wallMs !== undefined && wallMs > this.wallMs) this.wallMs = Math.floor(wallMs); // whole ms: stamps are varints
    const leader = this.leader;
    if (!leader || leader.transferring) {
      this.out.rejected.push({ commands, reason: 'NOT_LEADER', leaderHint: this.leaderHint() });
      if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(commands);
    } else if (this.stoppedAtSlot > 0 || leader.ballot === this.lastProposedBallot) {
      this.out.rejected.push({ commands, reason: 'SHUTTING_DOWN', leaderHint: null });
      if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(commands);
    } else {
      if (leader.queue.length === 0) {
        leader.queueSinceMs = nowMs;
        // Taken as the queue, not copied into it: a turn's proposals then usually become one
        // slot's batch without a copy (below), and no queue array grows by push per command.
        leader.queue = commands;
        for (const c of commands) leader.queueBytes += c.payload.length;
      } else {
        for (const c of commands) {
          leader.queue.push(c);
          leader.queueBytes += c.payload.length;
        }
      }
    }
    this.finishStep();
  }

  /**
   * Propose command (clientId, seq), when it reaches the queue, alone in its slot (RSL's exclusive
   * vote). With `last` the slot is a "last request": once it is chosen every replica executes
   * nothing after it, and this leader proposes nothing after it (later commands are rejected,
   * never proposed). Call before propose() hands the command over.
   */
  markExclusive(clientId: number, seq: number, last: boolean): void {
    let seqs = this.exclusiveMarks.get(clientId);
    if (seqs === undefined) {
      seqs = new Map();
      this.exclusiveMarks.set(clientId, seqs);
    }
    seqs.set(seq, last ? 'last' : 'exclusive');
  }

  private exclusiveMode(cmd: Command): 'exclusive' | 'last' | undefined {
    return this.exclusiveMarks.get(cmd.clientId)?.get(cmd.seq);
  }

  /** Forgets the exclusive marks of commands the driver took back before handing them over. */
  unmarkExclusive(commands: Command[]): void {
    if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(commands);
  }

  private dropExclusiveMarks(commands: Command[]): void {
    for (const c of commands) {
      const seqs = this.exclusiveMarks.get(c.clientId);
      if (seqs?.delete(c.seq) && seqs.size === 0) this.exclusiveMarks.delete(c.clientId);
    }
  }

  /** Commands this leader holds for room in the pipeline window: in no slot yet (0 unless leading). */
  get queuedCommands(): number {
    return this.leader?.queue.length ?? 0;
  }

  /** Payload bytes of queuedCommands. */
  get queuedBytes(): number {
    return this.leader?.queueBytes ?? 0;
  }

  /**
   * Takes back the queued commands `gone` names (the driver's callers stopped waiting for them)
   * and returns them. They are in no slot, so they were certainly never proposed, as those a step
   * down rejects; a command already in a slot is never touched. Without this a command whose
   * caller timed out stayed queued, beside the caller's retry, for as long as the window was full.
   * `atMost`: how many the driver can be looking for; the scan stops once it has them all. The
   * queue is in arrival order and deadlines follow arrival, so under sustained overload those
   * expiring each tick are at its front: without the stop every tick scanned the whole queue
   * (up to proposalQueueCommandsMax, 131,072 commands: ~18 ms of a 10 ms tick).
   */
  withdrawQueued(gone: (command: Command) => boolean, atMost = Infinity): Command[] {
    const leader = this.leader;
    if (!leader || leader.queue.length === 0 || atMost <= 0) return [];
    const queue = leader.queue;
    const queueLength = queue.length;
    const kept: Command[] = [];
    const withdrawn: Command[] = [];
    let i = 0;
    for (; i < queue.length && withdrawn.length < atMost; i++) {
      const c = queue[i]!;
      (gone(c) ? withdrawn : kept).push(c);
    }
    if (withdrawn.length === 0) return withdrawn;
    if (i === queue.length) leader.queue = kept;
    else {
      // The rest stays where it is: the prefix's kept move up to just before it and the front is
      // cut (V8 trims an array's front in place; a copy of 131,072 references cost ~3 ms).
      for (let j = 0; j < kept.length; j++) queue[withdrawn.length + j] = kept[j]!;
      queue.splice(0, withdrawn.length);
    }
    for (const c of withdrawn) leader.queueBytes -= c.payload.length;
    if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(withdrawn);
    if (CONTRACTS) ensures(leader.queueBytes >= 0, 'queued bytes went negative');
    if (CONTRACTS) ensures(leader.queue.length + withdrawn.length === queueLength, 'a withdrawal lost or duplicated a queued command');
    return withdrawn;
  }

  /** A leader that proposed a last request (or saw one chosen) rejects what is still queued. */
  private rejectQueueStopping(leader: LeaderState): void {
    if (leader.queue.length === 0) return;
    this.out.rejected.push({ commands: leader.queue, reason: 'SHUTTING_DOWN', leaderHint: null });
    if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(leader.queue);
    leader.queue = [];
    leader.queueBytes = 0;
  }

  /** A configuration change (one at a time). Returns an error string when refused. */
  proposeConfig(members: ReplicaId[], nowMs: number): string | null {
    this.setNow(nowMs);
    const leader = this.leader;
    let refusal: string | null = null;
    if (!leader || leader.transferring) refusal = 'not the leader';
    else if (leader.pendingConfig || this.configChangeInFlight()) refusal = 'a configuration change is already in progress';
    else if (members.length === 0 || new Set(members).size !== members.length) refusal = 'members must be distinct and non-empty';
    else leader.pendingConfig = [...members].sort((a, b) => a - b);
    this.finishStep();
    return refusal;
  }

  read(readId: number, mode: ReadMode, nowMs: number): void {
    this.setNow(nowMs);
    const leader = this.leader;
    if (!leader || leader.transferring) {
      this.out.readRefusals.push({ readId, reason: 'NOT_LEADER', leaderHint: this.leaderHint() });
    } else if (mode === 'lease' && leader.ready && nowMs < leader.leaseUntilMs) {
      this.out.reads.push({ readId, slot: this.chosenPrefix });
    } else {
      // Read-index: a quorum must ack a heartbeat round started after this read arrived.
      leader.pendingReads.push({ readId, slot: this.chosenPrefix, round: leader.heartbeatRound + 1 });
      leader.readRoundNeeded = true;
    }
    this.finishStep();
  }

  /** The runtime made persist op `seq` (and every earlier one) durable. */
  persisted(seq: number, nowMs: number): void {
    this.setNow(nowMs);
    if (CONTRACTS) requires(seq > this.durableSeq && seq < this.nextPersistSeq, `persisted(${seq}) out of order`);
    this.durableSeq = seq;
    while (this.awaiting.length > 0 && this.awaiting[0]!.seq <= seq) {
      const done = this.awaiting.shift()!;
      for (const m of done.messages) this.out.send.push(m);
      if (done.selfVotes.length > 0 && this.leader && this.leader.ballot === done.ballot) {
        for (const slot of done.selfVotes) this.countVote(slot, this.id);
      }
      if (done.selfPromise && this.candidate && this.candidate.ballot === done.ballot) {
        this.candidate.selfPromised = true;
        this.tryFinishPhase1();
      }
    }
    this.finishStep();
  }

  /** Change the election timeout at run time (RSL's ChangeElectionDelay); validated like the options. */
  setElectionTimeouts(minMs: number, maxMs: number): void {
    const next = validateCoreOptions({ ...this.options, electionTimeoutMinMs: minMs, electionTimeoutMaxMs: maxMs });
    (this.options as CoreOptions).electionTimeoutMinMs = next.electionTimeoutMinMs;
    (this.options as CoreOptions).electionTimeoutMaxMs = next.electionTimeoutMaxMs;
    if (this.role !== 'leader') this.electionDeadlineMs = this.nowMs + this.electionTimeout();
  }

  /** Install the application's election hooks (see PrimaryHooks); {} removes them. */
  setPrimaryHooks(hooks: PrimaryHooks): void {
    this.primaryHooks = hooks;
  }

  /** Asks the application whether we may campaign now; remembers the cookie to send. True: vetoed. */
  private primaryVetoed(): boolean {
    const ask = this.primaryHooks.canBecomePrimary;
    if (ask === undefined) return false;
    const answer = ask();
    if (answer === false) return true;
    this.primaryCookie = answer;
    return false;
  }

  /** Replicas that follow the log without voting (joining members, before their promotion). */
  setLearners(ids: ReplicaId[]): void {
    this.learners = new Set(ids.filter((id) => id !== this.id));
  }

  /** The leader's view of each peer's chosen prefix (empty unless leading). */
  peerProgress(): Map<ReplicaId, Slot> {
    return new Map(this.leader?.progress ?? []);
  }

  /** Hand leadership to `target` (RSL's relinquish primary). */
  transferLeadership(target: ReplicaId, nowMs: number): string | null {
    this.setNow(nowMs);
    let refusal: string | null = null;
    const leader = this.leader;
    if (!leader) refusal = 'not the leader';
    else if (target === this.id) refusal = 'already the leader';
    else if (!this.membership.membersAt(this.chosenPrefix + 1).includes(target)) refusal = `replica ${target} is not a member`;
    else {
      leader.transferring = true;
      leader.transferUntilMs = this.nowMs + this.options.electionTimeoutMaxMs;
      leader.leaseUntilMs = 0; // give the lease up first: the target may be promised inside it
      this.send({ type: 'timeoutNow', from: this.id, to: target, ballot: leader.ballot });
    }
    this.finishStep();
    return refusal;
  }

  /**
   * Campaign now (RSL's attempt promotion). Refused (returns why) inside a lease we hold for the
   * current leader, or while a restart's lease wait runs: our own promise obeys the lease rule as
   * every other does. `transfer` (a leadership transfer, the leader gave its lease up) skips it.
   */
  campaign(nowMs: number, transfer = false): string | null {
    this.setNow(nowMs);
    let refusal: string | null = null;
    if (this.role === 'leader') refusal = 'already the leader';
    else if (!transfer && nowMs < this.promiseBlockedUntilMs) refusal = 'restarted within the last lease: waiting it out';
    else if (!transfer && nowMs < this.lastLeaderContactMs + this.options.leaseMs) refusal = `replica ${this.leaderId ?? '?'} holds a lease`;
    else if (!this.membership.membersAt(this.chosenPrefix + 1).includes(this.id)) refusal = 'not a voting member';
    else if (this.removalNotice() !== null) refusal = `removed from the configuration: ${describeRemoval(this.removal!)}`;
    else if (this.primaryVetoed()) refusal = 'the application vetoed becoming primary (canBecomePrimary)';
    else this.startPhase1(transfer);
    this.finishStep();
    return refusal;
  }

  /** The application saved a snapshot covering slots <= slot: the log below may be released. */
  compact(slot: Slot): void {
    if (CONTRACTS) requires(slot <= this.appliedPrefix, `compact(${slot}) beyond applied ${this.appliedPrefix}`);
    this.cells.deleteBelow(slot + 1);
    if (slot + 1 > this.logStart) this.logStart = slot + 1;
    for (const id of this.membership.pruneBelow(this.logStart)) {
      if (id === this.id) continue;
      if (!this.departed.has(id)) this.departedChanges++;
      this.departed.set(id, this.nowMs + DEPARTED_NOTICE_TIMEOUTS * this.options.electionTimeoutMaxMs);
    }
    if (CONTRACTS) this.checkInvariants();
  }

  /** The runtime restored the state machine from a snapshot of slots <= slot (taken elsewhere). */
  installSnapshot(slot: Slot, configs: DurableState['snapshotConfigs'], nowMs: number): void {
    this.setNow(nowMs);
    if (slot > this.appliedPrefix) {
      this.cells.deleteBelow(slot + 1);
      this.logStart = slot + 1;
      this.appliedPrefix = slot;
      const before = this.chosenPrefix;
      if (this.chosenPrefix < slot) this.chosenPrefix = slot;
      if (this.maxSlotSeen < slot) this.maxSlotSeen = slot;
      this.membership = new Membership(configs);
      this.advanceChosenPrefix();
      if (this.leader && this.chosenPrefix > before) this.leaderPrefixAdvanced();
    }
    this.finishStep();
  }

  takeReady(): Ready | null {
    const r = this.out;
    if (
      r.persist.length === 0 &&
      r.send.length === 0 &&
      r.committed.length === 0 &&
      r.reads.length === 0 &&
      r.readRefusals.length === 0 &&
      r.rejected.length === 0 &&
      r.roleChanges.length === 0 &&
      !r.snapshotNeeded
    ) {
      return null;
    }
    this.out = emptyReady();
    return r;
  }

  // ================================================================ introspection

  /** The cheap part of status, for per-request checks on hot paths. */
  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get knownLeader(): ReplicaId | null {
    return this.leaderHint();
  }

  /** The first slot held in memory (entries below it were compacted). */
  get logStartSlot(): Slot {
    return this.logStart;
  }

  get chosenSlot(): Slot {
    return this.chosenPrefix;
  }

  /** The last slot handed out in Ready.committed. */
  get appliedSlot(): Slot {
    return this.appliedPrefix;
  }

  /**
   * Whether receive() would answer a catch-up request from `peer` (a member or a learner). The
   * runtime answers requests below logStart from its durable log, and asks this first.
   */
  mayFetchLog(peer: ReplicaId): boolean {
    return peer !== this.id && (this.membership.isKnown(peer) || this.learners.has(peer) || this.departed.has(peer));
  }

  /** Removed replicas still sent commit notices (see `departed`): the runtime keeps them as transport peers. */
  get departedPeers(): ReplicaId[] {
    return [...this.departed.keys()];
  }

  /** Changes whenever `departedPeers` does (a removal pruned here, or its window over). */
  get departedVersion(): number {
    return this.departedChanges;
  }

  /** Every role, on each tick: a follower forgets them too (it no longer answers their catch-up). */
  private forgetDeparted(): void {
    for (const [peer, until] of this.departed) {
      if (this.nowMs < until) continue;
      this.departed.delete(peer);
      this.departedChanges++;
    }
  }

  get status() {
    return {
      id: this.id,
      role: this.role,
      leader: this.role === 'leader' ? this.id : this.leaderId,
      ballot: this.leader?.ballot ?? this.candidate?.ballot ?? this.promised,
      promised: this.promised,
      chosenPrefix: this.chosenPrefix,
      appliedPrefix: this.appliedPrefix,
      logStart: this.logStart,
      maxSlotSeen: this.maxSlotSeen,
      leaderReady: this.leader?.ready ?? false,
      stoppedAtSlot: this.stoppedAtSlot,
      queuedCommands: this.leader?.queue.length ?? 0,
      inflightSlots: this.leader?.inflight.size ?? 0,
      members: this.membership.membersAt(this.chosenPrefix + 1),
      durableSeq: this.durableSeq,
      /** Set once a member told us of a newer configuration without us (see `removal`). */
      removal: this.removalNotice(),
    };
  }

  /** The removal a member told us of, while no configuration we know is as new; else null. */
  removalNotice(): RemovalNotice | null {
    if (this.removal !== null && this.removal.configFromSlot <= this.membership.latestFromSlot) this.removal = null; // we know as much now
    return this.removal;
  }

  private answerNonMember(to: ReplicaId): void {
    const latest = this.membership.latest;
    this.send({ type: 'notMember', from: this.id, to, configFromSlot: latest.fromSlot, members: [...latest.members] });
  }

  private onNotMember(msg: NotMemberMsg): void {
    // Only news counts: a member that lags may not know a configuration that added us, and one
    // that names us contradicts itself. Either way it is not evidence of a removal.
    if (msg.configFromSlot <= this.membership.latestFromSlot || msg.members.includes(this.id)) return;
    if (this.removal !== null && this.removal.configFromSlot >= msg.configFromSlot) return;
    this.removal = { configFromSlot: msg.configFromSlot, members: [...msg.members], by: msg.from };
    if (this.role === 'candidate') this.abandonCandidacy();
  }

  get configs() {
    return this.membership.snapshot();
  }

  /** The entry this replica holds for a slot (tests and the simulator). */
  entryAt(slot: Slot): Entry | undefined {
    return this.cells.get(slot)?.entry;
  }

  // ================================================================ acceptor: Phase 1

  private onPrepare(msg: PrepareMsg): void {
    const promisedBefore = this.promised;
    this.noteBallot(msg.ballot);
    const forgetsPromise = this.options.plantedBug === 'acceptor-ignores-promise'; // PLANTED BUG (tests only)
    if (msg.ballot < this.promised && !forgetsPromise) {
      this.send({ type: 'reject', from: this.id, to: msg.from, ballot: msg.ballot, promised: this.promised });
      return;
    }
    if (msg.ballot !== this.promised && !this.mayPromise(msg)) return; // inside a lease: stay silent
    const acceptPrimary = this.primaryHooks.acceptPrimary;
    if (msg.ballot !== this.promised && acceptPrimary !== undefined && !acceptPrimary(msg.from, msg.cookie ?? null)) return; // the application refuses this primary
    if (msg.ballot !== this.promised) {
      this.promised = msg.ballot;
      this.persistPromise();
      this.stepDown(null);
      // Give the candidate a full election timeout to finish before we campaign ourselves.
      this.electionDeadlineMs = this.nowMs + this.electionTimeout();
    }
    // msg.ballot === promised here: (re)send the promise once the promise is durable.
    const reply: PromiseMsg = {
      type: 'promise',
      from: this.id,
      to: msg.from,
      ballot: msg.ballot,
      fromSlot: msg.fromSlot,
      entries: this.entriesForPromise(msg.fromSlot),
      chosenPrefix: this.chosenPrefix,
      logStart: this.logStart,
    };
    // Wait for everything issued so far: the promise and the accepts it reports.
    const replySeq = this.lastIssuedSeq();
    if (this.options.plantedBug === 'promise-before-persist') this.send(reply); // PLANTED BUG (tests only)
    else this.sendAfterPersist(reply, replySeq);
    if (CONTRACTS) {
      ensures(this.promised >= promisedBefore, 'promised ballot never decreases');
      ensures(this.promised === msg.ballot, 'a promise is sent only for the promised ballot');
      ensures(!this.out.send.includes(reply) || this.durableSeq >= replySeq, 'promise sent before it was durable');
    }
  }

  /** A replica that heard from a leader within the lease does not promise a (new) ballot. */
  private mayPromise(msg: PrepareMsg): boolean {
    if (this.nowMs < this.promiseBlockedUntilMs) return false;
    if (msg.transfer) return true;
    if (this.role === 'leader') return false; // a leader steps down by itself when it loses its quorum
    return this.nowMs >= this.lastLeaderContactMs + this.options.leaseMs;
  }

  private entriesForPromise(fromSlot: Slot): Entry[] {
    const entries: Entry[] = [];
    const start = Math.max(fromSlot, this.logStart);
    // Chosen entries the candidate may lack, bounded; if it needs more it will catch up first.
    const chosenEnd = Math.min(this.chosenPrefix, start + this.options.catchupEntriesMax - 1);
    for (let s = start; s <= chosenEnd; s++) {
      const cell = this.cells.get(s);
      if (cell) entries.push(cell.entry);
    }
    // Every accepted slot above the chosen prefix (at most W of them): Phase 1 must see them all.
    for (let s = Math.max(start, this.chosenPrefix + 1); s <= this.maxSlotSeen; s++) {
      const cell = this.cells.get(s);
      if (cell) entries.push(cell.entry);
    }
    return entries;
  }

  // ================================================================ acceptor: Phase 2

  private onAccept(msg: AcceptMsg): void {
    const promisedBefore = this.promised;
    const before = this.cells.get(msg.slot)?.entry;
    this.noteBallot(msg.ballot);
    const ignoresPromise = this.options.plantedBug === 'acceptor-ignores-promise'; // PLANTED BUG (tests only)
    if (msg.ballot < this.promised && !ignoresPromise) {
      this.send({ type: 'reject', from: this.id, to: msg.from, ballot: msg.ballot, promised: this.promised });
      return;
    }
    this.heardFromLeader(msg.from, msg.ballot);
    if (msg.ballot > this.promised) {
      this.promised = msg.ballot;
      this.persistPromise();
    }
    if (msg.slot < this.logStart) return; // compacted: chosen long ago
    // Learn the commit point first: it may move our window far enough to take this slot.
    this.noteCommit(msg.commitSlot, msg.from);
    this.learnCommit(msg.commitSlot, msg.ballot);
    if (msg.slot > this.chosenPrefix + this.proposalWindow()) {
      // Beyond our window: we lag. Refuse (the leader retransmits) and catch up.
      this.maybeRequestCatchup();
      return;
    }
    const cell = this.cells.get(msg.slot);
    if (cell && cell.entry.ballot === msg.ballot && !cell.entry.chosen) {
      if (!sameValue(cell.entry.value, msg.value)) {
        // A correct leader sends one value per (slot, ballot). Never change a vote at one ballot.
        if (this.options.plantedBug !== 'acceptor-overwrites-same-ballot') return; // PLANTED BUG bypasses this
        this.writeCell({ slot: msg.slot, ballot: msg.ballot, value: msg.value });
      }
      // else: a retransmission. Reply once the earlier write is durable.
    } else if (cell?.entry.chosen) {
      // Paxos: a proposal at a ballot above the one that chose carries the chosen value; a deposed
      // leader's stale proposal at a lower ballot may not (we do not know the choosing ballot, so
      // no contract here: the checkers' agreement check covers it). Never vote for another value.
      if (!sameValue(cell.entry.value, msg.value)) return;
      if (cell.entry.ballot !== msg.ballot) this.writeCell({ slot: msg.slot, ballot: msg.ballot, value: cell.entry.value, chosen: true });
    } else {
      this.writeCell({ slot: msg.slot, ballot: msg.ballot, value: msg.value });
    }
    const reply: AcceptedMsg = { type: 'accepted', from: this.id, to: msg.from, ballot: msg.ballot, slot: msg.slot };
    const written = this.cells.get(msg.slot)!;
    if (this.options.plantedBug === 'reply-before-persist') this.send(reply); // PLANTED BUG (tests only)
    else this.sendAfterPersist(reply, written.seq);
    this.learnCommit(msg.commitSlot, msg.ballot); // the slot just written may already be committed
    if (CONTRACTS) {
      ensures(msg.ballot >= promisedBefore, 'accepted below the promised ballot');
      ensures(
        !before || before.ballot !== msg.ballot || sameValue(before.value, written.entry.value),
        `slot ${msg.slot}: changed the value accepted at ballot ${formatBallot(msg.ballot)}`,
      );
      ensures(written.entry.ballot === msg.ballot, 'the accepted ballot is recorded');
      ensures(!this.out.send.includes(reply) || written.seq <= this.durableSeq, 'accept reply emitted before the accept was durable');
    }
  }

  private writeCell(entry: Entry): void {
    const op = this.pendingOp();
    op.entries.push(entry);
    this.cells.set(entry.slot, { entry, seq: op.seq });
    if (entry.slot > this.maxSlotSeen) this.maxSlotSeen = entry.slot;
    this.noteStamp(entry.value);
  }

  private noteStamp(value: Value): void {
    if (value.kind === 'batch' && value.timeMs !== undefined && value.timeMs > this.stampSeenMs) this.stampSeenMs = value.timeMs;
  }

  /**
   * A stamp for a new batch: the wall clock, never below a stamp already seen (non-decreasing
   * across leaders). A core that was never given a wall clock nor saw a stamp (tests of the
   * protocol alone) writes unstamped values, which state machines treat as legacy ones.
   */
  private stamp(): number | undefined {
    if (this.wallMs > this.stampSeenMs) this.stampSeenMs = this.wallMs;
    return this.stampSeenMs > 0 ? this.stampSeenMs : undefined;
  }

  /** The runtime installed (or restored) a snapshot whose state machines saw stamps up to `timeMs`. */
  noteTimeStamp(timeMs: number): void {
    if (timeMs > this.stampSeenMs) this.stampSeenMs = timeMs;
  }

  // ================================================================ learner

  private heardFromLeader(from: ReplicaId, ballot: Ballot): void {
    this.lastLeaderContactMs = this.nowMs;
    this.electionDeadlineMs = this.nowMs + this.electionTimeout();
    if (this.role !== 'follower' || this.leaderId !== from) this.stepDown(from);
    this.leaderId = from;
    if (CONTRACTS) invariant(ballotReplica(ballot) === from, 'a leader speaks with its own ballot');
  }

  private noteCommit(commitSlot: Slot, from: ReplicaId): void {
    if (commitSlot > this.knownCommit) {
      this.knownCommit = commitSlot;
      this.knownCommitFrom = from;
    }
  }

  /**
   * A commit notice (commitSlot, ballot) from the leader of `ballot`: every slot <= commitSlot is
   * chosen, and where we accepted at that same ballot we hold the chosen value (one value per
   * (slot, ballot)). Other slots must be fetched: "commit up to N" alone would let us execute a
   * stale value (SAFETY.md).
   */
  private learnCommit(commitSlot: Slot, ballot: Ballot): void {
    const end = Math.min(commitSlot, this.chosenPrefix + this.options.pipelineWindowSlots);
    for (let s = this.chosenPrefix + 1; s <= end; s++) {
      const cell = this.cells.get(s);
      if (cell && !cell.entry.chosen && cell.entry.ballot === ballot) cell.entry = { ...cell.entry, chosen: true };
    }
    this.advanceChosenPrefix();
    if (this.chosenPrefix < this.knownCommit) this.maybeRequestCatchup();
  }

  private advanceChosenPrefix(): void {
    const before = this.chosenPrefix;
    for (;;) {
      const cell = this.cells.get(this.chosenPrefix + 1);
      if (!cell || !cell.entry.chosen) break;
      this.chosenPrefix++;
      const value = cell.entry.value;
      if (value.kind === 'batch' && value.last === true && this.stoppedAtSlot === 0) this.stoppedAtSlot = this.chosenPrefix;
      if (value.kind === 'config') {
        // PLANTED BUG (tests only): the configuration governs from the next slot, not W later.
        const fromSlot = this.chosenPrefix + (this.options.plantedBug === 'config-governs-at-once' ? 1 : this.options.pipelineWindowSlots);
        if (fromSlot > this.membership.latestFromSlot) {
          this.membership.add({ fromSlot, members: value.members });
          // Our promises came from the old configuration's quorum; slots the new one governs need
          // its promises too. Simplest safe rule: run Phase 1 again (we give up our own lease).
          if (this.leader) this.leader.rerunPhase1 = true;
        }
      }
    }
    if (this.chosenPrefix > this.knownCommit) this.knownCommit = this.chosenPrefix;
    if (this.leader && this.chosenPrefix > before) this.leaderPrefixAdvanced();
  }

  private maybeRequestCatchup(): void {
    if (this.nowMs < this.catchupRetryAtMs) return;
    // A follower asks its leader; a leader that lags (a follower knows more is chosen) asks that follower.
    const target = this.leaderId !== null && this.leaderId !== this.id ? this.leaderId : this.knownCommitFrom;
    if (target === null || target === this.id) return;
    this.catchupRetryAtMs = this.nowMs + this.options.retransmitMs;
    this.send({ type: 'catchupRequest', from: this.id, to: target, fromSlot: this.chosenPrefix + 1 });
  }

  private onCatchupRequest(msg: CatchupRequestMsg): void {
    if (msg.fromSlot < this.logStart) {
      this.send({ type: 'catchupReply', from: this.id, to: msg.from, entries: [], commitSlot: this.chosenPrefix, snapshotSlot: this.logStart - 1 });
      return;
    }
    const entries: Entry[] = [];
    const end = Math.min(this.chosenPrefix, msg.fromSlot + this.options.catchupEntriesMax - 1);
    for (let s = msg.fromSlot; s <= end; s++) entries.push(this.cells.get(s)!.entry);
    this.send({ type: 'catchupReply', from: this.id, to: msg.from, entries, commitSlot: this.chosenPrefix, snapshotSlot: 0 });
  }

  private onCatchupReply(msg: CatchupReplyMsg): void {
    this.noteCommit(msg.commitSlot, msg.from);
    const before = this.chosenPrefix;
    for (const e of msg.entries) this.learnChosen(e);
    this.advanceChosenPrefix();
    if (msg.entries.length === 0 && msg.snapshotSlot > this.chosenPrefix) {
      this.out.snapshotNeeded = { from: msg.from, slot: msg.snapshotSlot };
    } else if (this.chosenPrefix < this.knownCommit && this.chosenPrefix > before) {
      // Progress, and more to fetch: ask again at once. A reply that taught nothing (empty, or
      // stale: a duplicate, or the answer to an older request that a newer one already covered)
      // waits for the retry interval. Asking again on every non-empty reply let each stale reply
      // start one more request/reply chain, so chains only ever multiplied (duplicated messages,
      // a retry sent while a slow reply was on its way) into a storm: sim seed 55228.
      this.catchupRetryAtMs = 0;
      this.maybeRequestCatchup();
    }
  }

  /** Install a value known to be chosen (from a catch-up reply or a promise). */
  private learnChosen(e: Entry): void {
    if (e.slot < this.logStart || e.slot <= this.chosenPrefix) return;
    const cell = this.cells.get(e.slot);
    if (cell?.entry.chosen) {
      if (CONTRACTS) invariant(sameValue(cell.entry.value, e.value), `slot ${e.slot}: two different chosen values`);
      return;
    }
    if (e.slot > this.chosenPrefix + this.options.pipelineWindowSlots + this.options.catchupEntriesMax) return;
    if (cell && sameValue(cell.entry.value, e.value)) {
      // We hold the chosen value already, accepted at this ballot or at another that carried it:
      // flag it, no new write (the chosen prefix marker covers it on disk). Rewriting it at the
      // reported ballot put a later, not yet durable write under a vote for the slot still
      // waiting on an earlier one (seed 247275: accepted at 2053 then 3073, learned chosen at
      // 2053; the 2053 vote, durable, then looked as if it left before its write).
      cell.entry = { ...cell.entry, chosen: true };
      return;
    }
    this.writeCell({ slot: e.slot, ballot: e.ballot, value: e.value, chosen: true });
  }

  // ================================================================ leader election

  private followerTick(): void {
    if (this.chosenPrefix < this.knownCommit) this.maybeRequestCatchup();
    if (this.nowMs < this.electionDeadlineMs) return;
    // A learner, or a replica removed from the configuration, never campaigns.
    if (!this.membership.membersAt(this.chosenPrefix + 1).includes(this.id)) return;
    if (this.removalNotice() !== null) return;
    // Do not campaign (or disturb anyone) while a leader we heard from still holds its lease.
    if (this.nowMs < this.lastLeaderContactMs + this.options.leaseMs) return;
    if (this.nowMs < this.promiseBlockedUntilMs) return;
    if (this.primaryVetoed()) {
      this.electionDeadlineMs = this.nowMs + this.electionTimeout(); // ask again after another timeout
      return;
    }
    this.startPhase1(false);
  }

  private startPhase1(transfer: boolean): void {
    const ballot = nextBallot(Math.max(this.maxBallotSeen, this.promised), this.id);
    this.stepDown(null);
    this.role = 'candidate';
    this.maxBallotSeen = ballot;
    this.promised = ballot;
    const seq = this.persistPromise();
    const fromSlot = this.chosenPrefix + 1;
    this.candidate = { ballot, fromSlot, promises: new Map(), selfPromised: false, asked: new Set(), transfer };
    this.awaitOp(seq).selfPromise = true;
    this.awaitOp(seq).ballot = ballot;
    this.electionDeadlineMs = this.nowMs + this.electionTimeout();
    this.out.roleChanges.push({ role: 'candidate', ballot, leader: null });
    this.askForPromises();
  }

  private askForPromises(): void {
    const c = this.candidate!;
    for (const peer of this.membership.peersFrom(c.fromSlot)) {
      if (peer === this.id || c.asked.has(peer)) continue;
      c.asked.add(peer);
      const prepare: PrepareMsg = { type: 'prepare', from: this.id, to: peer, ballot: c.ballot, fromSlot: c.fromSlot, transfer: c.transfer };
      if (this.primaryCookie !== null) prepare.cookie = this.primaryCookie;
      this.send(prepare);
    }
  }

  private onPromise(msg: PromiseMsg): void {
    const c = this.candidate;
    if (!c || msg.ballot !== c.ballot) return;
    // Adopt what the acceptor knows to be chosen; if it knows more than it could send, we are
    // behind: catch up first and campaign later (Phase 1 must see every accepted slot).
    for (const e of msg.entries) if (e.chosen) this.learnChosen(e);
    this.advanceChosenPrefix();
    // An acceptor whose log starts past our fromSlot (it compacted slots we lack) knows them to be
    // chosen (logStart - 1 <= its chosenPrefix): the catch-up below covers that case too. Its
    // answer is entries (the runtime keeps applied ones in memory and on disk) or, below its log,
    // a snapshot to fetch; asking for the snapshot here at once made an acceptor that had just
    // released applied entries from memory write a fresh snapshot for a candidate one slot behind.
    if (msg.chosenPrefix > this.chosenPrefix) {
      this.noteCommit(msg.chosenPrefix, msg.from);
      this.abandonCandidacy();
      this.catchupRetryAtMs = 0;
      this.send({ type: 'catchupRequest', from: this.id, to: msg.from, fromSlot: this.chosenPrefix + 1 });
      return;
    }
    c.promises.set(msg.from, msg);
    this.askForPromises(); // configurations learned just now may add acceptors to ask
    this.tryFinishPhase1();
  }

  private abandonCandidacy(): void {
    this.candidate = null;
    this.role = 'follower';
    this.electionDeadlineMs = this.nowMs + this.electionTimeout();
    this.out.roleChanges.push({ role: 'follower', ballot: this.promised, leader: null });
  }

  private tryFinishPhase1(): void {
    const c = this.candidate;
    if (!c || !c.selfPromised) return;
    const voters = new Set<ReplicaId>(c.promises.keys());
    voters.add(this.id);
    if (!this.membership.hasQuorumFrom(c.fromSlot, voters)) return;
    this.becomeLeader(c);
  }

  private becomeLeader(c: CandidateState): void {
    // Recover every slot any promise reported: the highest-ballot value, or a no-op in a hole.
    const best = new Map<Slot, Entry>();
    let maxSlot = this.chosenPrefix;
    const skipRecovery = this.options.plantedBug === 'leader-skips-recovery'; // PLANTED BUG (tests only)
    const reports: Entry[][] = skipRecovery ? [] : [...c.promises.values()].map((p) => p.entries);
    reports.push(this.entriesForPromise(c.fromSlot));
    for (const entries of reports) {
      for (const e of entries) {
        if (e.slot <= this.chosenPrefix) continue;
        const prior = best.get(e.slot);
        if (!prior || (e.chosen && !prior.chosen) || (!prior.chosen && e.ballot > prior.ballot)) best.set(e.slot, e);
        if (e.slot > maxSlot) maxSlot = e.slot;
      }
    }
    this.candidate = null;
    this.role = 'leader';
    this.leaderId = this.id;
    const leader: LeaderState = {
      ballot: c.ballot,
      nextSlot: this.chosenPrefix + 1,
      inflight: new SeqMap(),
      readyAtSlot: Number.MAX_SAFE_INTEGER,
      ready: false,
      queue: [],
      queueBytes: 0,
      queueSinceMs: this.nowMs,
      pendingConfig: null,
      heartbeatRound: 0,
      heartbeatDueMs: this.nowMs,
      roundSentAtMs: new Map(),
      roundAcks: new Map(),
      lastQuorumRoundSentAtMs: this.nowMs,
      leaseUntilMs: 0,
      pendingReads: [],
      readRoundNeeded: false,
      confirmedRound: 0,
      transferring: false,
      transferUntilMs: 0,
      recovered: new Map(),
      rerunPhase1: false,
      progress: new Map(),
    };
    this.leader = leader;
    // Re-propose every recovered slot at our ballot (a value known chosen is re-proposed as is:
    // always safe, and it keeps one code path). A restarted acceptor may report slots beyond our
    // window (it lost its chosen-prefix marker, not its accepts): those wait in `recovered` and
    // are proposed, ahead of any new command, as the window reaches them. The promises we hold
    // cover them until our ballot is superseded.
    for (let s = this.chosenPrefix + 1; s <= maxSlot; s++) {
      const e = best.get(s);
      leader.recovered.set(s, e ? e.value : NOOP);
    }
    // We serve nothing until every recovered slot, and one of our own, is chosen: propose a
    // no-op if nothing was recovered (Raft's empty entry).
    if (maxSlot === this.chosenPrefix) leader.recovered.set(maxSlot + 1, NOOP);
    leader.readyAtSlot = Math.max(maxSlot, this.chosenPrefix + 1);
    this.proposeRecovered();
    this.out.roleChanges.push({ role: 'leader', ballot: c.ballot, leader: this.id });
    this.broadcastHeartbeat();
  }

  private onReject(msg: RejectMsg): void {
    this.noteBallot(msg.promised);
    // A candidate refused by a higher promise gives up (it will campaign above it next time). A
    // leader does not: one lagging acceptor with a stray high promise must not depose it; a leader
    // that really lost its quorum sees its heartbeats go unacknowledged and steps down on its own.
    const mine = this.candidate?.ballot;
    if (mine !== undefined && msg.ballot === mine && msg.promised > mine) this.stepDown(null);
    // A leader refused by an acceptor that promised above it (a replica that campaigned alone, e.g.
    // after a restart) re-runs Phase 1 above that ballot, giving its own lease up, so that the
    // acceptor votes again: without this it would stay out until the next election.
    // Only while our lease holds: then no other leader can hold one (a promise quorum would have
    // to cross our lease quorum), so giving our lease up to ourselves takes nobody's away. A
    // deposed leader (its lease lapsed) must not: the transfer flag would override the new
    // leader's lease (sim seed 6407: a stale lease read).
    const leader = this.leader;
    if (leader && msg.ballot === leader.ballot && msg.promised > leader.ballot && this.nowMs < leader.leaseUntilMs) leader.rerunPhase1 = true;
  }

  private onTimeoutNow(msg: TimeoutNowMsg): void {
    if (msg.ballot < this.promised || this.role === 'leader') return;
    if (!this.membership.membersAt(this.chosenPrefix + 1).includes(this.id)) return;
    if (this.primaryVetoed()) return; // the application refuses to lead: the old leader's lease lapses, others campaign
    this.startPhase1(true);
  }

  // ================================================================ leader: Phase 2

  private proposeAt(slot: Slot, value: Value): void {
    const leader = this.leader!;
    if (CONTRACTS) {
      requires(slot > this.chosenPrefix, `proposing at chosen slot ${slot}`);
      requires(slot <= this.chosenPrefix + this.options.pipelineWindowSlots, `slot ${slot} beyond the pipeline window`);
      requires(leader.inflight.get(slot) === undefined, `slot ${slot} proposed twice at one ballot`);
    }
    this.writeCell({ slot, ballot: leader.ballot, value });
    leader.inflight.set(slot, { value, votes: new Set(), sentAtMs: this.nowMs });
    this.awaitOp(this.pending!.seq).selfVotes.push(slot);
    this.awaitOp(this.pending!.seq).ballot = leader.ballot;
    if (slot >= leader.nextSlot) leader.nextSlot = slot + 1;
    // The leader sends 2a before its own write completes; its own vote counts only once durable.
    for (const peer of this.membership.peersFrom(slot)) {
      if (peer === this.id) continue;
      this.send({ type: 'accept', from: this.id, to: peer, ballot: leader.ballot, slot, value, commitSlot: this.chosenPrefix });
    }
  }

  /**
   * The runtime hands back a slot this leader proposed at `ballot` as the same value in another
   * representation (its encoding, once the log record is made: codec/values.ts, encodedBatchOf), so
   * that the proposals' objects need not live until the slot is chosen. Ignored unless the slot is
   * still in flight at that ballot.
   */
  adoptEncoding(slot: Slot, ballot: Ballot, value: Value): void {
    const leader = this.leader;
    const inflight = leader?.inflight.get(slot);
    const cell = this.cells.get(slot);
    if (!leader || leader.ballot !== ballot || !inflight || !cell || cell.entry.ballot !== ballot) return;
    if (CONTRACTS) requires(sameValue(cell.entry.value, value), `slot ${slot}: adoptEncoding of a different value`);
    inflight.value = value;
    cell.entry = { ...cell.entry, value };
  }

  private onAccepted(msg: AcceptedMsg): void {
    const leader = this.leader;
    if (!leader || msg.ballot !== leader.ballot) return;
    this.countVote(msg.slot, msg.from);
  }

  private countVote(slot: Slot, voter: ReplicaId): void {
    // Counting one vote can end our leadership (a configuration without us takes effect), so a
    // batch of our own votes may meet a replica that no longer leads.
    const leader = this.leader;
    if (!leader) return;
    const inflight = leader.inflight.get(slot);
    if (!inflight) return;
    if (!this.membership.membersAt(slot).includes(voter)) return;
    inflight.votes.add(voter);
    const bug = this.options.plantedBug;
    if (voter !== this.id && (bug === 'acceptor-overwrites-same-ballot' || bug === 'leader-rebatches-retransmit')) {
      this.plantedRebatch(slot, inflight, voter);
    }
    if (!this.isSlotQuorum(slot, inflight.votes)) return;
    leader.inflight.delete(slot);
    const cell = this.cells.get(slot)!;
    if (cell.entry.chosen) return; // learned chosen meanwhile (a lagging leader catching up)
    if (CONTRACTS) invariant(cell.entry.ballot === leader.ballot && sameValue(cell.entry.value, inflight.value), `slot ${slot}: leader's cell changed`);
    cell.entry = { ...cell.entry, chosen: true };
    this.advanceChosenPrefix();
  }

  /** The chosen prefix moved while we lead (by our votes, or a late catch-up reply). */
  private leaderPrefixAdvanced(): void {
    const leader = this.leader!;
    leader.inflight.deleteBelow(this.chosenPrefix + 1);
    for (const slot of leader.recovered.keys()) if (slot <= this.chosenPrefix) leader.recovered.delete(slot);
    if (leader.nextSlot <= this.chosenPrefix) leader.nextSlot = this.chosenPrefix + 1;
    if (!leader.ready && this.chosenPrefix >= leader.readyAtSlot) {
      leader.ready = true;
      this.out.roleChanges.push({ role: 'leader', ballot: leader.ballot, leader: this.id, recovered: true });
      for (const r of leader.pendingReads) if (r.slot < this.chosenPrefix) r.slot = this.chosenPrefix;
    }
    this.maybeStepDownAfterRemoval();
  }

  private isSlotQuorum(slot: Slot, votes: ReadonlySet<ReplicaId>): boolean {
    const members = this.membership.membersAt(slot);
    let n = 0;
    for (const m of members) if (votes.has(m)) n++;
    return n * 2 > members.length;
  }

  /** W: how far beyond the chosen prefix a leader proposes and an acceptor accepts. */
  private proposalWindow(): number {
    const w = this.options.pipelineWindowSlots;
    return this.options.plantedBug === 'window-ignored' ? 2 * w : w; // PLANTED BUG (tests only)
  }

  private configChangeInFlight(): boolean {
    if (this.membership.latestFromSlot > this.chosenPrefix + 1) return true;
    for (const f of this.leader?.inflight.values() ?? []) if (f.value.kind === 'config') return true;
    return false;
  }

  private proposeRecovered(): void {
    const leader = this.leader!;
    const windowEnd = this.chosenPrefix + this.proposalWindow();
    for (const [slot, value] of leader.recovered) {
      if (slot > windowEnd) break; // Map keeps insertion (slot) order
      leader.recovered.delete(slot);
      this.proposeAt(slot, value);
    }
  }

  /** Fill free window slots from the queue: batching happens here, pipelining by the window. */
  private flushProposals(): void {
    const leader = this.leader;
    if (!leader || leader.transferring) return;
    if (leader.rerunPhase1) {
      // The transfer flag (promise inside leases) only while our own lease holds, as above.
      this.startPhase1(this.nowMs < leader.leaseUntilMs);
      return;
    }
    if (leader.recovered.size > 0) this.proposeRecovered();
    if (leader.recovered.size > 0) return; // recovered slots first, then new commands
    if (this.stoppedAtSlot > 0 || leader.ballot === this.lastProposedBallot) {
      this.rejectQueueStopping(leader); // nothing new after a last request (no config, no fill)
      return;
    }
    const windowEnd = this.chosenPrefix + this.proposalWindow();
    if (leader.pendingConfig && leader.nextSlot <= windowEnd && !this.configChangeInFlight()) {
      this.proposeAt(leader.nextSlot, { kind: 'config', members: leader.pendingConfig });
      leader.pendingConfig = null;
    }
    // A chosen configuration takes effect W slots later: with nothing else to propose, fill the
    // gap with no-ops so that a membership change completes without waiting for traffic.
    while (leader.queue.length === 0 && leader.nextSlot < this.membership.latestFromSlot && leader.nextSlot <= windowEnd) {
      this.proposeAt(leader.nextSlot, NOOP);
    }
    while (leader.queue.length > 0 && leader.nextSlot <= windowEnd) {
      const full = leader.queue.length >= this.options.batchCommandsMax || leader.queueBytes >= this.options.batchBytesMax;
      if (!full && this.options.batchDelayMs > 0 && this.nowMs - leader.queueSinceMs < this.options.batchDelayMs) break;
      let n = 0;
      let bytes = 0;
      let alone: 'exclusive' | 'last' | undefined;
      while (n < leader.queue.length && n < this.options.batchCommandsMax) {
        const mode = this.exclusiveMarks.size > 0 ? this.exclusiveMode(leader.queue[n]!) : undefined;
        if (mode !== undefined && n > 0) break; // an exclusive command starts a slot of its own
        const size = leader.queue[n]!.payload.length;
        if (n > 0 && bytes + size > this.options.batchBytesMax) break;
        bytes += size;
        n++;
        if (mode !== undefined) {
          alone = mode;
          break;
        }
      }
      let commands: Command[];
      if (n === leader.queue.length) {
        commands = leader.queue; // all of it: the queue array becomes the batch's
        leader.queue = [];
      } else commands = leader.queue.splice(0, n);
      leader.queueBytes -= bytes;
      leader.queueSinceMs = this.nowMs;
      if (alone === undefined) {
        this.proposeAt(leader.nextSlot, { kind: 'batch', commands, timeMs: this.stamp() });
        continue;
      }
      this.dropExclusiveMarks(commands);
      if (alone === 'exclusive') {
        this.proposeAt(leader.nextSlot, { kind: 'batch', commands, timeMs: this.stamp() });
        continue;
      }
      this.proposeAt(leader.nextSlot, { kind: 'batch', commands, timeMs: this.stamp(), last: true });
      this.lastProposedBallot = leader.ballot;
      this.rejectQueueStopping(leader);
    }
  }

  private leaderTick(): void {
    const leader = this.leader!;
    // A leader that has not heard from a quorum for an election timeout steps down.
    if (this.nowMs - leader.lastQuorumRoundSentAtMs > this.options.electionTimeoutMinMs) {
      this.stepDown(null);
      return;
    }
    // A transfer that did not happen within an election timeout (the target is down, cut off, or
    // vetoes leading) lapses: step down, so that heartbeats stop and the replicas elect a leader
    // once the lease runs out. Resuming instead would keep a leader that gave its lease up and whose
    // timeoutNow may still arrive, and without a step down nothing would ever propose again.
    if (leader.transferring && this.nowMs >= leader.transferUntilMs) {
      this.stepDown(null);
      return;
    }
    if (this.nowMs >= leader.heartbeatDueMs) this.broadcastHeartbeat();
    for (const [slot, f] of leader.inflight.entries()) {
      if (this.nowMs - f.sentAtMs < this.options.retransmitMs) continue;
      f.sentAtMs = this.nowMs;
      for (const peer of this.membership.peersFrom(slot)) {
        if (peer === this.id || f.votes.has(peer)) continue;
        this.send({ type: 'accept', from: this.id, to: peer, ballot: leader.ballot, slot, value: f.value, commitSlot: this.chosenPrefix });
      }
    }
  }

  /**
   * PLANTED BUG trigger (tests only). A correct leader never sends two values for one (slot,
   * ballot), so an acceptor that overwrites a same-ballot value can only show up beside a leader
   * that does: this one sends a voter a "topped up" batch for the slot it just voted on. Only
   * acceptors that already voted get it, and the leader keeps the first value, so with correct
   * acceptors (which ignore it) the trigger alone is harmless; the sim test shows both halves.
   */
  private plantedRebatch(slot: Slot, f: InflightSlot, voter: ReplicaId): void {
    const leader = this.leader!;
    if (f.value.kind !== 'batch' || leader.queue.length === 0) return;
    const value: Value = { kind: 'batch', commands: [...f.value.commands, leader.queue[0]!], timeMs: f.value.timeMs };
    this.send({ type: 'accept', from: this.id, to: voter, ballot: leader.ballot, slot, value, commitSlot: this.chosenPrefix });
  }

  private broadcastHeartbeat(): void {
    const leader = this.leader!;
    leader.heartbeatRound++;
    const round = leader.heartbeatRound;
    leader.heartbeatDueMs = this.nowMs + this.options.heartbeatIntervalMs;
    leader.roundSentAtMs.set(round, this.nowMs);
    leader.roundAcks.set(round, new Set([this.id]));
    leader.readRoundNeeded = false;
    // Every configuration held, superseded ones too (until compaction prunes them): a replica a
    // change removed votes on the slots up to where the change governs, and only a commit notice
    // tells it they were chosen; without one it takes itself for a member and campaigns for good.
    const targets = new Set([...this.membership.allPeers(), ...this.learners, ...this.departed.keys()]);
    for (const peer of targets) {
      if (peer === this.id) continue;
      this.send({ type: 'heartbeat', from: this.id, to: peer, ballot: leader.ballot, commitSlot: this.chosenPrefix, round });
    }
    this.checkRound(round); // a single-member cluster confirms itself
  }

  private onHeartbeat(msg: HeartbeatMsg): void {
    this.noteBallot(msg.ballot);
    if (msg.ballot < this.promised) {
      this.send({ type: 'reject', from: this.id, to: msg.from, ballot: msg.ballot, promised: this.promised });
      if (msg.commitSlot > this.chosenPrefix && this.role !== 'leader') {
        // A live leader is ahead of us: our higher ballot never won anything. Stop campaigning
        // (it would only disrupt) and catch up; we vote again after the next election.
        if (this.candidate) this.abandonCandidacy();
        this.electionDeadlineMs = this.nowMs + this.electionTimeout();
        this.noteCommit(msg.commitSlot, msg.from);
        this.knownCommitFrom = msg.from;
        this.maybeRequestCatchup();
      }
      return;
    }
    this.heardFromLeader(msg.from, msg.ballot);
    this.noteCommit(msg.commitSlot, msg.from);
    this.learnCommit(msg.commitSlot, msg.ballot);
    this.send({ type: 'heartbeatAck', from: this.id, to: msg.from, ballot: msg.ballot, round: msg.round, chosenPrefix: this.chosenPrefix });
  }

  private onHeartbeatAck(msg: HeartbeatAckMsg): void {
    const leader = this.leader;
    if (!leader || msg.ballot !== leader.ballot) return;
    leader.progress.set(msg.from, msg.chosenPrefix);
    if (msg.chosenPrefix > this.chosenPrefix) {
      // A follower learned (from an earlier leader) slots we still try to get chosen, and may have
      // compacted them, so it will not vote on them again: learn them from it (log or snapshot).
      this.noteCommit(msg.chosenPrefix, msg.from);
      this.maybeRequestCatchup();
    }
    const acks = leader.roundAcks.get(msg.round);
    if (!acks) return;
    acks.add(msg.from);
    this.checkRound(msg.round);
  }

  private checkRound(round: number): void {
    const leader = this.leader!;
    const acks = leader.roundAcks.get(round)!;
    if (!this.membership.hasQuorumFrom(this.chosenPrefix + 1, acks)) return;
    const sentAt = leader.roundSentAtMs.get(round)!;
    // The lease counts from when the acknowledged heartbeat was *sent*, less the drift bound.
    leader.lastQuorumRoundSentAtMs = Math.max(leader.lastQuorumRoundSentAtMs, sentAt);
    if (!leader.transferring) {
      leader.leaseUntilMs = Math.max(leader.leaseUntilMs, sentAt + this.options.leaseMs - this.options.clockDriftMs);
    }
    if (round > leader.confirmedRound) leader.confirmedRound = round;
    for (const r of [...leader.roundAcks.keys()]) {
      if (r <= round) {
        leader.roundAcks.delete(r);
        leader.roundSentAtMs.delete(r);
      }
    }
    if (!leader.ready) return;
    const still: PendingRead[] = [];
    for (const read of leader.pendingReads) {
      if (read.round <= round) this.out.reads.push({ readId: read.readId, slot: read.slot });
      else still.push(read);
    }
    leader.pendingReads = still;
  }

  private maybeStepDownAfterRemoval(): void {
    // Once the configuration that excludes us governs the next slot, hand over and step down.
    const next = this.membership.membersAt(this.chosenPrefix + 1);
    if (this.leader && !next.includes(this.id)) {
      const target = next[0];
      if (target !== undefined) this.send({ type: 'timeoutNow', from: this.id, to: target, ballot: this.leader.ballot });
      this.stepDown(null);
    }
  }

  // ================================================================ role changes

  private stepDown(newLeader: ReplicaId | null): void {
    const wasLeader = this.leader;
    if (wasLeader) {
      const hint = newLeader;
      if (wasLeader.queue.length > 0) this.out.rejected.push({ commands: wasLeader.queue, reason: 'NOT_LEADER', leaderHint: hint });
      if (this.exclusiveMarks.size > 0) this.dropExclusiveMarks(wasLeader.queue);
      for (const r of wasLeader.pendingReads) this.out.readRefusals.push({ readId: r.readId, reason: 'NOT_LEADER', leaderHint: hint });
    }
    const changed = this.role !== 'follower' || this.leaderId !== newLeader;
    this.leader = null;
    this.candidate = null;
    this.role = 'follower';
    this.leaderId = newLeader;
    if (changed) this.out.roleChanges.push({ role: 'follower', ballot: this.promised, leader: newLeader });
  }

  private leaderHint(): ReplicaId | null {
    return this.role === 'leader' ? this.id : this.leaderId;
  }

  private noteBallot(ballot: Ballot): void {
    if (ballot > this.maxBallotSeen) this.maxBallotSeen = ballot;
  }

  private electionTimeout(): number {
    const { electionTimeoutMinMs: min, electionTimeoutMaxMs: max } = this.options;
    return min + Math.floor(this.random() * (max - min + 1));
  }

  // ================================================================ persistence plumbing

  private pendingOp(): PersistOp {
    if (!this.pending) this.pending = { seq: this.nextPersistSeq++, promised: null, entries: [], chosenPrefix: null };
    return this.pending;
  }

  private persistPromise(): number {
    const op = this.pendingOp();
    op.promised = this.promised;
    return op.seq;
  }

  /** What waits on persist op `seq` (kept in seq order; usually the last one). */
  private awaitOp(seq: number): AwaitingPersist {
    if (CONTRACTS) requires(seq > this.durableSeq, `awaiting op ${seq}, already durable`);
    let i = this.awaiting.length;
    while (i > 0 && this.awaiting[i - 1]!.seq > seq) i--;
    if (i > 0 && this.awaiting[i - 1]!.seq === seq) return this.awaiting[i - 1]!;
    const a: AwaitingPersist = { seq, messages: [], selfVotes: [], ballot: 0, selfPromise: false };
    this.awaiting.splice(i, 0, a);
    return a;
  }

  /** The newest persist op issued so far (pending or in flight). */
  private lastIssuedSeq(): number {
    return this.pending ? this.pending.seq : this.nextPersistSeq - 1;
  }

  private sendAfterPersist(msg: Message, seq: number): void {
    if (seq <= this.durableSeq) this.out.send.push(msg);
    else this.awaitOp(seq).messages.push(msg);
  }

  private send(msg: Message): void {
    this.out.send.push(msg);
  }

  private setNow(nowMs: number): void {
    if (CONTRACTS) requires(nowMs >= this.nowMs, `time went backwards: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
  }

  /** End of every input: batch proposals, emit commits, close the persist op, check invariants. */
  private finishStep(): void {
    if (this.leader) {
      this.flushProposals();
      // Read-index rounds go one at a time: reads arriving while a round is outstanding wait for
      // the next one, sent when it is confirmed (or by the heartbeat timer if its acks are lost).
      // Each read still needs a round sent after it arrived (PendingRead.round), so batching them
      // keeps them linearizable; without it every read() call cost a round of messages.
      const leader = this.leader;
      if (leader?.readRoundNeeded && leader.confirmedRound >= leader.heartbeatRound) this.broadcastHeartbeat();
    }
    if (this.appliedPrefix < this.chosenPrefix) {
      for (let s = this.appliedPrefix + 1; s <= this.chosenPrefix; s++) {
        this.out.committed.push({ slot: s, value: this.cells.get(s)!.entry.value });
      }
      this.appliedPrefix = this.chosenPrefix;
    }
    if (this.chosenPrefix > this.chosenPrefixPersisted && this.pending) {
      this.pending.chosenPrefix = this.chosenPrefix; // lazily, with writes we make anyway
      this.chosenPrefixPersisted = this.chosenPrefix;
    }
    if (this.pending) {
      this.out.persist.push(this.pending);
      this.pending = null;
    }
    if (CONTRACTS) this.checkInvariants();
  }

  // ================================================================ invariants

  checkInvariants(): void {
    invariant(this.appliedPrefix <= this.chosenPrefix, 'applied beyond chosen');
    invariant(this.logStart - 1 <= this.chosenPrefix, 'log start beyond the chosen prefix');
    invariant(this.durableSeq < this.nextPersistSeq, 'durable beyond issued');
    for (let i = 1; i < this.awaiting.length; i++) invariant(this.awaiting[i - 1]!.seq < this.awaiting[i]!.seq, 'awaiting out of order');
    for (const a of this.awaiting) invariant(a.seq > this.durableSeq, 'a vote waits on an op already durable');
    // The chosen prefix only grows slot by slot (advanceChosenPrefix), so checking its newest
    // part each step keeps the whole of it checked without O(log) work per step.
    for (let s = Math.max(this.logStart, this.chosenPrefix - 2 * this.options.pipelineWindowSlots); s <= this.chosenPrefix; s++) {
      const cell = this.cells.get(s);
      invariant(cell !== undefined && cell.entry.chosen === true, `slot ${s} in the chosen prefix is not chosen`);
    }
    for (const m of this.out.send) {
      if (m.type === 'accepted') {
        // A vote leaves only once what it votes for is durable.
        const cell = this.cells.get(m.slot);
        invariant(!cell || cell.entry.ballot !== m.ballot || cell.seq <= this.durableSeq, `accepted(${m.slot}) leaves before its write is durable`);
      }
    }
    const leader = this.leader;
    if (leader) {
      invariant(this.role === 'leader', 'leader state without the leader role');
      invariant(leader.ballot === this.promised, `leader at ${formatBallot(leader.ballot)} has promised ${formatBallot(this.promised)}`);
      invariant(leader.nextSlot - 1 <= this.chosenPrefix + this.options.pipelineWindowSlots, 'leader proposed beyond the pipeline window');
      for (const [slot] of leader.inflight.entries()) {
        invariant(slot > this.chosenPrefix, `inflight slot ${slot} is already in the chosen prefix`);
        invariant(slot < leader.nextSlot, `inflight slot ${slot} at or beyond nextSlot`);
      }
    }
    if (this.candidate) invariant(this.candidate.ballot === this.promised, 'candidate ballot differs from its promise');
  }
}

function emptyReady(): Ready {
  return { persist: [], send: [], committed: [], reads: [], readRefusals: [], rejected: [], roleChanges: [], snapshotNeeded: null };
}

export type { RejectReason };

function describeRemoval(r: RemovalNotice): string {
  return `replica ${r.by} holds a configuration from slot ${r.configFromSlot} of members ${r.members.join(',')}`;
}
