import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeqWindow } from '../../src/core/seq-window.js';

// The model: the floor is the lowest unsettled seq, or the last one issued when all are settled.
function modelFloor(unsettled: Set<number>, last: number): number {
  let low = last === 0 ? 1 : last;
  for (const s of unsettled) if (s < low) low = s;
  return low;
}

test('floor() is the lowest unsettled seq (or the last issued) after any issues and settles', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constant(-1), fc.nat({ max: 1_000 })), { maxLength: 400 }), (ops) => {
      const w = new SeqWindow();
      const unsettled = new Set<number>();
      let last = 0;
      for (const op of ops) {
        if (op < 0) {
          const seq = w.next();
          assert.equal(seq, ++last);
          w.add(seq);
          unsettled.add(seq);
        } else if (unsettled.size > 0) {
          const seq = [...unsettled][op % unsettled.size]!;
          w.delete(seq);
          unsettled.delete(seq);
        }
        assert.equal(w.floor(), modelFloor(unsettled, last));
      }
    }),
    { numRuns: 300 },
  );
});

test('a window wider than the ring: the first seq held while 70,000 more come and go', () => {
  const w = new SeqWindow();
  const first = w.next();
  w.add(first);
  for (let i = 0; i < 70_000; i++) {
    const seq = w.next();
    w.add(seq);
    if (i % 3 !== 0) w.delete(seq);
    assert.equal(w.floor(), first);
  }
  w.delete(first);
  // Now the lowest unsettled is the first seq issued in the loop that was kept (i = 0: seq 2).
  assert.equal(w.floor(), 2);
  for (let seq = 2; seq <= 70_001; seq++) w.delete(seq);
  assert.equal(w.floor(), 70_001);
});
