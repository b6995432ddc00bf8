// Cross-replica state digests (SAFETY.md, "Simulator fidelity": replicas periodically hash their
// applied state at a slot, and the runtime compares them across replicas as a metric and alarm).
//
// Every replica that applies a digest slot (a multiple of `stateDigestIntervalSlots`) hashes the
// replicated state it holds after that slot and sends (slot, digest) to its peers. This table keeps
// the last few digests of its own and of each peer, and compares two as soon as both sides of a
// slot are known, whichever came first. Equal slots only: a replica that skipped a slot (busy with
// a snapshot, or it installed a snapshot past it) is simply not compared there.
//
// Pure bookkeeping: no I/O, no clock. The runtime computes, sends, logs and counts.

import type { ReplicaId, Slot } from '../core/types.js';

/** Two replicas' digests of one slot that differ: their applied states diverged at or before it. */
export interface DigestMismatch {
  slot: Slot;
  peer: ReplicaId;
  mine: number;
  theirs: number;
}

export interface StateDigestStatus {
  /** The newest slot this replica digested, its digest (8 hex digits), and the peers compared with it. */
  slot: Slot;
  digest: string;
  /** Peers whose digest of that slot is the same. */
  agree: ReplicaId[];
  /** Peers whose digest of that slot differs. */
  differ: ReplicaId[];
}

/** Digests kept per replica: enough for a peer a few digest slots ahead or behind. */
export const DIGESTS_KEPT = 8;

export class StateDigests {
  /** slot -> digest, oldest first (Map keeps insertion order; slots come in ascending order). */
  private readonly own = new Map<Slot, number>();
  private readonly peers = new Map<ReplicaId, Map<Slot, number>>();
  /** Comparisons made, and how many of them differed (cumulative). */
  compared = 0;
  mismatches = 0;

  constructor(private readonly kept = DIGESTS_KEPT) {}

  /** This replica's digest of `slot`. Returns the peers already known to differ there. */
  recordOwn(slot: Slot, digest: number): DigestMismatch[] {
    remember(this.own, slot, digest, this.kept);
    const out: DigestMismatch[] = [];
    for (const [peer, theirs] of this.peers) {
      const d = theirs.get(slot);
      if (d !== undefined && this.compare(digest, d)) out.push({ slot, peer, mine: digest, theirs: d });
    }
    return out;
  }

  /** A peer's digest of `slot`. Returns the mismatch if this replica's digest of it is known and differs. */
  recordPeer(peer: ReplicaId, slot: Slot, digest: number): DigestMismatch | null {
    let theirs = this.peers.get(peer);
    if (theirs === undefined) this.peers.set(peer, (theirs = new Map()));
    if (theirs.get(slot) === digest) return null; // a repeat (a peer re-digests a slot after a restart): compared already
    remember(theirs, slot, digest, this.kept);
    const mine = this.own.get(slot);
    if (mine === undefined) return null;
    return this.compare(mine, digest) ? { slot, peer, mine, theirs: digest } : null;
  }

  /** Keeps only these peers' digests (a replica that left the configuration is forgotten). */
  retain(peers: ReadonlySet<ReplicaId>): void {
    for (const peer of [...this.peers.keys()]) if (!peers.has(peer)) this.peers.delete(peer);
  }

  /** The newest own digest and how the peers' digests of that slot compare, or null before the first. */
  status(): StateDigestStatus | null {
    let slot = -1;
    for (const s of this.own.keys()) slot = Math.max(slot, s);
    if (slot < 0) return null;
    const digest = this.own.get(slot)!;
    const agree: ReplicaId[] = [];
    const differ: ReplicaId[] = [];
    for (const [peer, theirs] of this.peers) {
      const d = theirs.get(slot);
      if (d === undefined) continue;
      (d === digest ? agree : differ).push(peer);
    }
    agree.sort((a, b) => a - b);
    differ.sort((a, b) => a - b);
    return { slot, digest: hex(digest), agree, differ };
  }

  /** Counts one comparison; true if the digests differ. */
  private compare(a: number, b: number): boolean {
    this.compared++;
    if (a === b) return false;
    this.mismatches++;
    return true;
  }
}

export const hex = (digest: number) => (digest >>> 0).toString(16).padStart(8, '0');

/** Sets slot -> digest, keeping the `kept` highest slots. */
function remember(m: Map<Slot, number>, slot: Slot, digest: number, kept: number): void {
  m.set(slot, digest);
  if (m.size <= kept) return;
  let lowest = Infinity;
  for (const s of m.keys()) lowest = Math.min(lowest, s);
  m.delete(lowest);
}
