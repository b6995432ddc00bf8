import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteTable } from '../../src/kv/byte-table.js';
import { setContracts } from '../../src/core/contracts.js';

setContracts(true);

const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
const byteOrder = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b));

type Op =
  | { kind: 'set'; key: Uint8Array; value: Uint8Array }
  | { kind: 'delete'; key: Uint8Array }
  | { kind: 'sorted' }
  | { kind: 'compact' }
  | { kind: 'prefetch'; keys: Uint8Array[] };

// Few distinct keys (so sets overwrite and deletes hit), values of every size around the page
// thresholds (so records move, large ones get pages of their own, garbage builds up).
const key = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((k) => k.map((x) => x % 4));
const value = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 100, maxLength: 700 }));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), key, value }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sorted' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'compact' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('prefetch' as const), keys: fc.array(key, { maxLength: 12 }) }) },
);

/**
 * Most bytes of pages a table may hold for what it holds now: a record keeps room for at most
 * twice its value plus 64 bytes; garbage is compacted once past the records and compactMinBytes;
 * a regular page's tail left unused is under an eighth of it (larger records get their own page),
 * the page being filled aside.
 */
function pageBytesBound(t: ByteTable, pageBytes: number, compactMinBytes: number): number {
  const records = 2 * t.bytes + 64 * t.size;
  return Math.floor((8 / 7) * (2 * records + compactMinBytes)) + pageBytes;
}

function check(t: ByteTable, model: Map<string, Uint8Array>, pageBytes?: number, compactMinBytes?: number): void {
  if (pageBytes !== undefined) {
    const bound = pageBytesBound(t, pageBytes, compactMinBytes!);
    assert.ok(t.pageBytesHeld <= bound, `${t.pageBytesHeld} bytes of pages held for ${t.bytes} bytes of keys and values (bound ${bound})`);
  }
  assert.equal(t.size, model.size);
  let bytes = 0;
  for (const [k, v] of model) {
    bytes += k.length / 2 + v.length;
    const kb = Buffer.from(k, 'hex');
    const e = t.find(kb, 0, kb.length);
    assert.ok(e >= 0, `key ${k} missing`);
    assert.equal(hex(t.value(e)), hex(v), `value of ${k}`);
    assert.ok(t.valueEquals(e, v));
  }
  assert.equal(t.bytes, bytes);
  const order = [...t.sorted()].map((e) => hex(t.key(e)));
  const expected = [...model.keys()].sort((a, b) => byteOrder(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
  assert.deepEqual(order, expected);
}

/** Applies a set, delete or compact to the table and the model (true), or leaves other ops to the caller (false). */
function applyChange(t: ByteTable, model: Map<string, Uint8Array>, o: { kind: string; key?: Uint8Array; value?: Uint8Array }): boolean {
  if (o.kind === 'set') {
    t.set(o.key!, 0, o.key!.length, o.value!, 0, o.value!.length);
    model.set(hex(o.key!), o.value!);
  } else if (o.kind === 'delete') {
    assert.equal(t.delete(o.key!, 0, o.key!.length), model.delete(hex(o.key!)));
  } else if (o.kind === 'compact') {
    t.compact();
  } else return false;
  return true;
}

test('property: ByteTable behaves as a Map of byte strings, in key order, across moves, deletes (the order kept or dropped), compaction and index doublings (at once or incremental)', () => {
  fc.assert(
    // deferredIdsMin 1 or 4: the key order is dropped (ids of deleted keys freed) after a few
    // deletes without a sort; 4096: deleted ids wait for the next sort, which filters them out.
    // indexSlotsMin 4: the index doubles again and again; rehashIncrementalMin 4 or 64: from
    // the first doubling or the fifth, incrementally (keys in two indexes, whole runs moved),
    // one old slot per change or sixteen (the default). entriesMin 4: the entry fields double
    // again and again, copied ahead from 7/8 of the ids (prepareEntriesMin 4; contracts check
    // the copy at each doubling) or at once.
    fc.property(
      fc.array(op, { maxLength: 300, size: 'medium' }),
      fc.integer(),
      fc.constantFrom(1, 4, 4096),
      fc.constantFrom(4, 64),
      fc.constantFrom(1, 16),
      fc.constantFrom(4, 1 << 30),
      (ops, seed, deferredIdsMin, rehashIncrementalMin, rehashStepSlots, prepareEntriesMin) => {
        const t = new ByteTable({ seed, pageBytes: 2048, compactMinBytes: 512, deferredIdsMin, indexSlotsMin: 4, rehashIncrementalMin, rehashStepSlots, entriesMin: 4, prepareEntriesMin });
        const model = new Map<string, Uint8Array>();
        for (const o of ops) {
          if (o.kind === 'set') {
            // The key and value as views inside larger buffers, as commands are.
            const buf = new Uint8Array(3 + o.key.length + o.value.length + 2);
            buf.set(o.key, 3);
            buf.set(o.value, 3 + o.key.length);
            const previous = t.set(buf, 3, o.key.length, buf, 3 + o.key.length, o.value.length);
            const before = model.get(hex(o.key));
            assert.equal(previous, before === undefined ? -1 : before.length);
            buf.fill(0xee); // the table copied what it keeps
            model.set(hex(o.key), o.value);
          } else if (o.kind === 'delete') {
            assert.equal(t.delete(o.key, 0, o.key.length), model.delete(hex(o.key)));
          } else if (o.kind === 'sorted') {
            check(t, model, 2048, 512);
          } else if (o.kind === 'prefetch') {
            // Keys present and absent, as views at odd offsets of one buffer; nothing may change.
            const buf = new Uint8Array(1 + o.keys.reduce((n, k) => n + k.length, 0));
            const from = new Int32Array(o.keys.length);
            const len = new Int32Array(o.keys.length);
            let at = 1;
            o.keys.forEach((k, i) => {
              buf.set(k, at);
              from[i] = at;
              len[i] = k.length;
              at += k.length;
            });
            t.prefetch(o.keys.map(() => buf), from, len, o.keys.length);
            check(t, model);
          } else t.compact();
        }
        check(t, model, 2048, 512);
        for (const k of ['00', '0001', '03030303']) {
          const kb = Buffer.from(k, 'hex');
          if (!model.has(k)) assert.equal(t.find(kb, 0, kb.length), -1);
        }
      },
    ),
    // A failure deep in a long sequence shrinks for minutes: report what shrinking has after 30 s.
    { numRuns: 300, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true },
  );
});

test('ByteTable: 100,000 keys with growth, a lower bound by prefix, and deletes of every other key', () => {
  const t = new ByteTable({ seed: 7 });
  const keyOf = (i: number) => new TextEncoder().encode(`k${String(i).padStart(7, '0')}`);
  for (let i = 0; i < 100_000; i++) {
    const k = keyOf(i);
    t.set(k, 0, k.length, k, 0, k.length);
  }
  assert.equal(t.size, 100_000);
  const at = t.lowerBound(new TextEncoder().encode('k00500'));
  assert.equal(new TextDecoder().decode(t.key(t.sorted()[at]!)), 'k0050000');
  for (let i = 0; i < 100_000; i += 2) {
    const k = keyOf(i);
    assert.ok(t.delete(k, 0, k.length));
  }
  assert.equal(t.size, 50_000);
  for (let i = 0; i < 100_000; i++) {
    const k = keyOf(i);
    const e = t.find(k, 0, k.length);
    if (i % 2 === 0) assert.equal(e, -1);
    else assert.equal(new TextDecoder().decode(t.value(e)), `k${String(i).padStart(7, '0')}`);
  }
  const sorted = t.sorted();
  assert.equal(sorted.length, 50_000);
  for (let i = 1; i < sorted.length; i++) assert.ok(byteOrder(t.key(sorted[i - 1]!), t.key(sorted[i]!)) < 0);
});

// A snapshot's clone sorts in steps while the table goes on changing, then the table adopts the
// order the clone found. Small runs and steps, so the stepwise merge sort and merge really step.
type CloneOp = Op | { kind: 'clone' } | { kind: 'step'; n: number } | { kind: 'adopt' };
const cloneOp: fc.Arbitrary<CloneOp> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('set' as const), key, value }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'compact' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'clone' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('step' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'adopt' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sorted' as const }) },
);

test('property: a clone sorts in steps from the state it was taken in, and the table adopts its order whatever changed meanwhile (keys added, deleted, ids reused, the order dropped or rebuilt)', () => {
  fc.assert(
    fc.property(
      fc.array(cloneOp, { maxLength: 300 }),
      fc.integer(),
      fc.constantFrom(1, 4, 4096),
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 8 }),
      fc.boolean(),
      (ops, seed, deferredIdsMin, sortRun, sortStep, warmClones) => {
        // warmClones: the clones copy into spare pages made ahead (pageBytes 2048: a spare per page).
        const t = new ByteTable({ seed, pageBytes: 2048, compactMinBytes: 512, deferredIdsMin, sortRun, sortStep, warmClones, prefaultPages: 1 });
        const model = new Map<string, Uint8Array>();
        let clone: { table: ByteTable; steps: Generator<void, Int32Array>; expected: string[]; values: Map<string, string>; order: Int32Array | null } | null = null;
        const finish = () => {
          const c = clone!;
          while (c.order === null) {
            const r = c.steps.next();
            if (r.done) c.order = r.value;
          }
          // The clone's order is that of the keys when it was taken, and it reads their values then.
          assert.deepEqual([...c.order].map((e) => hex(c.table.key(e))), c.expected);
          for (const e of c.order) assert.equal(hex(c.table.value(e)), c.values.get(hex(c.table.key(e))));
        };
        for (const o of ops) {
          if (applyChange(t, model, o)) continue;
          if (o.kind === 'sorted') {
            check(t, model);
          } else if (o.kind === 'clone') {
            const c = t.clone();
            const expected = [...model.keys()].sort((a, b) => byteOrder(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
            clone = { table: c, steps: c.sortedInSteps(), expected, values: new Map([...model].map(([k, v]) => [k, hex(v)])), order: null };
          } else if (o.kind === 'step') {
            for (let i = 0; i < o.n && clone !== null && clone.order === null; i++) {
              const r = clone.steps.next();
              if (r.done) clone.order = r.value;
            }
          } else if (clone !== null) {
            finish();
            t.adoptOrder(clone.table);
            clone.table.releaseClone(); // its arrays go to the pool: the next clone copies into them
            clone = null;
          }
        }
        if (clone !== null) {
          finish();
          t.adoptOrder(clone.table);
          clone.table.releaseClone();
        }
        check(t, model);
        // And a clone of the table after all that sorts to the same order.
        const c = t.clone();
        assert.deepEqual([...c.sorted()].map((e) => hex(c.key(e))), [...t.sorted()].map((e) => hex(t.key(e))));
      },
    ),
    { numRuns: 400 },
  );
});

test('ByteTable: a clone sorts 60,000 new keys in steps of bounded work; the table adopts the order, and its next clone has nothing left to sort', () => {
  const t = new ByteTable({ seed: 3 });
  const keyOf = (i: number) => new TextEncoder().encode(`k${String((i * 7919) % 100_000).padStart(7, '0')}`);
  for (let i = 0; i < 40_000; i++) {
    const k = keyOf(i);
    t.set(k, 0, k.length, k, 0, k.length);
  }
  t.sorted();
  for (let i = 40_000; i < 100_000; i++) {
    const k = keyOf(i);
    t.set(k, 0, k.length, k, 0, k.length);
  }
  const c = t.clone();
  const steps = c.sortedInSteps();
  let yields = 0;
  let order: Int32Array;
  for (;;) {
    const r = steps.next();
    if (r.done) {
      order = r.value;
      break;
    }
    yields++;
    // Meanwhile the table changes: new keys, and deletes of keys the clone is sorting.
    if (yields <= 100) {
      const k = new TextEncoder().encode(`n${yields}`);
      t.set(k, 0, k.length, k, 0, k.length);
      const d = keyOf(yields);
      assert.ok(t.delete(d, 0, d.length));
    }
  }
  assert.ok(yields >= 20, `sorted 60,000 keys in ${yields} steps`);
  assert.equal(order.length, 100_000);
  for (let i = 1; i < order.length; i++) assert.ok(byteOrder(c.key(order[i - 1]!), c.key(order[i]!)) < 0);
  t.adoptOrder(c);
  const next = t.clone().sortedInSteps();
  let more = 0;
  while (!next.next().done) more++;
  // Only the 100 keys added while the first clone sorted are left to sort (fewer than a run: no yield).
  assert.equal(more, 0);
  const sorted = t.sorted();
  assert.equal(sorted.length, 100_000);
  for (let i = 1; i < sorted.length; i++) assert.ok(byteOrder(t.key(sorted[i - 1]!), t.key(sorted[i]!)) < 0);
});

const u32Key = (i: number) => {
  const k = new Uint8Array(8);
  new DataView(k.buffer).setUint32(0, Math.imul(i, 0x9e3779b1) >>> 0);
  new DataView(k.buffer).setUint32(4, i);
  return k;
};
const valueOf = (i: number, round: number) => new Uint8Array(12).fill((i + round) & 0xff);

test('ByteTable: 200,000 keys through index and entry growth into arrays made ahead (warm clones, clones taken and released on the way, deletes and overwrites): every key reads back, every clone reads its moment', () => {
  const t = new ByteTable({ seed: 11, warmClones: true });
  const model = new Map<number, number>(); // key number -> round of its value
  let clone: { table: ByteTable; at: Map<number, number> } | null = null;
  const checkClone = () => {
    const c = clone!;
    const order = c.table.sorted();
    assert.equal(order.length, c.at.size);
    for (const e of order) {
      const i = new DataView(c.table.key(e).buffer).getUint32(4);
      assert.deepEqual(c.table.value(e), valueOf(i, c.at.get(i)!), `clone: key ${i}`);
    }
    c.table.releaseClone();
    clone = null;
  };
  for (let i = 0; i < 200_000; i++) {
    const k = u32Key(i);
    t.set(k, 0, 8, valueOf(i, 0), 0, 12);
    model.set(i, 0);
    if (i % 7 === 3) {
      const d = u32Key(i - 3);
      assert.equal(t.delete(d, 0, 8), true);
      model.delete(i - 3);
    }
    if (i % 5 === 1) {
      const o = u32Key(i - 1);
      if (model.has(i - 1)) {
        t.set(o, 0, 8, valueOf(i - 1, 1), 0, 12);
        model.set(i - 1, 1);
      }
    }
    if (i % 45_000 === 44_999) {
      if (clone !== null) checkClone();
      clone = { table: t.clone(), at: new Map(model) };
    }
  }
  if (clone !== null) checkClone();
  assert.equal(t.size, model.size);
  for (const [i, round] of model) {
    const k = u32Key(i);
    const e = t.find(k, 0, 8);
    assert.ok(e >= 0, `key ${i} missing`);
    assert.deepEqual(t.value(e), valueOf(i, round), `key ${i}`);
  }
});

test('ByteTable: a clone taken right after the entry fields double copies them into the spare made for it while it is still being faulted in; later inserts do not touch the clone', () => {
  // Small thresholds and one page touched per record, so that the spare copy of the entry fields
  // (made when they double at 2,048 ids) is still queued when the clone takes it.
  // Pages of 4 KiB: the ids' page fields differ, so zeros written into a copy of them would show.
  const t = new ByteTable({ seed: 5, warmClones: true, prepareEntriesMin: 1024, prefaultPages: 1, pageBytes: 4096 });
  let n = 0;
  const add = () => {
    const k = u32Key(n);
    t.set(k, 0, 8, valueOf(n, 0), 0, 12);
    n++;
  };
  while (n < 2049) add(); // the 2,049th id doubles the fields (512 -> ... -> 2,048 -> 4,096 ids)
  const c = t.clone();
  for (let i = 0; i < 20_000; i++) add(); // more records: the prefaulter goes on touching what is queued
  const order = c.sorted();
  assert.equal(order.length, 2049);
  for (const e of order) {
    const i = new DataView(c.key(e).buffer).getUint32(4);
    assert.ok(i < 2049);
    assert.deepEqual(c.value(e), valueOf(i, 0), `clone: key ${i}`);
  }
  c.releaseClone();
  for (let i = 0; i < n; i++) {
    const e = t.find(u32Key(i), 0, 8);
    assert.ok(e >= 0, `key ${i} missing`);
    assert.deepEqual(t.value(e), valueOf(i, 0));
  }
});

test('ByteTable: 8 KB values (a spare page queued every 131 records, one page touched per record) through doublings of the index and of the entry fields (copied ahead): every key reads back', () => {
  const t = new ByteTable({ seed: 9, warmClones: true, prepareEntriesMin: 1024, prefaultPages: 1 });
  const value = (i: number) => new Uint8Array(8000).fill(i & 0xff);
  const n = 4200; // past 2,048 and 4,096 ids (entry fields) and 2,049 keys (index to 8,192 slots)
  for (let i = 0; i < n; i++) t.set(u32Key(i), 0, 8, value(i), 0, 8000);
  for (let i = 0; i < n; i++) {
    const e = t.find(u32Key(i), 0, 8);
    assert.ok(e >= 0, `key ${i} missing`);
    assert.ok(t.valueEquals(e, value(i)), `value of key ${i}`);
  }
});

test('property: prefixScan gives the first keys with a prefix in key order and whether more follow, with the added keys sorted or picked without sorting (scanSortAddedMax 0, 3 or the default), across deletes, compaction and a dropped order', () => {
  const scanOp = fc.record({
    kind: fc.constant('scan' as const),
    prefix: fc.uint8Array({ maxLength: 2 }).map((k) => k.map((x) => x % 4)),
    limit: fc.integer({ min: 1, max: 6 }),
    after: fc.option(fc.uint8Array({ maxLength: 3 }).map((k) => k.map((x) => x % 4)), { nil: null }),
  });
  const ops = fc.array(fc.oneof({ weight: 8, arbitrary: op }, { weight: 3, arbitrary: scanOp }), { maxLength: 250 });
  fc.assert(
    fc.property(ops, fc.integer(), fc.constantFrom(0, 3, 4096), fc.constantFrom(1, 4096), (list, seed, scanSortAddedMax, deferredIdsMin) => {
      const t = new ByteTable({ seed, pageBytes: 2048, compactMinBytes: 512, deferredIdsMin, scanSortAddedMax });
      const model = new Map<string, Uint8Array>();
      for (const o of list) {
        if (applyChange(t, model, o)) continue;
        if (o.kind === 'sorted') {
          t.sorted();
        } else if (o.kind === 'scan') {
          const p = hex(o.prefix);
          const after = o.after === null ? null : Buffer.from(o.after);
          const all = [...model.keys()]
            .filter((k) => k.startsWith(p) && (after === null || byteOrder(Buffer.from(k, 'hex'), after) > 0))
            .sort((a, b) => byteOrder(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
          const r = t.prefixScan(o.prefix, o.limit, o.after);
          assert.deepEqual(r.ids.map((e) => hex(t.key(e))), all.slice(0, o.limit), `scan ${p} limit ${o.limit} after ${after?.toString('hex')}`);
          assert.equal(r.more, all.length > o.limit);
          for (const e of r.ids) assert.equal(hex(t.value(e)), hex(model.get(hex(t.key(e)))!));
        }
      }
    }),
    { numRuns: 400 },
  );
});

test('ByteTable.prefixScan with 50,000 keys added since the last sort picks its matches without sorting them, and leaves them unsorted (a clone still has them to sort)', () => {
  const t = new ByteTable({ seed: 4 });
  const keyOf = (i: number) => new TextEncoder().encode(`k${String((i * 7919) % 100_000).padStart(6, '0')}`);
  for (let i = 0; i < 50_000; i++) t.set(keyOf(i), 0, 7, keyOf(i), 0, 7);
  t.sorted();
  for (let i = 50_000; i < 100_000; i++) t.set(keyOf(i), 0, 7, keyOf(i), 0, 7);
  const prefix = new TextEncoder().encode('k0123');
  const r = t.prefixScan(prefix, 7);
  assert.deepEqual(r.ids.map((e) => new TextDecoder().decode(t.key(e))), ['k012300', 'k012301', 'k012302', 'k012303', 'k012304', 'k012305', 'k012306']);
  assert.equal(r.more, true);
  const all = t.prefixScan(new Uint8Array(0), 3);
  assert.deepEqual(all.ids.map((e) => new TextDecoder().decode(t.key(e))), ['k000000', 'k000001', 'k000002']);
  // The 50,000 added keys are still unsorted: a clone sorts them in steps.
  const c = t.clone();
  let steps = 0;
  for (const it = c.sortedInSteps(); !it.next().done; ) steps++;
  assert.ok(steps > 0, 'the scan sorted the added keys');
});

test('ByteTable.prefixScan without sorting, after deletes since the last sort: no deleted key is returned (from the key order or from the added keys), a deleted and re-added key once', () => {
  const t = new ByteTable({ seed: 2, scanSortAddedMax: 0 });
  const k = (s: string) => new TextEncoder().encode(s);
  for (const s of ['a', 'b', 'd']) t.set(k(s), 0, 1, k(s), 0, 1);
  t.sorted();
  assert.equal(t.delete(k('a'), 0, 1), true); // in the key order
  t.set(k('c'), 0, 1, k('c'), 0, 1);
  t.set(k('e'), 0, 1, k('e'), 0, 1);
  assert.equal(t.delete(k('e'), 0, 1), true); // among the added keys
  t.set(k('d'), 0, 1, k('D'), 0, 1); // overwritten in place
  assert.equal(t.delete(k('b'), 0, 1), true);
  t.set(k('b'), 0, 1, k('B'), 0, 1); // deleted, then added again (a new id)
  const r = t.prefixScan(new Uint8Array(0), 10);
  const td = new TextDecoder();
  assert.deepEqual(r.ids.map((e) => `${td.decode(t.key(e))}=${td.decode(t.value(e))}`), ['b=B', 'c=c', 'd=D']);
  assert.equal(r.more, false);
});

test('ByteTable: an index of 2,048 slots doubles incrementally from 1/2 full (1,025 keys) and is done within 1/16 of its slots in inserts and deletes; every key is found after every change, with overwrites and deletes in both indexes meanwhile', () => {
  for (const seed of [1, 2, 3, 4]) {
    const t = new ByteTable({ seed, indexSlotsMin: 2048, rehashIncrementalMin: 2048 });
    const model = new Map<number, number>();
    const put = (i: number, v: number) => {
      t.set(u32Key(i), 0, 8, valueOf(i, v), 0, 12);
      model.set(i, v);
    };
    let n = 0;
    while (n < 1024) put(n++, 0);
    assert.deepEqual(t.indexState(), { slots: 2048, moving: 0 });
    put(n++, 0); // 1,025 > 1/2 of 2,048
    const started = t.indexState();
    assert.equal(started.slots, 4096);
    assert.ok(started.moving > 1000, `${started.moving} keys left to move`);
    // Inserts and deletes each move 16 old slots or more (and so do overwrites of keys not yet moved).
    let moving = 1;
    let changes = 1;
    for (let round = 0; t.indexState().moving > 0; round++) {
      // A new key, an overwrite of an early key (likely still in the old index), a delete.
      const kind = round % 3;
      if (kind === 0) {
        put(n++, 0);
        moving++;
      } else if (kind === 1) put((round * 7) % n, round);
      else {
        const k = (round * 13) % n;
        const present = model.delete(k);
        assert.equal(t.delete(u32Key(k), 0, 8), present);
        if (present) moving++;
      }
      changes++;
      for (const [k, v] of model) {
        const e = t.find(u32Key(k), 0, 8);
        assert.ok(e >= 0, `seed ${seed}: key ${k} lost after ${changes} changes`);
        assert.deepEqual(t.value(e), valueOf(k, v));
      }
      assert.equal(t.find(u32Key(100_000), 0, 8), -1);
    }
    assert.ok(moving <= 2048 / 16 + 1, `${moving} inserts and deletes to move 2,048 slots`);
    assert.equal(t.size, model.size);
    assert.deepEqual(
      [...t.sorted()].map((e) => new DataView(t.key(e).buffer).getUint32(4)).sort((a, b) => a - b),
      [...model.keys()].sort((a, b) => a - b),
    );
  }
});

test('ByteTable.clear() on a table grown past its first entry fields: keys set and deleted afterwards sort correctly (ids past the first 512 are marked when deleted)', () => {
  const t = new ByteTable({ seed: 3 });
  for (let i = 0; i < 5000; i++) t.set(u32Key(i), 0, 8, valueOf(i, 0), 0, 12);
  t.clear();
  assert.equal(t.size, 0);
  for (let i = 0; i < 3000; i++) t.set(u32Key(i), 0, 8, valueOf(i, 1), 0, 12);
  t.sorted();
  for (let i = 0; i < 3000; i += 2) assert.ok(t.delete(u32Key(i), 0, 8));
  for (let i = 3000; i < 3100; i++) t.set(u32Key(i), 0, 8, valueOf(i, 1), 0, 12);
  const order = [...t.sorted()].map((e) => new DataView(t.key(e).buffer).getUint32(4)).sort((a, b) => a - b);
  const expected = [...Array.from({ length: 1500 }, (_, j) => 2 * j + 1), ...Array.from({ length: 100 }, (_, j) => 3000 + j)];
  assert.deepEqual(order, expected);
});

test('ByteTable.prefixScan without sorting, after a delete, with ids past the delete marks (they cover only the ids deleted): keys with high ids are not taken for deleted', () => {
  const t = new ByteTable({ seed: 4, scanSortAddedMax: 0 });
  t.sorted();
  for (let i = 0; i < 2000; i++) t.set(u32Key(i), 0, 8, valueOf(i, 0), 0, 12); // ids 0..1999, all added since the sort
  assert.ok(t.delete(u32Key(3), 0, 8)); // a low id: the marks stay short
  const r = t.prefixScan(new Uint8Array(0), 5000);
  const got = r.ids.map((e) => new DataView(t.key(e).buffer).getUint32(4)).sort((a, b) => a - b);
  assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => i).filter((i) => i !== 3));
  assert.equal(r.more, false);
});

test('ByteTable: values overwritten by much smaller ones give their room back (1,000 keys set to 2,000 bytes, half of them 300 bytes, then all to 1 byte: the pages held 1.16 MB for 4.9 KB of keys and values)', () => {
  const pageBytes = 4096;
  const compactMinBytes = 8192;
  const t = new ByteTable({ seed: 5, pageBytes, compactMinBytes });
  const keyOf = (i: number) => new TextEncoder().encode(`k${i}`);
  const large = new Uint8Array(2000).fill(7); // a page of its own each (over pageBytes / 8)
  const middle = new Uint8Array(300).fill(8); // in the shared pages
  for (let i = 0; i < 1000; i++) t.set(keyOf(i), 0, keyOf(i).length, i % 2 === 0 ? large : middle, 0, i % 2 === 0 ? large.length : middle.length);
  for (let i = 0; i < 1000; i++) t.set(keyOf(i), 0, keyOf(i).length, Uint8Array.of(i & 0xff), 0, 1);
  const bound = pageBytesBound(t, pageBytes, compactMinBytes);
  assert.ok(t.pageBytesHeld <= bound, `${t.pageBytesHeld} bytes of pages held for ${t.bytes} bytes of keys and values (bound ${bound})`);
  for (let i = 0; i < 1000; i++) {
    const e = t.find(keyOf(i), 0, keyOf(i).length);
    assert.deepEqual(t.value(e), Uint8Array.of(i & 0xff));
  }
  // And they grow again in place of the small ones.
  for (let i = 0; i < 1000; i += 3) t.set(keyOf(i), 0, keyOf(i).length, large, 0, large.length);
  for (let i = 0; i < 1000; i++) assert.equal(t.valueLength(t.find(keyOf(i), 0, keyOf(i).length)), i % 3 === 0 ? large.length : 1);
});
