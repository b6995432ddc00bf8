// StateDigests: own and peers' digests of a slot are compared once both are known, in either order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StateDigests } from '../../src/runtime/state-digests.js';

test('own then peer, peer then own: each pair of a slot is compared once, and a difference is reported', () => {
  const d = new StateDigests();
  assert.equal(d.status(), null);
  assert.deepEqual(d.recordOwn(100, 7), []);
  assert.equal(d.recordPeer(2, 100, 7), null);
  assert.deepEqual(d.recordPeer(3, 100, 8), { slot: 100, peer: 3, mine: 7, theirs: 8 });
  assert.equal(d.recordPeer(3, 100, 8), null, 'a repeat is not compared again');
  assert.deepEqual(d.status(), { slot: 100, digest: '00000007', agree: [2], differ: [3] });
  // A peer ahead: kept until this replica digests that slot.
  assert.equal(d.recordPeer(2, 200, 0xdeadbeef), null);
  assert.deepEqual(d.recordOwn(200, 1), [{ slot: 200, peer: 2, mine: 1, theirs: 0xdeadbeef }]);
  assert.deepEqual(d.status(), { slot: 200, digest: '00000001', agree: [], differ: [2] });
  assert.equal(d.compared, 3);
  assert.equal(d.mismatches, 2);
  d.retain(new Set([3]));
  assert.deepEqual(d.status(), { slot: 200, digest: '00000001', agree: [], differ: [] });
});

test('only the newest few slots are kept per replica', () => {
  const d = new StateDigests(2);
  d.recordPeer(2, 1, 5);
  d.recordPeer(2, 2, 5);
  d.recordPeer(2, 3, 5); // slot 1 goes
  assert.deepEqual(d.recordOwn(1, 6), [], 'slot 1 of the peer was dropped: nothing to compare');
  assert.deepEqual(d.recordOwn(3, 6), [{ slot: 3, peer: 2, mine: 6, theirs: 5 }]);
});

test('property: the mismatches reported are exactly the slots where two replicas both digested and differ', () => {
  // Slots 1..6, replicas 1 (this one), 2, 3; each replica digests a slot or not; digests from a small set.
  const events = fc.array(fc.record({ who: fc.constantFrom(1, 2, 3), slot: fc.integer({ min: 1, max: 6 }), digest: fc.integer({ min: 0, max: 2 }) }), { maxLength: 40 });
  fc.assert(
    fc.property(events, (evs) => {
      const d = new StateDigests(100);
      const reported = new Set<string>();
      // The model: the first digest each replica gave for each slot (later different ones would be a replica contradicting itself: not generated).
      const first = new Map<string, number>();
      for (const e of evs) {
        const k = `${e.who}/${e.slot}`;
        if (first.has(k)) continue;
        first.set(k, e.digest);
        if (e.who === 1) for (const m of d.recordOwn(e.slot, e.digest)) reported.add(`${m.peer}/${m.slot}`);
        else {
          const m = d.recordPeer(e.who, e.slot, e.digest);
          if (m !== null) reported.add(`${m.peer}/${m.slot}`);
        }
      }
      const expected = new Set<string>();
      for (const peer of [2, 3]) {
        for (let slot = 1; slot <= 6; slot++) {
          const mine = first.get(`1/${slot}`);
          const theirs = first.get(`${peer}/${slot}`);
          if (mine !== undefined && theirs !== undefined && mine !== theirs) expected.add(`${peer}/${slot}`);
        }
      }
      assert.deepEqual([...reported].sort(), [...expected].sort());
      assert.equal(d.mismatches, expected.size);
    }),
  );
});
