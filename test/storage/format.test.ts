// Property tests: the record codec and the segment (group) index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  GROUP_HEADER_BYTES,
  checkRecord,
  decodeGroupHeader,
  decodeRecord,
  encodeGroupHeader,
  encodeRecord,
  recordBytes,
  validateRecord,
} from '../../src/storage/format.js';
import { GroupIndex } from '../../src/storage/group-index.js';

const recordArb = fc.record({
  type: fc.integer({ min: 1, max: 255 }),
  slot: fc.maxSafeNat(),
  ballot: fc.maxSafeNat(),
  payload: fc.uint8Array({ maxLength: 300 }),
});

test('record codec: encode then decode gives the record back, at any offset and lsn', () => {
  fc.assert(
    fc.property(recordArb, fc.maxSafeNat(), fc.nat(64), (record, lsn, pad) => {
      assert.equal(validateRecord(record, 1 << 20), null);
      const at = pad * 8;
      const bytes = new Uint8Array(at + recordBytes(record.payload.length) + 8);
      const size = encodeRecord(record, lsn, bytes, at);
      assert.equal(size, recordBytes(record.payload.length));
      assert.equal(size % 8, 0);
      assert.equal(checkRecord(bytes, at, at + size, lsn), size);
      assert.deepEqual(decodeRecord(bytes, at, lsn), { lsn, ...record, payload: Uint8Array.from(record.payload) });
    }),
  );
});

test('record codec: any single bit flip in a record (header, payload or padding) is detected', () => {
  fc.assert(
    fc.property(recordArb, fc.maxSafeNat(), fc.nat(), fc.integer({ min: 0, max: 7 }), (record, lsn, where, bit) => {
      const size = recordBytes(record.payload.length);
      const bytes = new Uint8Array(size);
      encodeRecord(record, lsn, bytes, 0);
      bytes[where % size]! ^= 1 << bit;
      assert.equal(typeof checkRecord(bytes, 0, size, lsn), 'string');
    }),
  );
});

test('record codec: a record is not accepted under another lsn, nor past its group end', () => {
  fc.assert(
    fc.property(recordArb, fc.integer({ min: 1, max: 2 ** 40 }), (record, lsn) => {
      const size = recordBytes(record.payload.length);
      const bytes = new Uint8Array(size);
      encodeRecord(record, lsn, bytes, 0);
      assert.equal(typeof checkRecord(bytes, 0, size, lsn + 1), 'string');
      assert.equal(typeof checkRecord(bytes, 0, size - 8, lsn), 'string');
    }),
  );
});

test('record validation names the bad field', () => {
  assert.match(validateRecord({ type: 256, slot: 0, ballot: 0, payload: new Uint8Array() }, 10)!, /type/);
  assert.match(validateRecord({ type: 1, slot: 1.5, ballot: 0, payload: new Uint8Array() }, 10)!, /slot/);
  assert.match(validateRecord({ type: 1, slot: 0, ballot: -1, payload: new Uint8Array() }, 10)!, /ballot/);
  assert.match(validateRecord({ type: 1, slot: 0, ballot: 0, payload: new Uint8Array(11) }, 10)!, /exceeds/);
});

test('group header: round trip and flip detection', () => {
  fc.assert(
    fc.property(
      fc.record({ epoch: fc.nat(2 ** 32 - 1), bodyBytes: fc.nat(2 ** 31), recordCount: fc.nat(2 ** 31), recordsCrc: fc.nat(2 ** 32 - 1), firstLsn: fc.maxSafeNat() }),
      fc.nat(GROUP_HEADER_BYTES * 8 - 1),
      (group, flip) => {
        const bytes = new Uint8Array(GROUP_HEADER_BYTES);
        encodeGroupHeader(group, bytes, 0);
        assert.deepEqual(decodeGroupHeader(bytes, 0), { ...group });
        bytes[flip >> 3]! ^= 1 << (flip & 7);
        assert.equal(typeof decodeGroupHeader(bytes, 0), 'string');
      },
    ),
  );
});

test('segment index: locate/next/drop agree with a linear model', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), lsnStep: fc.integer({ min: 1, max: 50 }), roll: fc.boolean() }),
    fc.record({ kind: fc.constant('dropBelow' as const), segmentStep: fc.nat(3) }),
    fc.record({ kind: fc.constant('dropFrom' as const), back: fc.nat(60) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), fc.array(fc.nat(3000), { maxLength: 30 }), (ops, probes) => {
      const index = new GroupIndex();
      let model: { firstLsn: number; segmentIndex: number; offset: number }[] = [];
      let lsn = 1;
      let segment = 1;
      let offset = 128;
      for (const o of ops) {
        if (o.kind === 'add') {
          if (o.roll) {
            segment++;
            offset = 128;
          }
          lsn += o.lsnStep;
          index.add(lsn, segment, offset);
          model.push({ firstLsn: lsn, segmentIndex: segment, offset });
          offset += 64;
        } else if (o.kind === 'dropBelow') {
          const below = (model[0]?.segmentIndex ?? segment) + o.segmentStep;
          index.dropSegmentsBelow(below);
          model = model.filter((g) => g.segmentIndex >= below);
        } else {
          const from = lsn - o.back;
          index.dropFrom(from);
          model = model.filter((g) => g.firstLsn < from);
        }
        assert.equal(index.size, model.length);
      }
      for (const probe of probes) {
        const expected = [...model].reverse().find((g) => g.firstLsn <= probe) ?? null;
        assert.deepEqual(index.locate(probe), expected);
        if (expected) {
          const at = model.indexOf(expected);
          assert.deepEqual(index.next(expected.firstLsn), model[at + 1] ?? null);
        }
      }
    }),
  );
});
