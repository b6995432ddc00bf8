import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KvMachine } from '../../src/kv/machine.js';
import {
  decodeCommand,
  decodeQuery,
  decodeResult,
  deleteExisted,
  encodeCommand,
  encodeQuery,
  ERR_KEY_TOO_LARGE,
  ERR_MALFORMED,
  ERR_VALUE_TOO_LARGE,
  KEY_BYTES_MAX,
  SCAN_BYTES_MAX,
  type KvCommand,
} from '../../src/kv/codec.js';

const b = (s: string) => new TextEncoder().encode(s);
const s = (u: Uint8Array | undefined) => (u === undefined ? undefined : new TextDecoder().decode(u));
const ctx = { slot: 1, clientId: 1, seq: 1, timeMs: 0 };

function run(m: KvMachine, cmd: KvCommand) {
  return decodeResult(m.apply(encodeCommand(cmd), ctx));
}
function get(m: KvMachine, key: string) {
  return decodeResult(m.query(encodeQuery({ op: 'get', key: b(key) })));
}
function scan(m: KvMachine, prefix: string | Uint8Array, limit: number) {
  return decodeResult(m.query(encodeQuery({ op: 'scan', prefix: typeof prefix === 'string' ? b(prefix) : prefix, limit })));
}

test('put, get, delete', () => {
  const m = new KvMachine();
  assert.deepEqual(get(m, 'a'), { kind: 'not-found' });
  assert.deepEqual(run(m, { op: 'put', key: b('a'), value: b('1') }), { kind: 'ok' });
  const r = get(m, 'a');
  assert.equal(r.kind, 'ok');
  assert.equal(s((r as { value: Uint8Array }).value), '1');
  assert.equal(deleteExisted(run(m, { op: 'delete', key: b('a') })), true);
  assert.equal(deleteExisted(run(m, { op: 'delete', key: b('a') })), false);
  assert.deepEqual(get(m, 'a'), { kind: 'not-found' });
  assert.deepEqual(m.stats().keys, 0);
  assert.deepEqual(m.stats().bytes, 0);
});

test('an empty value is a present value', () => {
  const m = new KvMachine();
  run(m, { op: 'put', key: b('k'), value: new Uint8Array(0) });
  const r = get(m, 'k');
  assert.equal(r.kind, 'ok');
  assert.equal((r as { value?: Uint8Array }).value?.length ?? 0, 0);
});

test('compare-and-set: absent expectation, match, mismatch', () => {
  const m = new KvMachine();
  assert.deepEqual(run(m, { op: 'cas', key: b('k'), expected: null, value: b('v1') }), { kind: 'ok' });
  const again = run(m, { op: 'cas', key: b('k'), expected: null, value: b('v2') });
  assert.equal(again.kind, 'cas-failed');
  assert.equal(s((again as { current: Uint8Array }).current), 'v1');
  assert.deepEqual(run(m, { op: 'cas', key: b('k'), expected: b('v1'), value: b('v2') }), { kind: 'ok' });
  const wrong = run(m, { op: 'cas', key: b('k'), expected: b('v1'), value: b('v3') });
  assert.equal(s((wrong as { current: Uint8Array }).current), 'v2');
  const absent = run(m, { op: 'cas', key: b('nope'), expected: b('x'), value: b('y') });
  assert.deepEqual(absent, { kind: 'cas-failed', current: null });
  assert.deepEqual(m.stats().casSwapped, 2);
  assert.deepEqual(m.stats().casFailed, 3);
});

test('scan: prefix, limit, more, byte order', () => {
  const m = new KvMachine();
  for (const k of ['b/2', 'a', 'b/1', 'b/3', 'c', 'b']) run(m, { op: 'put', key: b(k), value: b(k.toUpperCase()) });
  // Bytes above 0x7f sort after ASCII.
  run(m, { op: 'put', key: Uint8Array.of(0x62, 0x2f, 0xff), value: b('high') });
  const r = scan(m, 'b/', 2);
  assert.equal(r.kind, 'scan');
  if (r.kind !== 'scan') return;
  assert.deepEqual(r.entries.map(([k, v]) => [s(k), s(v)]), [
    ['b/1', 'B/1'],
    ['b/2', 'B/2'],
  ]);
  assert.equal(r.more, true);
  const all = scan(m, 'b/', 10);
  assert.equal(all.kind === 'scan' && all.entries.length, 4);
  assert.equal(all.kind === 'scan' && all.more, false);
  assert.deepEqual([...(all.kind === 'scan' ? all.entries[3]![0] : [])], [0x62, 0x2f, 0xff]);
  const everything = scan(m, '', 100);
  assert.equal(everything.kind === 'scan' && everything.entries.length, 7);
  // Writes after a scan are seen by the next scan.
  run(m, { op: 'put', key: b('b/0'), value: b('zero') });
  run(m, { op: 'delete', key: b('b/3') });
  const after = scan(m, 'b/', 10);
  assert.deepEqual(after.kind === 'scan' && after.entries.map(([k]) => s(k)), ['b/0', 'b/1', 'b/2', 'b/\ufffd']);
});

test('scan: bounded in bytes (scanBytesMax), stopping early with more; pages continue after the last key and cover every key once', () => {
  const m = new KvMachine({ scanBytesMax: 100 });
  // Each entry is 8 + 3 + 30 = 41 bytes: two fit in 100, a third does not.
  for (let i = 9; i >= 0; i--) run(m, { op: 'put', key: b(`p/${i}`), value: new Uint8Array(30).fill(0x30 + i) });
  run(m, { op: 'put', key: b('q'), value: b('other prefix') });
  const page = (after: Uint8Array | null, limit = 100) => {
    const r = decodeResult(m.query(encodeQuery({ op: 'scan', prefix: b('p/'), limit, after })));
    assert.equal(r.kind, 'scan');
    return r as { entries: Array<[Uint8Array, Uint8Array]>; more: boolean };
  };
  const first = page(null);
  assert.deepEqual(first.entries.map(([k]) => s(k)), ['p/0', 'p/1']);
  assert.equal(first.more, true, 'stopped by bytes, not by the limit of 100: more');
  const seen: string[] = [];
  let after: Uint8Array | null = null;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10, 'paging ends');
    const p = page(after);
    for (const [k, v] of p.entries) {
      seen.push(s(k)!);
      assert.equal(v[0], 0x30 + Number(s(k)!.slice(2)));
    }
    if (!p.more) break;
    after = p.entries.at(-1)![0];
  }
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `p/${i}`));
  // The count limit still applies within the byte limit, and `more` says whether keys follow.
  assert.deepEqual(page(b('p/8'), 1).entries.map(([k]) => s(k)), ['p/9']);
  assert.equal(page(b('p/8'), 1).more, false);
  // `after` need not be a key, and may sort before the prefix (then it does not matter).
  assert.deepEqual(page(b('p/35')).entries.map(([k]) => s(k)), ['p/4', 'p/5']);
  assert.deepEqual(page(b('a')).entries.map(([k]) => s(k)), ['p/0', 'p/1']);
  assert.deepEqual(page(b('p/9')), { kind: 'scan', entries: [], more: false });
  // One entry over the limit is still answered alone, so that paging goes on.
  run(m, { op: 'put', key: b('p/1'), value: new Uint8Array(500) });
  assert.deepEqual(page(b('p/0')).entries.map(([k, v]) => [s(k), v.length]), [['p/1', 500]]);
  assert.equal(page(b('p/0')).more, true);
  // The default: 4 MiB, or two entries of the largest size when that is less (binary clients take
  // answers of 2 x valueBytesMax + 64 KiB).
  assert.equal(new KvMachine().scanBytesMax, 2 * (8 + KEY_BYTES_MAX + (1 << 20)));
  assert.equal(new KvMachine({ valueBytesMax: 8 << 20 }).scanBytesMax, SCAN_BYTES_MAX);
  assert.equal(SCAN_BYTES_MAX, 4 << 20);
  // An `after` over the key limit is refused; the query's encoding without `after` is unchanged.
  const r = decodeResult(m.query(encodeQuery({ op: 'scan', prefix: b(''), limit: 1, after: new Uint8Array(KEY_BYTES_MAX + 1) })));
  assert.equal(r.kind === 'error' && r.code, ERR_KEY_TOO_LARGE);
  assert.equal(encodeQuery({ op: 'scan', prefix: b('p/'), limit: 3 }).length, 1 + 4 + 2 + 4);
  assert.deepEqual(decodeQuery(encodeQuery({ op: 'scan', prefix: b('p/'), limit: 3, after: b('p/1') })), { op: 'scan', prefix: b('p/'), limit: 3, after: b('p/1') });
});

test('limits: oversized key and value, empty key, bad scan limit, malformed bytes', () => {
  const m = new KvMachine({ valueBytesMax: 8 });
  const bigKey = new Uint8Array(KEY_BYTES_MAX + 1).fill(0x61);
  const r1 = run(m, { op: 'put', key: bigKey, value: b('v') });
  assert.equal(r1.kind === 'error' && r1.code, ERR_KEY_TOO_LARGE);
  assert.ok(run(m, { op: 'put', key: new Uint8Array(KEY_BYTES_MAX).fill(0x61), value: b('v') }).kind === 'ok');
  const r2 = run(m, { op: 'put', key: b('k'), value: new Uint8Array(9) });
  assert.equal(r2.kind === 'error' && r2.code, ERR_VALUE_TOO_LARGE);
  const r3 = run(m, { op: 'put', key: new Uint8Array(0), value: b('v') });
  assert.equal(r3.kind === 'error' && r3.code, ERR_MALFORMED);
  const r4 = decodeResult(m.apply(Uint8Array.of(0x01, 0, 0), ctx));
  assert.equal(r4.kind === 'error' && r4.code, ERR_MALFORMED);
  const r5 = decodeResult(m.apply(Uint8Array.of(0x77), ctx));
  assert.equal(r5.kind, 'error');
  assert.equal(scan(m, '', 0).kind, 'error');
  assert.equal(decodeResult(m.query(Uint8Array.of(0x10))).kind, 'error');
  assert.equal(m.size, 1, 'refused commands changed nothing');
  assert.equal(m.stats().rejected, 5);
  assert.throws(() => new KvMachine({ valueBytesMax: 0 }), RangeError);
});

test('codec: commands and queries round-trip; trailing bytes are refused', () => {
  const cmds: KvCommand[] = [
    { op: 'put', key: b('k'), value: b('v') },
    { op: 'delete', key: b('k') },
    { op: 'cas', key: b('k'), expected: null, value: b('v') },
    { op: 'cas', key: b('k'), expected: b(''), value: b('') },
  ];
  for (const c of cmds) assert.deepEqual(decodeCommand(encodeCommand(c)), c);
  const q = { op: 'scan' as const, prefix: b('p'), limit: 7 };
  assert.deepEqual(decodeQuery(encodeQuery(q)), q);
  const bytes = encodeCommand(cmds[0]!);
  assert.throws(() => decodeCommand(Uint8Array.from([...bytes, 0])), /trailing/);
  assert.throws(() => decodeCommand(bytes.subarray(0, bytes.length - 1)), /truncated/);
});

test('snapshot and restore: a new replica catches up from one; garbage is refused', () => {
  const a = new KvMachine();
  for (let i = 0; i < 200; i++) run(a, { op: 'put', key: b(`key-${i % 50}`), value: b(`value-${i}`) });
  run(a, { op: 'delete', key: b('key-7') });
  const snap = a.snapshot();
  const c = new KvMachine();
  run(c, { op: 'put', key: b('stale'), value: b('x') });
  c.restore(snap);
  assert.deepEqual(c.snapshot(), snap);
  assert.equal(get(c, 'stale').kind, 'not-found');
  assert.equal(s((get(c, 'key-3') as { value: Uint8Array }).value), 'value-153');
  assert.deepEqual(c.stats().keys, a.stats().keys);
  assert.deepEqual(c.stats().bytes, a.stats().bytes);
  assert.throws(() => c.restore(b('nonsense')), /magic/);
  assert.throws(() => c.restore(snap.subarray(0, snap.length - 3)), /truncated/);
  assert.throws(() => c.restore(Uint8Array.from([...snap, 1])), /trailing/);
  assert.equal(c.size, 49, 'a refused restore left the state alone');
});

test('restore refuses a snapshot holding a key no command could have made (empty, or over KEY_BYTES_MAX) and keeps its state', () => {
  const record = (key: Uint8Array, value: Uint8Array) => {
    const out = Buffer.alloc(8 + key.length + value.length);
    out.writeUInt32BE(key.length, 0);
    out.set(key, 4);
    out.writeUInt32BE(value.length, 4 + key.length);
    out.set(value, 8 + key.length);
    return out;
  };
  const snapshotOf = (...records: Buffer[]) => {
    const head = Buffer.alloc(8);
    head.write('SKV1', 0, 'latin1');
    head.writeUInt32BE(records.length, 4);
    return new Uint8Array(Buffer.concat([head, ...records]));
  };
  const m = new KvMachine();
  run(m, { op: 'put', key: b('kept'), value: b('1') });
  // The format itself, accepted: a key of one byte and one of KEY_BYTES_MAX.
  const fine = snapshotOf(record(b('a'), b('x')), record(new Uint8Array(KEY_BYTES_MAX).fill(0x62), b('y')));
  new KvMachine().restore(fine);
  assert.throws(() => m.restore(snapshotOf(record(new Uint8Array(0), b('x')), record(b('a'), b('y')))), /kv snapshot: .*key of 0 bytes at entry 0/);
  assert.throws(() => m.restore(snapshotOf(record(b('a'), b('x')), record(new Uint8Array(KEY_BYTES_MAX + 1).fill(0x62), b('y')))), /kv snapshot: .*key of 1025 bytes at entry 1/);
  assert.equal(s(m.get(b('kept'))), '1', 'a refused restore left the state alone');
  assert.equal(m.size, 1);
});

test('property: the machine matches a reference map and is deterministic across replicas (one of them prefetching each slot)', () => {
  const keyArb = fc.constantFrom('a', 'ab', 'abc', 'b', 'b\u00ff', 'c');
  const valArb = fc.constantFrom('', 'x', 'y', 'zz');
  const cmdArb: fc.Arbitrary<KvCommand> = fc.oneof(
    fc.record({ op: fc.constant('put' as const), key: keyArb.map(b), value: valArb.map(b) }),
    fc.record({ op: fc.constant('delete' as const), key: keyArb.map(b) }),
    fc.record({ op: fc.constant('cas' as const), key: keyArb.map(b), expected: fc.option(valArb.map(b), { nil: null }), value: valArb.map(b) }),
  );
  fc.assert(
    fc.property(fc.array(cmdArb, { maxLength: 60 }), fc.constantFrom('', 'a', 'ab', 'b'), fc.integer({ min: 1, max: 6 }), (cmds, prefix, slotSize) => {
      const m1 = new KvMachine();
      const m2 = new KvMachine(); // given each slot's commands (and malformed bytes) to prefetch first
      const ref = new Map<string, string>();
      let slot: Uint8Array[] = [];
      for (const [i, c] of cmds.entries()) {
        if (i % slotSize === 0) {
          slot = cmds.slice(i, i + slotSize).map(encodeCommand);
          m2.prefetch([...slot, Uint8Array.of(1, 0, 0, 0, 9), new Uint8Array(0)]);
        }
        const r1 = m1.apply(encodeCommand(c), ctx);
        assert.deepEqual(m2.apply(slot[i % slotSize]!, ctx), r1);
        const k = Buffer.from(c.key).toString('latin1');
        if (c.op === 'put') ref.set(k, s(c.value)!);
        else if (c.op === 'delete') ref.delete(k);
        else {
          const cur = ref.get(k);
          const ok = c.expected === null ? cur === undefined : cur === s(c.expected);
          assert.equal(decodeResult(r1).kind, ok ? 'ok' : 'cas-failed');
          if (ok) ref.set(k, s(c.value)!);
        }
      }
      assert.deepEqual(m1.snapshot(), m2.snapshot());
      const expected = [...ref.keys()].filter((k) => k.startsWith(Buffer.from(b(prefix)).toString('latin1'))).sort();
      const r = scan(m1, prefix, 100);
      assert.ok(r.kind === 'scan');
      assert.deepEqual(r.entries.map(([k]) => Buffer.from(k).toString('latin1')), expected);
    }),
    { numRuns: 300 },
  );
});

test('property: snapshotStream() gives snapshot()\'s bytes, from the state when it was called, whatever is applied while it is read', () => {
  // Few keys and few value sizes: the applies during the read overwrite values in place.
  const key = fc.uint8Array({ minLength: 1, maxLength: 2 }).map((k) => k.map((b) => b % 3));
  const value = fc.oneof(
    fc.integer({ min: 0, max: 3 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    fc.integer({ min: 300_000, max: 1_200_000 }).chain((n) => fc.integer({ min: 0, max: 255 }).map((b) => new Uint8Array(n).fill(b))),
  );
  const put = fc.record({ op: fc.constant('put' as const), key, value });
  const del = fc.record({ op: fc.constant('delete' as const), key });
  fc.assert(
    fc.property(fc.array(fc.oneof({ weight: 8, arbitrary: put }, { weight: 1, arbitrary: del }), { maxLength: 40 }), fc.array(put, { maxLength: 20 }), (before, during) => {
      const m = new KvMachine({ valueBytesMax: 2 << 20 });
      for (const c of before) m.apply(encodeCommand(c), ctx);
      /** A stream's chunks, with up to 3 of `applies` applied after each (they must not show in it); the rest after. */
      const streamed = (applies: typeof before): Uint8Array[] => {
        const chunks: Uint8Array[] = [];
        let i = 0;
        for (const chunk of m.snapshotStream()) {
          chunks.push(chunk.slice());
          for (let k = 0; k < 3 && i < applies.length; k++) m.apply(encodeCommand(applies[i++]!), ctx);
        }
        for (; i < applies.length; i++) m.apply(encodeCommand(applies[i]!), ctx);
        return chunks;
      };
      const expected = m.snapshot();
      const chunks = streamed(during);
      assert.ok(chunks.every((c) => c.length <= 256 * 1024));
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(expected));
      const copy = new KvMachine({ valueBytesMax: 2 << 20 });
      copy.restore(Buffer.concat(chunks));
      assert.deepEqual(Buffer.from(copy.snapshot()), Buffer.from(expected));
      // A second stream copies into the first one's arrays (the clone pool): the same holds.
      const expected2 = m.snapshot();
      assert.deepEqual(Buffer.concat(streamed(before)), Buffer.from(expected2));
    }),
    { numRuns: 60 },
  );
});

test('snapshotStream() after restore(): the restored keys are in order already, so the first snapshot sorts only the keys added since (no steps), and its bytes are right', () => {
  const m = new KvMachine();
  const keyOf = (i: number) => new TextEncoder().encode(`key-${String((i * 7919) % 60_000).padStart(6, '0')}`);
  for (let i = 0; i < 60_000; i++) m.apply(encodeCommand({ op: 'put', key: keyOf(i), value: keyOf(i) }), ctx);
  const restored = new KvMachine();
  restored.restore(m.snapshot());
  for (const c of [m, restored]) c.apply(encodeCommand({ op: 'put', key: new TextEncoder().encode('a-new-key'), value: new Uint8Array([1]) }), ctx);
  const chunks = [...restored.snapshotStream()];
  // An empty chunk is a step of the clone's sort: 60,000 keys sorted again would take many.
  assert.equal(chunks.filter((c) => c.length === 0).length, 0);
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(m.snapshot()));
  // The original, whose keys came in hash order and were never sorted, does sort them in steps.
  assert.ok([...m.snapshotStream()].filter((c) => c.length === 0).length === 0, 'm.snapshot() above sorted its keys already');
  const fresh = new KvMachine();
  for (let i = 0; i < 60_000; i++) fresh.apply(encodeCommand({ op: 'put', key: keyOf(i), value: keyOf(i) }), ctx);
  assert.ok([...fresh.snapshotStream()].filter((c) => c.length === 0).length >= 10);
});

test('snapshot streams one after another and one abandoned midway: each has the bytes of its moment (the clones share pooled arrays only one at a time)', () => {
  const m = new KvMachine();
  const put = (i: number, v: string) => m.apply(encodeCommand({ op: 'put', key: new TextEncoder().encode(`k${String(i).padStart(6, '0')}`), value: new TextEncoder().encode(v) }), ctx);
  for (let i = 0; i < 30_000; i++) put(i, `first-${i}-${'x'.repeat(i % 200)}`);
  for (let round = 0; round < 4; round++) {
    const expected = m.snapshot();
    const stream = m.snapshotStream()[Symbol.iterator]();
    const chunks: Uint8Array[] = [];
    for (let r = stream.next(), k = 0; !r.done; r = stream.next(), k++) {
      chunks.push(r.value.slice());
      for (let n = 0; n < 50; n++) put(((k * 50 + n) * 7919 + round * 13) % 40_000, `round-${round}-${k}-${n}`); // overwrites, moves, new keys
      if (k === 0) {
        // Meanwhile another stream of the changed state, abandoned after two chunks (return()): its
        // clone must have arrays of its own, and it gives them back for the next round's clone.
        const abandon = m.snapshotStream()[Symbol.iterator]();
        abandon.next();
        abandon.next();
        abandon.return?.(undefined);
      }
    }
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(expected), `round ${round}`);
  }
});

/** The snapshot format written out by hand: "SKV1", count, then by key order each key and value with its u32 length (big endian). */
function referenceSnapshot(entries: Map<string, Uint8Array>): Buffer {
  const keys = [...entries.keys()].sort((x, y) => Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1')));
  const u32 = (n: number) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(n);
    return out;
  };
  const parts: Buffer[] = [Buffer.from('SKV1', 'latin1'), u32(keys.length)];
  for (const k of keys) {
    const key = Buffer.from(k, 'latin1');
    const value = entries.get(k)!;
    parts.push(u32(key.length), key, u32(value.length), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

test('property: a snapshot is the documented format, byte for byte (keys and values of every length, records across chunks)', () => {
  // Lengths around the four-byte copy and its set() threshold; a few large values so that records
  // straddle the stream's 1 MiB chunks.
  const key = fc.uint8Array({ minLength: 1, maxLength: 9 });
  const value = fc.oneof(
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    { weight: 1, arbitrary: fc.integer({ min: 200_000, max: 700_000 }).chain((n) => fc.integer({ min: 0, max: 255 }).map((v) => new Uint8Array(n).fill(v))) },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(key, value), { maxLength: 40 }), (puts) => {
      const m = new KvMachine({ valueBytesMax: 1 << 20 });
      const ref = new Map<string, Uint8Array>();
      for (const [k, v] of puts) {
        m.apply(encodeCommand({ op: 'put', key: k, value: v }), ctx);
        ref.set(Buffer.from(k).toString('latin1'), v);
      }
      const expected = referenceSnapshot(ref);
      assert.ok(Buffer.from(m.snapshot()).equals(expected), 'snapshot()');
      assert.ok(Buffer.concat([...m.snapshotStream()]).equals(expected), 'snapshotStream()');
    }),
    { numRuns: 80 },
  );
});

test('a snapshot record that ends at, just before or just past a stream chunk\'s end is written whole', () => {
  // The stream's chunks are 256 KiB. A first record of size s0, then records of 100 bytes (10-byte
  // key, 82-byte value): the room left in the first chunk before record k + 1 is set to 100 + d.
  const CHUNK = 256 * 1024;
  const n = 100;
  for (let d = -5; d <= 5; d++) {
    const k = 2000;
    const s0 = CHUNK - 8 - (n + d) - k * n;
    const m = new KvMachine({ valueBytesMax: 1 << 20 });
    const ref = new Map<string, Uint8Array>();
    const put = (key: string, value: Uint8Array) => {
      m.apply(encodeCommand({ op: 'put', key: b(key), value }), ctx);
      ref.set(key, value);
    };
    put('a000000000', new Uint8Array(s0 - 8 - 10).fill(1));
    for (let i = 0; i < k + 3; i++) put(`b${String(i).padStart(9, '0')}`, new Uint8Array(n - 8 - 10).fill(i & 0xff));
    const chunks = [...m.snapshotStream()];
    assert.equal(chunks[0]!.length, CHUNK, 'the stream\'s chunk size this test is built on');
    assert.ok(Buffer.concat(chunks).equals(referenceSnapshot(ref)), `room ${n + d} for a ${n}-byte record`);
  }
});
