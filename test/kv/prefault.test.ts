import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prefaulter } from '../../src/kv/prefault.js';

// The arrays are filled with 0xff here (the contract wants zeros) only to see which bytes step()
// writes: a touched page has a 0 at its first byte.
const touchedAt = (a: Uint8Array) => [...a.keys()].filter((i) => a[i] === 0);

test('Prefaulter: touches one byte per 4 KiB page (and the last byte), oldest array first, a given number of pages per step', () => {
  const p = new Prefaulter();
  const a = new Uint8Array(3 * 4096 + 10).fill(0xff);
  const b = new Uint8Array(4096).fill(0xff);
  p.add(a);
  p.add(b);
  assert.equal(p.pending, true);
  p.step(2);
  assert.deepEqual(touchedAt(a), [0, 4096]);
  assert.deepEqual(touchedAt(b), []);
  p.step(3); // a's last two pages (and its last byte), then b's only page
  assert.deepEqual(touchedAt(a), [0, 4096, 8192, 12288, a.length - 1]);
  assert.deepEqual(touchedAt(b), [0, 4095]);
  assert.equal(p.pending, false);
  p.step(5); // nothing left: no-op
});

test('property: after take() (remove()), an array is never written again, wherever it was in the queue; the others are still touched in full', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5 * 4096 }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.oneof(fc.record({ step: fc.integer({ min: 0, max: 4 }) }), fc.record({ remove: fc.nat() })), { maxLength: 20 }),
      (sizes, ops) => {
        const p = new Prefaulter();
        const arrays = sizes.map((n) => new Uint8Array(n).fill(0xff));
        for (const a of arrays) p.add(a);
        const removed = new Set<Uint8Array>();
        for (const o of ops) {
          if ('step' in o) p.step(o.step);
          else {
            const a = arrays[o.remove % arrays.length]!;
            assert.equal(p.take(a), a); // remove(), then the array
            removed.add(a);
            a.fill(0xee); // the new owner writes it
          }
        }
        p.step(1e6);
        assert.equal(p.pending, false);
        for (const a of arrays) {
          if (removed.has(a)) assert.ok(a.every((x) => x === 0xee), 'a removed array was written after remove()');
          else for (let i = 0; i < a.length; i += 4096) assert.equal(a[i], 0, `page at ${i} not touched`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('Prefaulter: remove() of an array not queued and clear() leave nothing pending', () => {
  const p = new Prefaulter();
  p.remove(new Uint8Array(10));
  const a = new Int32Array(5000);
  p.add(a);
  p.clear();
  assert.equal(p.pending, false);
});
