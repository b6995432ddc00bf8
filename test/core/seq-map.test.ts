// SeqMap against a Map: the same answers for any sequence of operations (keys near a sliding
// window, as a client's requests, and anywhere, as a misbehaving one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeqMap } from '../../src/core/seq-map.js';

type Op = { kind: 'set'; key: number; value: number } | { kind: 'delete'; key: number } | { kind: 'deleteBelow'; key: number } | { kind: 'get'; key: number };

function check(ops: Op[]): void {
  const m = new SeqMap<number>();
  const ref = new Map<number, number>();
  for (const op of ops) {
    if (op.kind === 'set') {
      m.set(op.key, op.value);
      ref.set(op.key, op.value);
    } else if (op.kind === 'delete') {
      assert.equal(m.delete(op.key), ref.delete(op.key));
    } else if (op.kind === 'deleteBelow') {
      const got: number[] = [];
      m.deleteBelow(op.key, (v) => got.push(v));
      const expected: number[] = [];
      for (const [k, v] of [...ref]) {
        if (k >= op.key) continue;
        ref.delete(k);
        expected.push(v);
      }
      assert.deepEqual(got.sort((a, b) => a - b), expected.sort((a, b) => a - b), 'deleteBelow hands over exactly the values it deletes');
    }
    assert.equal(m.get(op.key), ref.get(op.key));
    assert.equal(m.size, ref.size);
  }
  assert.deepEqual(m.entries(), [...ref].sort((a, b) => a[0] - b[0]));
  for (const [k, v] of ref) assert.equal(m.get(k), v);
}

/** Keys that mostly slide upwards (a client's seqs), sometimes jump far (either way). */
const slidingOps = fc.array(
  fc.tuple(fc.constantFrom('set', 'set', 'set', 'delete', 'deleteBelow', 'get'), fc.integer({ min: -40, max: 70 }), fc.integer({ min: 0, max: 20 }), fc.nat(1000)),
  { maxLength: 400 },
).map((steps) => {
  let top = 1_000;
  return steps.map(([kind, delta, jump, value]): Op => {
    if (jump === 0) top += 70_000; // far ahead: beyond the largest ring (65,536 keys)
    if (jump === 1) top = Math.max(0, top - 70_000);
    const key = Math.max(0, top + delta);
    if (kind === 'set') top++;
    return kind === 'set' ? { kind, key, value } : { kind: kind as 'delete' | 'deleteBelow' | 'get', key };
  });
});

test('SeqMap answers as a Map (sliding keys with jumps)', () => {
  fc.assert(fc.property(slidingOps, check), { numRuns: 500 });
});

test('SeqMap answers as a Map (any keys)', () => {
  const anyOps = fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('set' as const), key: fc.nat(200_000), value: fc.nat() }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.nat(200_000) }),
      fc.record({ kind: fc.constant('deleteBelow' as const), key: fc.nat(200_000) }),
    ),
    { maxLength: 300 },
  );
  fc.assert(fc.property(anyOps, check), { numRuns: 300 });
});

test('SeqMap: keys above 2^32 (seqs are safe integers)', () => {
  const base = 2 ** 40 + 7;
  const ops: Op[] = [];
  for (let i = 0; i < 300; i++) ops.push({ kind: 'set', key: base + i, value: i }, { kind: 'deleteBelow', key: base + i - 64 });
  ops.push({ kind: 'set', key: 2 ** 52, value: 1 }, { kind: 'delete', key: base + 299 });
  check(ops);
});

test('SeqMap: a ring left sparse after a burst shrinks', () => {
  const m = new SeqMap<number>();
  for (let k = 1; k <= 1000; k++) m.set(k, k);
  m.deleteBelow(1000);
  assert.equal(m.size, 1);
  assert.ok((m as unknown as { ring: unknown[] }).ring.length <= 64, 'the ring was cut back');
  assert.equal(m.get(1000), 1000);
});

test('SeqMap: a ring it leaves (grown or cut back) keeps no value (old garbage a scavenge still reads would promote them)', () => {
  const m = new SeqMap<object>();
  const ringOf = () => (m as unknown as { ring: unknown[] }).ring;
  for (let k = 1; k <= 8; k++) m.set(k, { k });
  const small = ringOf();
  for (let k = 9; k <= 1000; k++) m.set(k, { k }); // grows
  assert.notEqual(ringOf(), small);
  assert.ok(small.every((v) => v === undefined), 'the ring left behind by growth is empty');
  const large = ringOf();
  m.deleteBelow(1000); // cut back
  assert.notEqual(ringOf(), large);
  assert.ok(large.every((v) => v === undefined), 'the ring left behind by a cut back is empty');
  assert.deepEqual(m.get(1000), { k: 1000 });
});

test('SeqMap: a ring of up to 64 slots is kept when a window empties and refills (no cut back and regrowth per burst)', () => {
  const m = new SeqMap<number>();
  const ringOf = () => (m as unknown as { ring: unknown[] }).ring;
  let top = 0;
  for (let k = 0; k < 40; k++) m.set(++top, top);
  const ring = ringOf();
  assert.equal(ring.length, 64);
  for (let burst = 0; burst < 20; burst++) {
    m.deleteBelow(top); // all answered but the last
    for (let k = 0; k < 40; k++) m.set(++top, top);
    assert.equal(ringOf(), ring, `burst ${burst}: the same ring`);
  }
  assert.equal(m.size, 41);
});

test('SeqMap: a client window wider than the largest ring (far keys are swept and moved into the ring)', () => {
  // The kept keys are exactly [max(floor, 1), seq]: the reference is arithmetic.
  for (const window of [4_097, 65_535, 65_537, 90_000]) {
    const m = new SeqMap<number>();
    let floor = 0;
    for (let seq = 1; seq <= 250_000; seq++) {
      m.set(seq, seq * 2);
      // The client's floor lags its newest request by about the window, and sometimes stalls.
      const next = seq - window - (seq % 7 === 0 ? 50 : 0);
      if (next > floor) {
        floor = next;
        m.deleteBelow(floor);
      }
      if (seq % 9_973 === 0) {
        const lowest = Math.max(floor, 1);
        assert.equal(m.size, seq - lowest + 1, `window ${window}, seq ${seq}`);
        assert.equal(m.get(lowest), lowest * 2);
        assert.equal(m.get(seq), seq * 2);
        assert.equal(m.get(lowest - 1), undefined);
      }
    }
    const lowest = Math.max(floor, 1);
    assert.deepEqual(m.entries(), Array.from({ length: 250_000 - lowest + 1 }, (_, i) => [lowest + i, (lowest + i) * 2]));
  }
});
