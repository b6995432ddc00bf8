// Safety checks over everything the simulator observes. Each check throws a Violation naming
// the property, so a failing seed stops at the first event that broke it.

import type { Command, ConfigEpoch, Entry, Message, RemovalNotice, ReplicaId, Slot } from '../core/types.js';
import { commandKey, valueKey } from './keys.js';

export type Property =
  | 'agreement'
  | 'unique-ballot-value'
  | 'acceptor-changed-vote'
  | 'validity'
  | 'at-most-once'
  | 'durability'
  | 'persist-before-reply'
  | 'prefix'
  | 'applied-unchosen'
  | 'config-unfixed'
  | 'config-view'
  | 'removal-notice'
  | 'linearizable-read'
  | 'liveness'
  | 'contract'
  | 'crash';

export class Violation extends Error {
  constructor(
    readonly property: Property,
    detail: string,
  ) {
    super(`${property}: ${detail}`);
    this.name = 'Violation';
  }
}

export class Checker {
  /** slot -> ballot -> valueKey -> acceptors that durably accepted it. */
  private readonly ledger = new Map<Slot, Map<number, Map<string, Set<ReplicaId>>>>();
  /** What a quorum durably accepted, per slot: the chosen value, derived from acceptors alone. */
  private readonly chosen = new Map<Slot, string>();
  /** `${node}/${slot}/${ballot}` -> the value that acceptor durably accepted there. */
  private readonly votes = new Map<string, string>();
  /** node -> the highest ballot durable there: its promise, or a ballot in its log (SAFETY.md, recovery). */
  private readonly promisedDurable = new Map<ReplicaId, number>();
  private readonly appliedKey = new Map<Slot, string>();
  private readonly appliedHash = new Map<Slot, number>();
  private readonly proposedPayloads = new Map<string, string>();
  private readonly acks = new Map<string, number>();
  private ackedMaxResult = 0;
  private readonly readBounds = new Map<number, number>();
  maxChosenSlot: Slot = 0;
  /** The longest run 1..n of slots known chosen: the configuration of every slot up to n + W is fixed. */
  chosenPrefix: Slot = 0;
  /** Configuration values chosen after one at a higher slot (two in flight across a leader change). */
  configsOutOfOrder = 0;
  maxAppliedSlot: Slot = 0;
  ackedWrites = 0;
  readsChecked = 0;

  /**
   * Configuration epochs derived from chosen config values (chosen at i, governs from i + W), in
   * fromSlot order. Pipelined slots are chosen out of order, so two configuration values in flight
   * (across a leader change) may be chosen in either order: each is inserted at its place. That is
   * sound because of the rule `config-unfixed` checks: nobody votes in slot s before every slot up
   * to s - W is chosen, so a configuration chosen later never governs a slot already voted on.
   */
  private readonly epochs: Array<{ fromSlot: Slot; members: ReplicaId[] }>;

  constructor(
    members: ReplicaId[],
    private readonly windowSlots: number,
  ) {
    this.epochs = [{ fromSlot: 1, members }];
  }

  membersAt(slot: Slot): ReplicaId[] {
    for (let i = this.epochs.length - 1; i > 0; i--) if (this.epochs[i]!.fromSlot <= slot) return this.epochs[i]!.members;
    return this.epochs[0]!.members;
  }

  /** The newest configuration (the members that must converge at the end). */
  get latestMembers(): ReplicaId[] {
    return this.epochs[this.epochs.length - 1]!.members;
  }

  fail(property: Property, detail: string): never {
    throw new Violation(property, detail);
  }

  /** A promised ballot that became durable at an acceptor. */
  durablePromise(node: ReplicaId, ballot: number): void {
    if (ballot > (this.promisedDurable.get(node) ?? 0)) this.promisedDurable.set(node, ballot);
  }

  /**
   * Persist before reply (SAFETY.md): a promise leaves only once its ballot is durable, an accept
   * reply only once the accepted (slot, ballot) is. Checked on the disk's state, not the core's
   * own bookkeeping, and at every reply: a lost vote breaks agreement only after a crash in the
   * write's window and a competing ballot, which seeds rarely combine.
   */
  replySent(node: ReplicaId, msg: Message): void {
    if (msg.type === 'promise') {
      const durable = this.promisedDurable.get(node) ?? 0;
      if (durable < msg.ballot) this.fail('persist-before-reply', `n${node} promised ballot ${msg.ballot} to n${msg.to}, but only ballot ${durable} is durable there`);
    } else if (msg.type === 'accepted') {
      if (!this.votes.has(`${node}/${msg.slot}/${msg.ballot}`)) {
        this.fail('persist-before-reply', `n${node} replied accepted for slot ${msg.slot} ballot ${msg.ballot} to n${msg.to} before that accept was durable`);
      }
    }
  }

  /** Entries that became durable at an acceptor. */
  durable(node: ReplicaId, entries: Entry[]): void {
    for (const e of entries) {
      this.durablePromise(node, e.ballot);
      // Which configuration governs slot s is fixed by the chosen log up to s - W. A vote (or a
      // learned value) beyond that was proposed or accepted while the slot's quorum was still open.
      if (e.slot > this.chosenPrefix + this.windowSlots) {
        this.fail('config-unfixed', `n${node} accepted slot ${e.slot} (ballot ${e.ballot}) while only slots up to ${this.chosenPrefix} were chosen: its configuration (fixed by slot ${e.slot - this.windowSlots}) was not yet decided (W ${this.windowSlots})`);
      }
      const key = valueKey(e.value);
      const vote = `${node}/${e.slot}/${e.ballot}`;
      const priorVote = this.votes.get(vote);
      if (priorVote !== undefined && priorVote !== key) {
        this.fail('acceptor-changed-vote', `n${node} accepted ${key} at slot ${e.slot} ballot ${e.ballot}, having accepted ${priorVote} there`);
      }
      this.votes.set(vote, key);
      let byBallot = this.ledger.get(e.slot);
      if (!byBallot) this.ledger.set(e.slot, (byBallot = new Map()));
      let byValue = byBallot.get(e.ballot);
      if (!byValue) byBallot.set(e.ballot, (byValue = new Map()));
      if (!byValue.has(key) && byValue.size > 0) {
        this.fail('unique-ballot-value', `slot ${e.slot} ballot ${e.ballot}: a second value ${key} beside ${[...byValue.keys()].join(' / ')} (n${node})`);
      }
      let voters = byValue.get(key);
      if (!voters) byValue.set(key, (voters = new Set()));
      voters.add(node);
      const members = this.membersAt(e.slot);
      let votes = 0;
      for (const m of members) if (voters.has(m)) votes++;
      if (votes * 2 > members.length) {
        const prior = this.chosen.get(e.slot);
        if (prior !== undefined && prior !== key) this.fail('agreement', `slot ${e.slot}: chosen ${prior}, then ${key} at ballot ${e.ballot}`);
        if (prior === undefined) {
          this.chosen.set(e.slot, key);
          if (e.slot > this.maxChosenSlot) this.maxChosenSlot = e.slot;
          if (e.value.kind === 'config') this.addEpoch(e.slot + this.windowSlots, e.value.members);
          while (this.chosen.has(this.chosenPrefix + 1)) this.chosenPrefix++;
        }
      }
    }
  }

  /** A configuration chosen at fromSlot - W: inserted in slot order (slots are chosen out of order). */
  private addEpoch(fromSlot: Slot, members: ReplicaId[]): void {
    let i = this.epochs.length;
    while (i > 1 && this.epochs[i - 1]!.fromSlot > fromSlot) i--;
    // One value per chosen slot (the agreement check above), so two epochs never share a first slot.
    if (this.epochs[i - 1]!.fromSlot === fromSlot && i > 1) this.fail('agreement', `two configurations chosen for slot ${fromSlot - this.windowSlots}`);
    if (i < this.epochs.length) this.configsOutOfOrder++;
    this.epochs.splice(i, 0, { fromSlot, members: [...members] });
  }

  /**
   * A replica's view of the configurations (its core's epochs) must agree with the chosen log for
   * every slot the replica can act on: up to its own chosen prefix + W (which quorum decides a
   * slot, whom to ask in Phase 1, whether it may campaign), and only where the chosen log has
   * fixed it (the checker's chosen prefix + W). Below its first epoch it holds nothing (pruned).
   */
  replicaConfigs(node: ReplicaId, view: readonly ConfigEpoch[], nodeChosenPrefix: Slot): void {
    if (view.length === 0) this.fail('config-view', `n${node} knows no configuration`);
    const lo = view[0]!.fromSlot;
    const hi = Math.min(nodeChosenPrefix, this.chosenPrefix) + this.windowSlots;
    if (hi < lo) return;
    const points = new Set<Slot>([lo]);
    for (const e of view) if (e.fromSlot > lo && e.fromSlot <= hi) points.add(e.fromSlot);
    for (const e of this.epochs) if (e.fromSlot > lo && e.fromSlot <= hi) points.add(e.fromSlot);
    // Both are constant between consecutive first slots: comparing at every boundary compares all.
    for (const slot of points) {
      const mine = membersIn(view, slot);
      const truth = this.membersAt(slot);
      if (mine.join(',') !== truth.join(',')) {
        this.fail('config-view', `n${node} takes slot ${slot} to be governed by [${mine.join(',')}], but the chosen log prescribes [${truth.join(',')}] (its chosen prefix ${nodeChosenPrefix}, W ${this.windowSlots})`);
      }
    }
  }

  /**
   * A replica took a notMember answer as news of its removal: the configuration it names must be
   * one the log chose (first slot and members alike), and must leave the replica out. (A later
   * chosen configuration may add it back: the replica drops the notice when it learns that one.)
   */
  removalNotice(node: ReplicaId, notice: RemovalNotice): void {
    const epoch = this.epochs.find((e) => e.fromSlot === notice.configFromSlot);
    const named = `[${notice.members.join(',')}] from slot ${notice.configFromSlot}`;
    if (epoch === undefined || epoch.members.join(',') !== notice.members.join(',')) {
      this.fail('removal-notice', `n${node} was told by n${notice.by} of configuration ${named}, which the chosen log does not hold`);
    }
    if (notice.members.includes(node)) this.fail('removal-notice', `n${node} took ${named}, which names it, as its removal`);
  }

  proposed(cmd: Command): void {
    this.proposedPayloads.set(commandKey(cmd), hexOf(cmd.payload));
  }

  /** Validity: only commands that clients proposed are ever chosen. */
  proposedCheck(cmd: Command): void {
    const p = this.proposedPayloads.get(commandKey(cmd));
    if (p === undefined || p !== hexOf(cmd.payload)) this.fail('validity', `command ${commandKey(cmd)} was never proposed with this payload`);
  }

  applied(node: ReplicaId, slot: Slot, key: string, hash: number): void {
    const chosen = this.chosen.get(slot);
    if (chosen === undefined) this.fail('applied-unchosen', `n${node} applied slot ${slot} (${key}) but no quorum durably accepted a value there`);
    if (chosen !== key) this.fail('applied-unchosen', `n${node} applied ${key} at slot ${slot}, but ${chosen} was chosen`);
    const prior = this.appliedKey.get(slot);
    if (prior === undefined) {
      this.appliedKey.set(slot, key);
      this.appliedHash.set(slot, hash);
      if (slot > this.maxAppliedSlot) this.maxAppliedSlot = slot;
      return;
    }
    if (prior !== key) this.fail('prefix', `n${node} applied ${key} at slot ${slot}, another replica applied ${prior}`);
    if (this.appliedHash.get(slot) !== hash) this.fail('prefix', `n${node}'s state after slot ${slot} differs from another replica's`);
  }

  acked(key: string, result: number, _atMs: number): void {
    const prior = this.acks.get(key);
    if (prior !== undefined && prior !== result) this.fail('at-most-once', `${key} acknowledged with ${prior} and later ${result}`);
    this.acks.set(key, result);
    this.ackedWrites++;
    if (result > this.ackedMaxResult) this.ackedMaxResult = result;
  }

  /** A read must observe every write acknowledged before it was invoked. */
  readInvoked(readId: number, _atMs: number): void {
    this.readBounds.set(readId, this.ackedMaxResult);
  }

  readCompleted(readId: number, observed: number, mode: string): void {
    const bound = this.readBounds.get(readId);
    this.readBounds.delete(readId);
    if (bound === undefined) return;
    this.readsChecked++;
    if (observed < bound) {
      this.fail('linearizable-read', `${mode} read ${readId} observed ${observed} commands, but the write that made it ${bound} was acknowledged before the read began`);
    }
  }

  /** Durability: after healing, every acknowledged write is executed, with its acknowledged result, everywhere. */
  finalNode(node: ReplicaId, executed: Map<string, number>): void {
    for (const [key, result] of this.acks) {
      const got = executed.get(key);
      if (got === undefined) this.fail('durability', `acknowledged write ${key} is missing at n${node}`);
      if (got !== result) this.fail('durability', `acknowledged write ${key} answered ${result} but n${node} executed it as ${got}`);
    }
  }
}

function membersIn(epochs: readonly ConfigEpoch[], slot: Slot): readonly ReplicaId[] {
  for (let i = epochs.length - 1; i > 0; i--) if (epochs[i]!.fromSlot <= slot) return epochs[i]!.members;
  return epochs[0]!.members;
}

function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}
