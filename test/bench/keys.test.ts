// The load generator's keys: writeKey (into one reused buffer) makes exactly keyOf's bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keyOf, writeKey } from '../../src/bench/load.js';

test('property: writeKey(i, out) is keyOf(i, out.length), whatever the buffer held before', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.oneof(fc.nat({ max: 999 }), fc.nat({ max: 2 ** 40 }), fc.maxSafeNat()), { minLength: 1, maxLength: 20 }), (keyBytes, indexes) => {
      const out = new Uint8Array(keyBytes);
      for (const i of indexes) assert.deepEqual(writeKey(i, out), keyOf(i, keyBytes), `index ${i}, ${keyBytes} bytes`);
    }),
  );
  assert.equal(new TextDecoder().decode(writeKey(42, new Uint8Array(8))), 'k0000042');
  assert.equal(new TextDecoder().decode(writeKey(0, new Uint8Array(1))), '0', 'a 1-byte key of index 0 is its digit, as keyOf (found by the property in CI)');
  assert.equal(new TextDecoder().decode(writeKey(123456789, new Uint8Array(4))), '6789', 'a wider index keeps its low digits, as keyOf');
});
