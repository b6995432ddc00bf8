// KvMachine.apply takes a fast path for well-formed PUTs (no decoding into objects). This checks
// that it agrees with the general decoder on every input shaped like a PUT: valid ones, and ones
// with wrong lengths, empty or oversized keys, oversized values, truncation and trailing bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KvMachine } from '../../src/kv/machine.js';
import { decodeCommand, decodeQuery, decodeResult, encodeCommand, KEY_BYTES_MAX, OP_GET, OP_PUT } from '../../src/kv/codec.js';

const ctx = { slot: 1, clientId: 1, seq: 1, timeMs: 0 };

/** What the general path must answer for these bytes: the decoder and the limit check decide. */
function expected(m: KvMachine, bytes: Uint8Array): 'ok' | 'error' {
  try {
    const cmd = decodeCommand(bytes);
    return m.checkCommand(cmd) === null ? 'ok' : 'error';
  } catch {
    return 'error';
  }
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

const putLike = fc
  .record({
    key: fc.uint8Array({ minLength: 0, maxLength: KEY_BYTES_MAX + 2 }),
    value: fc.uint8Array({ minLength: 0, maxLength: 40 }),
    keyLenDelta: fc.constantFrom(0, 0, 0, -1, 1, 1 << 20),
    valueLenDelta: fc.constantFrom(0, 0, 0, -1, 1, -(1 << 30)),
    trailing: fc.uint8Array({ maxLength: 2 }),
    cut: fc.nat({ max: 6 }),
  })
  .map(({ key, value, keyLenDelta, valueLenDelta, trailing, cut }) => {
    const bytes = [OP_PUT, ...u32(Math.max(0, key.length + keyLenDelta)), ...key, ...u32(Math.max(0, value.length + valueLenDelta)), ...value, ...trailing];
    return Uint8Array.from(cut > 3 ? bytes.slice(0, Math.max(1, bytes.length - cut)) : bytes);
  });

test('the fast PUT path agrees with the general decoder on PUT-shaped input (valid and malformed)', () => {
  fc.assert(
    fc.property(putLike, (bytes) => {
      const m = new KvMachine({ valueBytesMax: 32 });
      const want = expected(m, bytes);
      assert.equal(m.refuseEncoded(bytes) === null, want === 'ok', 'refuseEncoded (the edge check) agrees');
      const result = decodeResult(m.apply(bytes, ctx));
      if (want === 'ok') {
        assert.equal(result.kind, 'ok');
        const cmd = decodeCommand(bytes);
        assert.ok(cmd.op === 'put');
        assert.deepEqual(m.get(cmd.key), cmd.value);
        assert.equal(m.stats().puts, 1);
        assert.equal(m.stats().bytes, cmd.key.length + cmd.value.length);
      } else {
        assert.equal(result.kind, 'error');
        assert.equal(m.size, 0);
      }
    }),
    { numRuns: 3000 },
  );
});

test('the fast PUT path copies the value: later changes to the command bytes do not reach the map', () => {
  const m = new KvMachine();
  const bytes = Uint8Array.from([OP_PUT, ...u32(1), 0x6b, ...u32(2), 0x61, 0x62]);
  m.apply(bytes, ctx);
  bytes[bytes.length - 1] = 0x7a;
  assert.deepEqual(m.get(Uint8Array.of(0x6b)), Uint8Array.of(0x61, 0x62));
});

test('the fast GET path agrees with the general decoder on GET-shaped input (present, absent, malformed)', () => {
  const m = new KvMachine();
  const stored = [Uint8Array.of(0x6b), Uint8Array.of(0x6b, 0x32), new Uint8Array(KEY_BYTES_MAX).fill(7)];
  for (const [i, key] of stored.entries()) m.apply(Uint8Array.from([OP_PUT, ...u32(key.length), ...key, ...u32(i), ...new Uint8Array(i).fill(0x61)]), ctx);
  const getLike = fc
    .record({
      key: fc.oneof(fc.constantFrom(...stored), fc.uint8Array({ minLength: 0, maxLength: KEY_BYTES_MAX + 2 })),
      keyLenDelta: fc.constantFrom(0, 0, 0, -1, 1),
      trailing: fc.uint8Array({ maxLength: 2 }),
    })
    .map(({ key, keyLenDelta, trailing }) => Uint8Array.from([OP_GET, ...u32(Math.max(0, key.length + keyLenDelta)), ...key, ...trailing]));
  fc.assert(
    fc.property(getLike, (bytes) => {
      const got = decodeResult(m.query(bytes));
      let q;
      try {
        q = decodeQuery(bytes);
      } catch {
        assert.equal(got.kind, 'error');
        return;
      }
      assert.ok(q.op === 'get');
      if (q.key.length === 0 || q.key.length > KEY_BYTES_MAX) return assert.equal(got.kind, 'error');
      const want = m.get(q.key);
      if (want === undefined) assert.equal(got.kind, 'not-found');
      else {
        assert.equal(got.kind, 'ok');
        assert.deepEqual(got.kind === 'ok' ? got.value ?? new Uint8Array(0) : null, want);
      }
    }),
    { numRuns: 3000 },
  );
});

test('property: applyAt (commands where they lie in a batch, no view) does what apply() of the same bytes does, and prefetchAt changes nothing', () => {
  const key = fc.uint8Array({ minLength: 1, maxLength: 3 }).map((k) => k.map((x) => x % 3));
  const command = fc.oneof(
    { weight: 4, arbitrary: putLike },
    { weight: 3, arbitrary: fc.record({ key, value: fc.uint8Array({ maxLength: 300 }) }).map(({ key: k, value }) => encodeCommand({ op: 'put', key: k, value })) },
    { weight: 1, arbitrary: key.map((k) => encodeCommand({ op: 'delete', key: k })) },
    { weight: 1, arbitrary: fc.record({ key, value: fc.uint8Array({ maxLength: 8 }) }).map(({ key: k, value }) => encodeCommand({ op: 'cas', key: k, expected: null, value })) },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(command, fc.nat({ max: 5 })), { minLength: 1, maxLength: 30 }), (cmds) => {
      const byApply = new KvMachine({ valueBytesMax: 100 });
      const byApplyAt = new KvMachine({ valueBytesMax: 100 });
      // All the commands in one buffer, with gaps of junk between them, as a batch's bytes.
      const offsets = new Int32Array(cmds.length);
      const lengths = new Int32Array(cmds.length);
      const parts: number[] = [0xee];
      for (const [i, [c, gap]] of cmds.entries()) {
        for (let g = 0; g < gap; g++) parts.push(OP_PUT);
        offsets[i] = parts.length;
        lengths[i] = c.length;
        parts.push(...c);
      }
      const batch = Uint8Array.from(parts);
      const before = byApplyAt.snapshot();
      byApplyAt.prefetchAt(batch, offsets, lengths, cmds.length);
      assert.deepEqual(byApplyAt.snapshot(), before, 'prefetchAt changes nothing');
      for (const [i, [c]] of cmds.entries()) {
        const want = byApply.apply(Uint8Array.from(c), ctx);
        assert.deepEqual(byApplyAt.applyAt(batch, offsets[i]!, lengths[i]!, ctx), want, `command ${i}'s result`);
      }
      batch.fill(0x55); // what the table kept is its own copy
      assert.deepEqual(byApplyAt.snapshot(), byApply.snapshot());
      assert.deepEqual(byApplyAt.stats(), byApply.stats());
    }),
    { numRuns: 500 },
  );
});
