import type { ConfigEpoch, ReplicaId, Slot } from './types.js';

/**
 * The history of configurations. Rule (docs/protocol.md): a configuration chosen at slot i
 * governs slots from i + W. Epochs are kept in fromSlot order; the first governs from slot 1
 * (or from the snapshot). Old epochs are pruned once every slot they govern is chosen.
 */
export class Membership {
  private epochs: ConfigEpoch[];

  constructor(epochs: ConfigEpoch[]) {
    if (epochs.length === 0) throw new Error('membership needs at least one configuration');
    this.epochs = epochs.map((e) => ({ fromSlot: e.fromSlot, members: [...e.members] }));
    for (let i = 1; i < this.epochs.length; i++) {
      if (this.epochs[i]!.fromSlot <= this.epochs[i - 1]!.fromSlot) throw new Error('configuration epochs out of order');
    }
  }

  /** The members whose quorum decides `slot`. */
  membersAt(slot: Slot): ReplicaId[] {
    for (let i = this.epochs.length - 1; i > 0; i--) {
      if (this.epochs[i]!.fromSlot <= slot) return this.epochs[i]!.members;
    }
    return this.epochs[0]!.members;
  }

  /** Every configuration that governs some slot >= `slot` (the current one and all pending ones). */
  epochsFrom(slot: Slot): ConfigEpoch[] {
    let first = 0;
    for (let i = this.epochs.length - 1; i > 0; i--) {
      if (this.epochs[i]!.fromSlot <= slot) {
        first = i;
        break;
      }
    }
    return this.epochs.slice(first);
  }

  /** Union of members of every epoch that governs some slot >= `slot`. */
  peersFrom(slot: Slot): ReplicaId[] {
    const all = new Set<ReplicaId>();
    for (const e of this.epochsFrom(slot)) for (const m of e.members) all.add(m);
    return [...all].sort((a, b) => a - b);
  }

  /**
   * Union of members of every configuration held, superseded ones included until pruned: the
   * replicas a leader's commit notices go to, so that one a change removed hears the commit that
   * made the change govern (else it stays below it, takes itself for a member and campaigns).
   */
  allPeers(): ReplicaId[] {
    const all = new Set<ReplicaId>();
    for (const e of this.epochs) for (const m of e.members) all.add(m);
    return [...all].sort((a, b) => a - b);
  }

  isKnown(id: ReplicaId): boolean {
    return this.epochs.some((e) => e.members.includes(id));
  }

  /** True when `voters` holds a majority of every epoch that governs some slot >= `slot`. */
  hasQuorumFrom(slot: Slot, voters: ReadonlySet<ReplicaId>): boolean {
    for (const e of this.epochsFrom(slot)) if (!isMajority(e.members, voters)) return false;
    return true;
  }

  /** The latest epoch's first slot: a new change may be proposed only once this is chosen past. */
  get latestFromSlot(): Slot {
    return this.epochs[this.epochs.length - 1]!.fromSlot;
  }

  /** The latest configuration held (chosen; it may not govern yet). */
  get latest(): Readonly<ConfigEpoch> {
    return this.epochs[this.epochs.length - 1]!;
  }

  add(epoch: ConfigEpoch): void {
    if (epoch.fromSlot <= this.latestFromSlot) throw new Error('configuration epochs must be added in order');
    this.epochs.push({ fromSlot: epoch.fromSlot, members: [...epoch.members] });
  }

  /**
   * Drop epochs wholly below `slot` (keeps the one governing it). Returns the replicas that were
   * members of a dropped epoch and of no kept one: those a change removed, forgotten from here on.
   */
  pruneBelow(slot: Slot): ReplicaId[] {
    const dropped = new Set<ReplicaId>();
    while (this.epochs.length > 1 && this.epochs[1]!.fromSlot <= slot) {
      for (const m of this.epochs.shift()!.members) dropped.add(m);
    }
    for (const e of this.epochs) for (const m of e.members) dropped.delete(m);
    return [...dropped].sort((a, b) => a - b);
  }

  snapshot(): ConfigEpoch[] {
    return this.epochs.map((e) => ({ fromSlot: e.fromSlot, members: [...e.members] }));
  }
}

export function isMajority(members: readonly ReplicaId[], voters: ReadonlySet<ReplicaId>): boolean {
  let votes = 0;
  for (const m of members) if (voters.has(m)) votes++;
  return votes * 2 > members.length;
}
