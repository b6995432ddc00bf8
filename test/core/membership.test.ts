import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Membership, isMajority } from '../../src/core/membership.js';
import type { ConfigEpoch, ReplicaId, Slot } from '../../src/core/types.js';

const SEED = 0x3e3b;
const RUNS = 1000;

// ---------------------------------------------------------------- dumb references

/** Majority by the definition: strictly more than half of the members voted. */
function refMajority(members: readonly ReplicaId[], voters: ReadonlySet<ReplicaId>): boolean {
  const yes = members.filter((m) => voters.has(m)).length;
  return yes >= Math.floor(members.length / 2) + 1;
}

/** The epoch deciding `slot`: the latest one starting at or before it (the first one below all). */
function refMembersAt(epochs: readonly ConfigEpoch[], slot: Slot): ReplicaId[] {
  let found = epochs[0]!;
  for (const e of epochs) if (e.fromSlot <= slot) found = e;
  return found.members;
}

/** Quorum from `slot` up, slot by slot: a majority of whoever decides each slot. */
function refQuorumFrom(epochs: readonly ConfigEpoch[], slot: Slot, voters: ReadonlySet<ReplicaId>): boolean {
  const last = epochs[epochs.length - 1]!.fromSlot;
  for (let s = slot; s <= Math.max(slot, last); s++) if (!refMajority(refMembersAt(epochs, s), voters)) return false;
  return true;
}

// ---------------------------------------------------------------- arbitraries

const memberSet = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 7 });

/** 1..5 epochs at strictly increasing fromSlots, the first from slot 1. */
const epochsArb = fc
  .tuple(memberSet, fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), memberSet), { maxLength: 4 }))
  .map(([first, rest]) => {
    const epochs: ConfigEpoch[] = [{ fromSlot: 1, members: first }];
    let from = 1;
    for (const [gap, members] of rest) {
      from += gap;
      epochs.push({ fromSlot: from, members });
    }
    return epochs;
  });

const voterSet = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 9 }).map((v) => new Set(v));
const slotArb = fc.integer({ min: 1, max: 30 });

// ---------------------------------------------------------------- properties

test('isMajority agrees with a dumb count (quorum quick-check)', () => {
  fc.assert(
    fc.property(memberSet, voterSet, (members, voters) => {
      assert.equal(isMajority(members, voters), refMajority(members, voters));
    }),
    { seed: SEED, numRuns: 5000 },
  );
  // Fixed points: 2 of 3, 2 of 4 (not), 3 of 4, 1 of 1, 0 of 1 (not), voters that are not members.
  assert.equal(isMajority([1, 2, 3], new Set([1, 3])), true);
  assert.equal(isMajority([1, 2, 3, 4], new Set([1, 2])), false);
  assert.equal(isMajority([1, 2, 3, 4], new Set([1, 2, 4])), true);
  assert.equal(isMajority([5], new Set([5])), true);
  assert.equal(isMajority([5], new Set()), false);
  assert.equal(isMajority([1, 2, 3], new Set([1, 7, 8, 9])), false);
});

test('membersAt picks the latest epoch starting at or before the slot (reference)', () => {
  fc.assert(
    fc.property(epochsArb, slotArb, (epochs, slot) => {
      assert.deepEqual(new Membership(epochs).membersAt(slot), refMembersAt(epochs, slot));
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('epochsFrom(slot) is exactly the epochs that decide some slot >= slot', () => {
  fc.assert(
    fc.property(epochsArb, slotArb, (epochs, slot) => {
      const got = new Membership(epochs).epochsFrom(slot);
      const last = epochs[epochs.length - 1]!.fromSlot;
      const deciding = new Set<ConfigEpoch>();
      for (let s = slot; s <= Math.max(slot, last); s++) {
        deciding.add(epochs.find((e) => e.members === refMembersAt(epochs, s))!);
      }
      assert.deepEqual(
        got.map((e) => e.fromSlot),
        epochs.filter((e) => deciding.has(e)).map((e) => e.fromSlot),
      );
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('hasQuorumFrom agrees with a slot-by-slot reference (quick-check)', () => {
  fc.assert(
    fc.property(epochsArb, slotArb, voterSet, (epochs, slot, voters) => {
      assert.equal(new Membership(epochs).hasQuorumFrom(slot, voters), refQuorumFrom(epochs, slot, voters));
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

test('hasQuorumFrom needs a majority of the current and of every pending configuration (joint quorum)', () => {
  const m = new Membership([
    { fromSlot: 1, members: [1, 2, 3] },
    { fromSlot: 10, members: [3, 4, 5] },
  ]);
  assert.equal(m.hasQuorumFrom(5, new Set([1, 2])), false, 'old majority alone is not enough while a change is pending');
  assert.equal(m.hasQuorumFrom(5, new Set([4, 5])), false, 'new majority alone is not enough either');
  assert.equal(m.hasQuorumFrom(5, new Set([1, 3, 4])), true);
  assert.equal(m.hasQuorumFrom(10, new Set([4, 5])), true, 'from slot 10 only the new configuration decides');
  assert.equal(m.hasQuorumFrom(10, new Set([1, 2])), false);
  assert.deepEqual(m.peersFrom(5), [1, 2, 3, 4, 5]);
  assert.deepEqual(m.peersFrom(10), [3, 4, 5]);
});

test('pruneBelow drops only epochs wholly below the slot and changes no decision at or above it', () => {
  fc.assert(
    fc.property(epochsArb, slotArb, slotArb, voterSet, (epochs, pruneAt, probe, voters) => {
      const m = new Membership(epochs);
      m.pruneBelow(pruneAt);
      const kept = m.snapshot();
      // What remains: the epoch governing pruneAt and every later one.
      const expected = epochs.filter((e, i) => i === epochs.length - 1 || epochs[i + 1]!.fromSlot > pruneAt);
      assert.deepEqual(kept, expected);
      const s = Math.max(pruneAt, probe);
      assert.deepEqual(m.membersAt(s), refMembersAt(epochs, s));
      assert.equal(m.hasQuorumFrom(s, voters), refQuorumFrom(epochs, s, voters));
    }),
    { seed: SEED, numRuns: RUNS },
  );
  const m = new Membership([
    { fromSlot: 1, members: [1, 2, 3] },
    { fromSlot: 5, members: [1, 2] },
    { fromSlot: 9, members: [2, 3] },
  ]);
  m.pruneBelow(4);
  assert.equal(m.snapshot().length, 3, 'slot 4 is still governed by the first epoch');
  m.pruneBelow(5);
  assert.deepEqual(m.snapshot().map((e) => e.fromSlot), [5, 9]);
  m.pruneBelow(100);
  assert.deepEqual(m.snapshot(), [{ fromSlot: 9, members: [2, 3] }]);
  m.pruneBelow(1000);
  assert.equal(m.snapshot().length, 1, 'the last epoch is never pruned');
});

test('add, isKnown, latestFromSlot, and the membership copies its inputs', () => {
  const members = [1, 2, 3];
  const m = new Membership([{ fromSlot: 1, members }]);
  members.push(99);
  assert.deepEqual(m.membersAt(1), [1, 2, 3], 'constructor copied the members');
  assert.equal(m.isKnown(99), false);
  assert.equal(m.latestFromSlot, 1);
  m.add({ fromSlot: 8, members: [2, 3, 4] });
  assert.equal(m.latestFromSlot, 8);
  assert.equal(m.isKnown(4), true);
  assert.equal(m.isKnown(5), false);
  assert.throws(() => m.add({ fromSlot: 8, members: [1] }), /in order/);
  assert.throws(() => m.add({ fromSlot: 3, members: [1] }), /in order/);
  const snap = m.snapshot();
  snap[0]!.members.push(42);
  assert.deepEqual(m.membersAt(1), [1, 2, 3], 'snapshot is a copy');
  assert.throws(() => new Membership([]), /at least one/);
  assert.throws(
    () => new Membership([{ fromSlot: 5, members: [1] }, { fromSlot: 5, members: [2] }]),
    /out of order/,
  );
});
