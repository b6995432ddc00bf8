import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Checker } from '../../src/sim/checker.js';
import type { Entry, Value } from '../../src/core/types.js';
import { randomSimOptions } from '../../src/sim/options.js';
import { Simulation } from '../../src/sim/simulation.js';
import { codecWire } from '../../src/sim/wire.js';
import { simulate } from './helpers.js';

// Seeds that failed outside the soaked ranges (docs/testing.md, "Seeds that failed"), replayed.

test('seed 50529: two configuration values chosen out of slot order are one chosen log, not a violation', () => {
  // Slots 13 and 15 (W 4) both hold config [1,3,4,5]: 15 was proposed by a leader cut off with a
  // minority, 13 by the next leader, whose Phase 1 quorum did not include slot 15's acceptors; a
  // third leader recovered both. Slot 15 was chosen first. The checker used to append epochs in
  // the order it saw them chosen and reported "configuration chosen out of order".
  const r = simulate(50529);
  assert.ok(r.ok, r.violation?.message);
  assert.ok(r.configsOutOfOrder >= 1, 'the seed still chooses a configuration after one at a higher slot');
});

test('seed 55228: a replica catching up after a pause does not start a catch-up storm', () => {
  // Stale and duplicated catch-up replies each started one more request/reply chain: over 2
  // million events by t = 3.2 s. Fixed in the core (a reply asks again at once only if it advanced
  // the chosen prefix); a healthy run of this seed takes a few tens of thousands of events.
  const r = simulate(55228);
  assert.ok(r.ok, r.violation?.message);
  assert.ok(r.steps < 200_000, `${r.steps} events`);
});

test('seed 247275: a catch-up of a value held at another ballot does not trip the vote-durability contract', () => {
  // n2, paused, accepted slot 109 at ballot 2053 and again at 3073 (the same no-op), then learned it
  // chosen at 2053 and rewrote the cell at 2053 in a third write: when the first became durable its
  // vote left (rightly), and the contract saw a pending write under it. Found by a 10,000-seed soak
  // (session 23); the core now flags a held value chosen without a write.
  const r = simulate(247275);
  assert.ok(r.ok, r.violation?.message);
});

test('seed 335: a replica removed while cut off takes a member\'s notMember answer, and the checker finds it named a chosen configuration without it', () => {
  // Not a failure: seeds 1-300 of npm test take no removal notice, this one does (one in a few
  // hundred seeds do), so the checker's removal-notice rule runs in every test run.
  const r = simulate(335);
  assert.ok(r.ok, r.violation?.message);
  assert.ok(r.removalsNoticed >= 1, `${r.notMemberDelivered} notMember answers delivered, ${r.removalsNoticed} taken`);
});

const W = 4;
const config = (...members: number[]): Value => ({ kind: 'config', members });
const noop: Value = { kind: 'noop' };
const at = (slot: number, value: Value, ballot = 1): Entry => ({ slot, ballot, value, chosen: false });

/** The slots chosen, in this order (n1 and n2: a quorum of [1,2,3] at ballot 1), with the given values. */
function choose(c: Checker, values: Map<number, Value>, slots: number[]): void {
  for (const s of slots) for (const node of [1, 2]) c.durable(node, [at(s, values.get(s) ?? noop)]);
}

test('checker: configurations chosen out of slot order are ordered by slot; replicas are held to that order', () => {
  const c = new Checker([1, 2, 3], W);
  const values = new Map<number, Value>([[5, config(1, 2)], [7, config(2, 3)]]);
  choose(c, values, [1, 2, 3, 4, 7]); // slot 7 (governs from 11) is chosen before slot 5 (from 9)
  choose(c, values, [5, 6]);
  assert.equal(c.configsOutOfOrder, 1);
  assert.deepEqual([c.membersAt(8), c.membersAt(9), c.membersAt(10), c.membersAt(11)], [[1, 2, 3], [1, 2], [1, 2], [2, 3]]);
  const truth = [{ fromSlot: 1, members: [1, 2, 3] }, { fromSlot: 9, members: [1, 2] }, { fromSlot: 11, members: [2, 3] }];
  c.replicaConfigs(1, truth, 7);
  // A replica that knows slots 1..7 chosen but applied the configurations in the order noticed
  // (the second one only), or that lets the first govern at once, is reported.
  assert.throws(() => c.replicaConfigs(2, [truth[0]!, truth[2]!], 7), { name: 'Violation', message: /config-view: n2 takes slot 9 to be governed by \[1,2,3\]/ });
  assert.throws(() => c.replicaConfigs(3, [truth[0]!, { fromSlot: 6, members: [1, 2] }, truth[2]!], 7), /config-view: n3 takes slot 6/);
  // A replica that knows less is held only to what it can act on (its chosen prefix + W).
  c.replicaConfigs(2, [truth[0]!], 4);
});

test('checker: a removal notice must name a configuration the log chose, without the replica told', () => {
  const c = new Checker([1, 2, 3], W);
  choose(c, new Map([[2, config(1, 2)]]), [1, 2, 3]); // [1, 2] chosen at 2, governs from 6
  c.removalNotice(3, { configFromSlot: 6, members: [1, 2], by: 1 });
  assert.throws(() => c.removalNotice(3, { configFromSlot: 7, members: [1, 2], by: 1 }), { name: 'Violation', message: /removal-notice: n3 was told by n1 of configuration \[1,2\] from slot 7, which the chosen log does not hold/ });
  assert.throws(() => c.removalNotice(3, { configFromSlot: 6, members: [2, 1], by: 2 }), /which the chosen log does not hold/);
  assert.throws(() => c.removalNotice(2, { configFromSlot: 6, members: [1, 2], by: 1 }), /removal-notice: n2 took \[1,2\] from slot 6, which names it, as its removal/);
});

test('checker: a vote in slot s before slot s - W is chosen is reported (its configuration was not fixed)', () => {
  const c = new Checker([1, 2, 3], W);
  choose(c, new Map(), [1, 2]);
  c.durable(3, [at(2 + W, noop)]); // inside the window: fine
  assert.throws(() => c.durable(3, [at(3 + W, noop)]), { name: 'Violation', message: /config-unfixed: n3 accepted slot 7/ });
});

test('seed 50529 with different member sets: the configuration at the higher slot supersedes the other, on every replica alike', async () => {
  // What docs/protocol.md states: "one change at a time" is a per-leader rule. A deposed leader's
  // change (n4, slot 15, proposed while cut off with a minority) and the next leader's (n1, slot
  // 13, whose Phase 1 quorum missed slot 15) are both chosen; each governs from its slot + W, so
  // n1's change governs slots 17-18 and n4's from 19. Safe (every replica agrees, checked after
  // every input), but n1's change is superseded. Here n4 asks for [1,2,3,4] instead of the
  // seed's [1,3,4,5] (the same random draws otherwise).
  const { Replica } = await import('../../src/core/replica.js');
  const original = Replica.prototype.proposeConfig;
  Replica.prototype.proposeConfig = function (this: InstanceType<typeof Replica>, members, nowMs) {
    return original.call(this, this.id === 4 ? [1, 2, 3, 4] : members, nowMs);
  };
  try {
    const sim = new Simulation(randomSimOptions(50529, { wireCodec: true }), false, codecWire);
    const r = sim.run();
    assert.ok(r.ok, r.violation?.message);
    assert.equal(r.configsOutOfOrder, 1);
    // Read from the chosen log (the checker's, derived from durable accepts), not from the final
    // leader's epochs: compaction prunes those, and how far it has got at the end depends on the
    // run's exact course (commit notices to replicas of superseded configurations changed it).
    const checker = (sim as unknown as { checker: Checker }).checker;
    assert.deepEqual([16, 17, 18, 19].map((slot) => checker.membersAt(slot).join(',')), ['1,2,3,4,5', '1,3,4,5', '1,3,4,5', '1,2,3,4']);
  } finally {
    Replica.prototype.proposeConfig = original;
  }
});

test('checker: a reply that votes must find its vote durable (a promise counts a ballot in the log too)', () => {
  const c = new Checker([1, 2, 3], W);
  const promise = (ballot: number) => ({ type: 'promise' as const, from: 1, to: 2, ballot, fromSlot: 1, entries: [], chosenPrefix: 0, logStart: 1 });
  const accepted = (slot: number, ballot: number) => ({ type: 'accepted' as const, from: 1, to: 2, ballot, slot });
  assert.throws(() => c.replySent(1, promise(5)), { name: 'Violation', message: /persist-before-reply: n1 promised ballot 5 to n2, but only ballot 0 is durable/ });
  c.durablePromise(1, 5);
  c.replySent(1, promise(5));
  assert.throws(() => c.replySent(1, promise(6)), /only ballot 5 is durable/);
  assert.throws(() => c.replySent(1, accepted(3, 7)), /persist-before-reply: n1 replied accepted for slot 3 ballot 7/);
  c.durable(1, [at(3, noop, 7)]); // an accept at ballot 7 is durable: so is a promise of 7 (recovery takes the log's maximum)
  c.replySent(1, accepted(3, 7));
  c.replySent(1, promise(7));
  assert.throws(() => c.replySent(1, accepted(3, 6)), /slot 3 ballot 6/, 'the ballot must match, not just the slot');
  assert.throws(() => c.replySent(2, accepted(3, 7)), /n2 replied accepted/, 'and the node');
});
