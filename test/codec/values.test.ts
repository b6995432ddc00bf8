import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Reader, Sizer, VARINT_BYTES_MAX, Writer, varintSize } from '../../src/codec/buffer.js';
import { CodecError } from '../../src/codec/errors.js';
import { decodeLimits } from '../../src/codec/limits.js';
import {
  ENTRY_FORMAT_VERSION,
  decodeEntry,
  BatchCursor,
  DecodedBatch,
  decodeValue,
  encodedBatchOf,
  encodeEntry,
  encodeValue,
  valueBytes,
  valueKey,
} from '../../src/codec/values.js';
import type { Entry, Value } from '../../src/core/types.js';
import { VARINT_EDGES, assertCodecError, entry, flipBit, normalizeEntry, outcome, plain, safeNat, value } from './arbitraries.js';

const SEED = 0x5eed;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

// ---------------------------------------------------------------- varints and the reader

test('varint: round trip and size at every byte-length boundary', () => {
  const expectedSizes = [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 7, 7, 8, 8];
  assert.equal(expectedSizes.length, VARINT_EDGES.length);
  VARINT_EDGES.forEach((n, i) => {
    const size = varintSize(n, 'n', 0);
    assert.equal(size, expectedSizes[i], `size of ${n}`);
    assert.ok(size <= VARINT_BYTES_MAX);
    const writer = new Writer(size);
    writer.varint(n);
    const reader = new Reader(writer.finish());
    assert.equal(reader.varint('n'), n);
    reader.expectEnd('n');
  });
});

test('varint: random safe integers round-trip through Sizer, Writer and Reader', () => {
  fc.assert(
    fc.property(fc.array(safeNat, { maxLength: 20 }), (numbers) => {
      const sizer = new Sizer();
      for (const n of numbers) sizer.varint(n, 'n');
      const writer = new Writer(sizer.size);
      for (const n of numbers) writer.varint(n);
      const reader = new Reader(writer.finish());
      for (const n of numbers) assert.equal(reader.varint('n'), n);
      reader.expectEnd('numbers');
    }),
    { numRuns: 300 },
  );
});

test('reader: every method throws TRUNCATED past the end, never RangeError or undefined', () => {
  const empty = () => new Reader(new Uint8Array([9, 9, 9]), 3);
  assertCodecError(() => empty().u8('x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => empty().bool('x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => empty().varint('x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => empty().u32le('x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => empty().count(10, 1, 'x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => empty().lengthPrefixed(10, 'x'), 'SYNOD_CODEC_TRUNCATED', 3);
  assertCodecError(() => new Reader(new Uint8Array([1, 2, 3])).u32le('x'), 'SYNOD_CODEC_TRUNCATED', 0);
  assertCodecError(() => new Reader(new Uint8Array([5, 1, 2])).lengthPrefixed(10, 'x'), 'SYNOD_CODEC_TRUNCATED', 1);
  // a reader bounded by `end` does not read the bytes after it
  assertCodecError(() => new Reader(new Uint8Array([0x80, 0x01]), 0, 1).varint('x'), 'SYNOD_CODEC_TRUNCATED', 1);
  assertCodecError(() => new Reader(new Uint8Array([1, 2]), 0, 1).expectEnd('x'), 'SYNOD_CODEC_TRAILING_BYTES', 0);
  assertCodecError(() => new Reader(new Uint8Array([2])).bool('x'), 'SYNOD_CODEC_BAD_VALUE', 0);
});

// ---------------------------------------------------------------- values

test('values: decodeValue(encodeValue(v)) equals v and re-encodes to the same bytes', () => {
  fc.assert(
    fc.property(value, (v) => {
      const bytes = encodeValue(v);
      const decoded = decodeValue(bytes);
      assert.deepStrictEqual(plain(decoded), v);
      assert.deepEqual(encodeValue(plain(decoded)), bytes);
      assert.deepEqual(encodeValue(decoded), bytes); // from the bytes a decoded batch keeps
    }),
    { numRuns: 400 },
  );
});

test('valueKey: equal keys iff equal encodings', () => {
  // Pairs drawn independently are almost always different; pairs built as copies are equal.
  const copy = (v: Value): Value =>
    v.kind === 'batch'
      ? { ...v, commands: v.commands.map((c) => ({ ...c, payload: c.payload.slice() })) }
      : v.kind === 'config'
        ? { kind: 'config', members: [...v.members] }
        : { kind: 'noop' };
  fc.assert(
    fc.property(value, value, fc.boolean(), (a, other, same) => {
      const b = same ? copy(a) : other;
      assert.equal(valueKey(a) === valueKey(b), sameBytes(encodeValue(a), encodeValue(b)));
      if (same) assert.equal(valueKey(a), valueKey(b));
    }),
    { numRuns: 400 },
  );
  const one = { clientId: 1, seq: 1, floor: 0, payload: new Uint8Array([1]) };
  const keys = new Set([
    valueKey({ kind: 'noop' }),
    valueKey({ kind: 'batch', commands: [] }),
    valueKey({ kind: 'batch', commands: [one] }),
    valueKey({ kind: 'batch', commands: [{ ...one, payload: new Uint8Array([2]) }] }),
    valueKey({ kind: 'batch', commands: [{ ...one, floor: 1 }] }),
    valueKey({ kind: 'config', members: [1, 2, 3] }),
    valueKey({ kind: 'config', members: [1, 3, 2] }), // member order is part of the value
  ]);
  assert.equal(keys.size, 7);
});

test('valueBytes counts payload bytes only', () => {
  assert.equal(valueBytes({ kind: 'noop' }), 0);
  assert.equal(valueBytes({ kind: 'config', members: [1, 2, 3] }), 0);
  const payload = (n: number) => ({ clientId: 1, seq: 1, floor: 0, payload: new Uint8Array(n) });
  assert.equal(valueBytes({ kind: 'batch', commands: [payload(3), payload(0), payload(64)] }), 67);
  fc.assert(
    fc.property(value, (v) => {
      const expected = v.kind === 'batch' ? v.commands.reduce((sum, c) => sum + c.payload.length, 0) : 0;
      assert.equal(valueBytes(v), expected);
    }),
    { numRuns: 100 },
  );
});

test('decodeValue: limits, trailing bytes, unknown kinds', () => {
  const v: Value = { kind: 'batch', commands: [{ clientId: 1, seq: 2, floor: 0, payload: new Uint8Array(10) }] };
  const bytes = encodeValue(v);
  assertCodecError(() => decodeValue(bytes, decodeLimits({ payloadBytesMax: 9 })), 'SYNOD_CODEC_TOO_LARGE', 5);
  const two: Value = { kind: 'batch', commands: [...(v.kind === 'batch' ? v.commands : []), { clientId: 2, seq: 1, floor: 0, payload: new Uint8Array(0) }] };
  assertCodecError(() => decodeValue(encodeValue(two), decodeLimits({ commandsMax: 1 })), 'SYNOD_CODEC_TOO_LARGE', 1);
  assertCodecError(() => decodeValue(new Uint8Array([...bytes, 0])), 'SYNOD_CODEC_TRAILING_BYTES', bytes.length);
  assertCodecError(() => decodeValue(new Uint8Array([6])), 'SYNOD_CODEC_BAD_TYPE', 0); // 4 and 5: stamped batches
  assertCodecError(() => decodeValue(new Uint8Array([])), 'SYNOD_CODEC_TRUNCATED', 0);
});

test('a decoded batch: the cursor reads the commands `commands` builds (again after rewind()), views of the input; valueBytes sums their payloads', () => {
  fc.assert(
    fc.property(value, (v) => {
      if (v.kind !== 'batch') return;
      const bytes = encodeValue(v);
      const decoded = decodeValue(bytes);
      assert.ok(decoded instanceof DecodedBatch);
      assert.equal(decoded.count, v.commands.length);
      assert.equal(valueBytes(decoded), valueBytes(v));
      const cursor = new BatchCursor(decoded);
      for (let pass = 0; pass < 2; pass++) {
        for (const expected of v.commands) {
          cursor.next(true);
          assert.deepStrictEqual({ clientId: cursor.clientId, seq: cursor.seq, floor: cursor.floor, payload: cursor.payload }, expected);
          assert.equal(cursor.payload.buffer, bytes.buffer);
        }
        cursor.rewind(); // the second pass reads the same commands again
      }
      assert.deepStrictEqual(decoded.commands, v.commands);
      assert.equal(decoded.commands, decoded.commands, 'built once');
    }),
    { numRuns: 500 },
  );
  // The widest varints: the cursor's own reader against the checked one.
  const wide: Value = { kind: 'batch', commands: VARINT_EDGES.map((n) => ({ clientId: n, seq: n, floor: n, payload: new Uint8Array([n % 251]) })), timeMs: VARINT_EDGES[VARINT_EDGES.length - 1]! };
  const cursor = new BatchCursor(decodeValue(encodeValue(wide)) as DecodedBatch);
  for (const n of VARINT_EDGES) {
    cursor.next(false);
    assert.deepEqual([cursor.clientId, cursor.seq, cursor.floor], [n, n, n]);
  }
});

// ---------------------------------------------------------------- entries (log record payloads)

test('entries: decodeEntry(encodeEntry(e)) equals e (chosen as a boolean) and is canonical', () => {
  fc.assert(
    fc.property(entry, (e) => {
      const bytes = encodeEntry(e);
      assert.equal(bytes[0], ENTRY_FORMAT_VERSION);
      const decoded = decodeEntry(bytes);
      assert.deepStrictEqual(plain(decoded), normalizeEntry(e));
      assert.equal(typeof decoded.chosen, 'boolean');
      assert.deepEqual(encodeEntry(plain(decoded)), bytes);
      assert.deepEqual(encodeEntry(decoded), bytes);
    }),
    { numRuns: 400 },
  );
});

test('entries: payloads alias the record buffer', () => {
  const e: Entry = { slot: 9, ballot: 1025, value: { kind: 'batch', commands: [{ clientId: 1, seq: 1, floor: 0, payload: new Uint8Array([7, 8]) }] } };
  const bytes = encodeEntry(e);
  const decoded = decodeEntry(bytes);
  assert.equal(decoded.value.kind, 'batch');
  if (decoded.value.kind === 'batch') assert.equal(decoded.value.commands[0]!.payload.buffer, bytes.buffer);
});

test('entries: every truncation is TRUNCATED; trailing bytes and other versions are refused', () => {
  for (const e of fc.sample(entry, { numRuns: 80, seed: SEED })) {
    const bytes = encodeEntry(e);
    for (let cut = 0; cut < bytes.length; cut++) {
      assertCodecError(() => decodeEntry(bytes.subarray(0, cut)), 'SYNOD_CODEC_TRUNCATED');
    }
    assertCodecError(() => decodeEntry(new Uint8Array([...bytes, 0])), 'SYNOD_CODEC_TRAILING_BYTES', bytes.length);
    assertCodecError(() => decodeEntry(new Uint8Array([2, ...bytes.subarray(1)])), 'SYNOD_CODEC_BAD_VERSION', 0);
  }
  // version, slot 1, ballot 1, chosen 2, noop
  assertCodecError(() => decodeEntry(new Uint8Array([1, 1, 1, 2, 0])), 'SYNOD_CODEC_BAD_VALUE', 3);
  assertCodecError(() => encodeEntry({ slot: -1, ballot: 1, value: { kind: 'noop' } }), 'SYNOD_CODEC_BAD_INTEGER', 1);
});

test('entries: random bytes and single bit flips give an Entry (canonical) or a CodecError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 60 }), (raw) => {
      const bytes = new Uint8Array([ENTRY_FORMAT_VERSION, ...raw]);
      const result = outcome(() => decodeEntry(bytes));
      if (!(result instanceof CodecError)) assert.deepEqual(encodeEntry(plain(result)), bytes);
    }),
    { numRuns: 2000 },
  );
  for (const e of fc.sample(entry, { numRuns: 40, seed: SEED })) {
    const bytes = encodeEntry(e);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const flipped = flipBit(bytes, bit);
      const result = outcome(() => decodeEntry(flipped));
      if (!(result instanceof CodecError)) assert.deepEqual(encodeEntry(plain(result)), flipped);
    }
  }
});

test('stamped batches (kinds 4, 5) round trip; legacy kinds 1 and 3 still decode, without a stamp', () => {
  const one = { clientId: 1, seq: 1, floor: 0, payload: new Uint8Array([7]) };
  const stamped: Value = { kind: 'batch', commands: [one], timeMs: 1_700_000_000_123 };
  const bytes = encodeValue(stamped);
  assert.equal(bytes[0], 4);
  assert.deepEqual(plain(decodeValue(bytes)), stamped);
  const last: Value = { kind: 'batch', commands: [one], timeMs: 5, last: true };
  assert.equal(encodeValue(last)[0], 5);
  assert.deepEqual(plain(decodeValue(encodeValue(last))), last);
  // The bytes a replica wrote before stamps existed: kind 1 (batch) and 3 (last request).
  const legacyBatch = decodeValue(new Uint8Array([1, 1, 1, 1, 0, 1, 7]));
  assert.deepEqual(plain(legacyBatch), { kind: 'batch', commands: [one] });
  assert.equal((legacyBatch as { timeMs?: number }).timeMs, undefined);
  assert.deepEqual(plain(decodeValue(new Uint8Array([3, 1, 1, 1, 0, 1, 7]))), { kind: 'batch', commands: [one], last: true });
  // The stamp is part of the value: same commands, another stamp, another value.
  assert.notEqual(valueKey(stamped), valueKey({ ...stamped, timeMs: 1_700_000_000_124 }));
  assert.notEqual(valueKey(stamped), valueKey({ kind: 'batch', commands: [one] }));
});

test('the cached encoding of a large batch keeps its kind byte and stamp', () => {
  const commands = Array.from({ length: 8 }, (_, i) => ({ clientId: 3, seq: i + 1, floor: 1, payload: new Uint8Array([i]) }));
  const v: Value = { kind: 'batch', commands, timeMs: 123_456 };
  const first = encodeValue(v);
  const second = encodeValue(v); // from the cache
  assert.deepEqual(second, first);
  assert.equal(second[0], 4);
  const decoded = decodeValue(first);
  assert.deepEqual(encodeValue(decoded), first); // a follower's kept view of the received bytes
  assert.deepEqual(plain(decoded), v);
});

test('property: encodedBatchOf (the leader\'s batch held by its own encoding) is the DecodedBatch that decoding the encoding gives', () => {
  fc.assert(
    fc.property(value, (v) => {
      const original = plain(v); // a value built in memory, as the leader's are
      assert.equal(encodedBatchOf(original), null, 'nothing before its first encode');
      const bytes = encodeValue(original);
      const adopted = encodedBatchOf(original);
      if (original.kind !== 'batch' || original.commands.length < 4) {
        assert.equal(adopted, null, 'only batches whose encoding is cached (four commands or more)');
        return;
      }
      const decoded = decodeValue(bytes) as DecodedBatch;
      assert.ok(adopted instanceof DecodedBatch);
      assert.ok(sameBytes(adopted.encoded, bytes));
      for (const k of ['commandsOffset', 'count', 'payloadBytes', 'timeMs', 'last'] as const) assert.equal(adopted[k], decoded[k], k);
      assert.deepEqual(plain(adopted), plain(decoded));
      assert.equal(encodedBatchOf(adopted), null, 'already by its bytes');
    }),
    { numRuns: 500 },
  );
});
