// copyBytes takes three paths (a byte loop, set() of a subarray, set() of the whole source): each
// must copy exactly the bytes asked for, whatever the offsets, including within one buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyBytes } from '../../src/kv/codec.js';

test('copyBytes copies [from, from + len) of src to dst at `at`, and nothing else, on every path', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.nat(), fc.nat(), fc.nat(), fc.boolean(), (bytes, a, b, c, whole) => {
      // A view inside a larger buffer, as the network and the log hand them over.
      const backing = new Uint8Array(bytes.length + 16);
      backing.set(bytes, 8);
      const src = backing.subarray(8, 8 + bytes.length);
      const from = whole ? 0 : a % (src.length + 1);
      const len = whole ? src.length : b % (src.length - from + 1);
      const dst = new Uint8Array(len + 40).fill(0xa5);
      const at = c % 41;
      const expected = dst.slice();
      expected.set(src.subarray(from, from + len), at);
      copyBytes(src, from, len, dst, at);
      assert.deepEqual(dst, expected);
    }),
    { numRuns: 2000 },
  );
});

test('copyBytes of a whole array into its own buffer behaves as memmove', () => {
  const buffer = new Uint8Array(200).map((_, i) => i);
  const src = buffer.subarray(10, 110); // 100 bytes, the whole-array path
  const expected = buffer.slice();
  expected.copyWithin(40, 10, 110);
  copyBytes(src, 0, src.length, buffer, 40);
  assert.deepEqual(buffer, expected);
});
