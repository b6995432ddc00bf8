// Fuzz properties over every decoder that the codec/transport tests do not already cover:
// storage segment scanning and records, the snapshot body, the KV codec, the KV binary protocol,
// and the HTTP API. Shared by test/security/fuzz.test.ts (short pass, in `npm test`) and
// scripts/fuzz.mjs (long pass, `npm run fuzz`), which differ only in numRuns.
//
// Inputs are random bytes, and valid encodings mutated by truncation, bit flips, byte overwrites,
// insertions and "attacker-chosen lengths" (a u32 overwritten with 0, 2^31, 2^32-1...). Every
// property asserts that the decoder returns a value or its own typed error (never another
// exception), in bounded time, and that nothing it returns is larger than its input (no
// allocation driven by a length field alone).
import fc from 'fast-check';
import assert from 'node:assert/strict';
import {
  DATA_START,
  GROUP_HEADER_BYTES,
  chainRecordCrc,
  checkRecord,
  decodeGroupHeader,
  decodeRecord,
  decodeSegmentHeader,
  encodeGroupHeader,
  encodeRecord,
  encodeSegmentHeader,
  recordBytes,
  type LogRecord,
} from '../../src/storage/format.js';
import { findGroupAfter, scanSegment } from '../../src/storage/scan.js';
import { decodeSnapshotBody, encodeSnapshotBody } from '../../src/runtime/snapshot-body.js';
import { SessionTable } from '../../src/core/sessions.js';
import { KvCodecError, decodeCommand, decodeQuery, decodeResult, encodeCommand, encodeQuery, encodeResult, type KvResult } from '../../src/kv/codec.js';
import { ProtocolError, decodeNotLeader, decodeRequest, decodeResponse, encodeRequest, KIND_READ, KIND_STATUS, KIND_WRITE } from '../../src/kv/protocol.js';

/** A decode call slower than this is a failure (a loop driven by the input). Generous: shared CI cores. */
export const DECODE_MS_MAX = 250;

export interface FuzzTarget {
  name: string;
  /** numRuns of the short pass (npm test); the long pass multiplies it. */
  runs: number;
  property: () => fc.IRawProperty<unknown>;
}

// ---------------------------------------------------------------- mutations

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'length'; at: number; value: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('length' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 7, 8, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0100_0000) }),
);

export function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = input.slice();
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    if (m.kind === 'flip') bytes[at]! ^= 1 << m.bit;
    else if (m.kind === 'truncate') bytes = bytes.slice(0, at);
    else if (m.kind === 'set') bytes[at] = m.value;
    else if (m.kind === 'insert') bytes = Uint8Array.from([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
    else if (bytes.length >= 4) {
      const u32At = Math.min(at, bytes.length - 4);
      new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(u32At, m.value, (m.at & 1) === 1);
    }
  }
  return bytes;
}

/** Random bytes, or a valid encoding with 1..4 mutations (the interesting half). */
export function hostile(valid: fc.Arbitrary<Uint8Array>, maxRandomBytes = 512): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandomBytes }) },
    { weight: 3, arbitrary: fc.tuple(valid, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([bytes, ms]) => mutate(bytes, ms)) },
  );
}

/** Runs `decode`, checks its duration, and classifies the outcome. */
function timed<T>(decode: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  const started = performance.now();
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: decode() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  const ms = performance.now() - started;
  assert.ok(ms < DECODE_MS_MAX, `decode took ${ms.toFixed(1)} ms`);
  return outcome;
}

function expectTyped(outcome: { ok: boolean; error?: unknown }, type: new (...a: never[]) => Error, what: string): void {
  if (outcome.ok) return;
  if (!(outcome.error instanceof type)) {
    const e = outcome.error as Error;
    assert.fail(`${what} threw ${e?.constructor?.name ?? typeof e} (${e?.message}) instead of ${type.name}`);
  }
}

// ---------------------------------------------------------------- storage

const SEGMENT_INDEX = 3;
const SEGMENT_BYTES = 8 * 1024;

const recordArb: fc.Arbitrary<LogRecord> = fc.record({
  type: fc.integer({ min: 1, max: 255 }),
  slot: fc.nat(),
  ballot: fc.nat(),
  payload: fc.uint8Array({ maxLength: 200 }),
});

/** A valid segment image: header, groups of records from LSN `firstLsn`, then zeroes. */
export function buildSegment(groups: LogRecord[][], firstLsn: number): Uint8Array {
  const bytes = new Uint8Array(SEGMENT_BYTES);
  encodeSegmentHeader({ formatVersion: 1, backendKind: 1, segmentIndex: SEGMENT_INDEX, capacity: SEGMENT_BYTES }, bytes);
  let at = DATA_START;
  let lsn = firstLsn;
  for (const records of groups) {
    const body = records.reduce((sum, r) => sum + recordBytes(r.payload.length), 0);
    if (at + GROUP_HEADER_BYTES + body + GROUP_HEADER_BYTES > SEGMENT_BYTES) break;
    let chain = 0;
    let recordAt = at + GROUP_HEADER_BYTES;
    for (const [i, record] of records.entries()) {
      encodeRecord(record, lsn + i, bytes, recordAt);
      chain = chainRecordCrc(chain, bytes, recordAt);
      recordAt += recordBytes(record.payload.length);
    }
    encodeGroupHeader({ epoch: SEGMENT_INDEX, bodyBytes: body, recordCount: records.length, recordsCrc: chain, firstLsn: lsn }, bytes, at);
    lsn += records.length;
    at = recordAt;
  }
  return bytes;
}

const segmentArb = fc
  .tuple(fc.array(fc.array(recordArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 1_000 }))
  .map(([groups, firstLsn]) => ({ groups, firstLsn, bytes: buildSegment(groups, firstLsn) }));

const storageTargets: FuzzTarget[] = [
  {
    name: 'storage: scanSegment on random/truncated/bit-flipped segments reports damage, never throws, accepts only original records',
    runs: 300,
    property: () =>
      fc.property(segmentArb, fc.array(mutationArb, { minLength: 0, maxLength: 4 }), fc.boolean(), (segment, mutations, anyStart) => {
        const bytes = mutate(segment.bytes, mutations);
        const originals = new Map<number, LogRecord>();
        let lsn = segment.firstLsn;
        for (const group of segment.groups) for (const record of group) originals.set(lsn++, record);
        const seen: number[] = [];
        const outcome = timed(() =>
          scanSegment(bytes, SEGMENT_INDEX, anyStart ? null : segment.firstLsn, bytes.length, (b, at, recordLsn) => {
            const record = decodeRecord(b, at, recordLsn);
            seen.push(recordLsn);
            // Every mutation here is a burst of at most 32 bits (or a shift), which CRC32C always
            // detects, and a group is accepted whole: so an accepted record is exactly the record
            // written at that LSN, whatever the mutations did.
            const original = originals.get(recordLsn);
            assert.ok(original !== undefined, `accepted a record at lsn ${recordLsn}, which was never written`);
            assert.deepEqual([record.type, record.slot, record.ballot, [...record.payload]], [original.type, original.slot, original.ballot, [...original.payload]]);
            assert.ok(record.payload.length <= b.length);
          }),
        );
        assert.ok(outcome.ok, `scanSegment threw: ${String((outcome as { error?: unknown }).error)}`);
        const scan = outcome.value;
        assert.ok(scan.endOffset >= DATA_START && scan.endOffset <= Math.max(DATA_START, bytes.length));
        if (scan.damage !== null) assert.equal(typeof scan.damage.reason, 'string');
        if (mutations.length === 0) {
          assert.equal(scan.damage, null);
          assert.equal(seen.length, originals.size);
        }
        const found = timed(() => findGroupAfter(bytes, scan.endOffset, SEGMENT_INDEX));
        assert.ok(found.ok && (found.value === -1 || (found.value % 8 === 0 && found.value >= scan.endOffset)));
      }),
  },
  {
    name: 'storage: header, group header and record checks on hostile bytes return a value or a reason string',
    runs: 400,
    property: () =>
      fc.property(hostile(segmentArb.map((s) => s.bytes.subarray(0, 1024)), 1024), fc.nat(), fc.nat(), (bytes, atSeed, lsn) => {
        const header = timed(() => decodeSegmentHeader(bytes));
        assert.ok(header.ok);
        const at = bytes.length === 0 ? 0 : (atSeed % bytes.length) & ~7;
        const group = timed(() => decodeGroupHeader(bytes, at));
        assert.ok(group.ok);
        const record = timed(() => checkRecord(bytes, at, bytes.length, lsn));
        assert.ok(record.ok, `checkRecord threw: ${String((record as { error?: unknown }).error)}`);
        if (typeof record.value === 'number') {
          assert.ok(at + record.value <= bytes.length);
          const decoded = timed(() => decodeRecord(bytes, at, lsn));
          assert.ok(decoded.ok && decoded.value.payload.length <= bytes.length);
        }
      }),
  },
];

// ---------------------------------------------------------------- snapshot body

const snapshotArb = fc
  .record({
    slot: fc.nat(),
    app: fc.uint8Array({ maxLength: 200 }),
    sessions: fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.nat(100), fc.array(fc.tuple(fc.nat(100), fc.uint8Array({ maxLength: 16 })), { maxLength: 3 })), { maxLength: 3 }),
  })
  .map(({ slot, app, sessions }) =>
    encodeSnapshotBody({ slot, configs: [], addresses: [[1, '127.0.0.1', 7000]], incarnations: [[1, '0123456789abcdef0123456789abcdef']], sessions: SessionTable.fromJSON<Uint8Array>(sessions), app }),
  );

/** What decodeSnapshotBody threw that was not its own "snapshot body: ..." Error (reported, see docs/testing.md). */
export const snapshotUnclearErrors = new Map<string, number>();

const snapshotTargets: FuzzTarget[] = [
  {
    name: 'snapshot body: decodeSnapshotBody on hostile bytes returns or throws an Error, bounded by its input',
    runs: 400,
    property: () =>
      fc.property(hostile(snapshotArb), (bytes) => {
        const outcome = timed(() => decodeSnapshotBody(bytes));
        if (outcome.ok) {
          assert.ok(outcome.value.app.length <= bytes.length);
          return;
        }
        assert.ok(outcome.error instanceof Error, 'threw a non-Error');
        if (!outcome.error.message.startsWith('snapshot body')) {
          const key = `${outcome.error.name}: ${outcome.error.message.replace(/\d+/g, 'N').replace(/["'`(].*$/s, '').slice(0, 60)}`;
          snapshotUnclearErrors.set(key, (snapshotUnclearErrors.get(key) ?? 0) + 1);
        }
      }),
  },
];

// ---------------------------------------------------------------- KV codec and binary protocol

const key = fc.uint8Array({ minLength: 1, maxLength: 64 });
const value = fc.uint8Array({ maxLength: 128 });
const commandArb = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key, value }),
  fc.record({ op: fc.constant('delete' as const), key }),
  fc.record({ op: fc.constant('cas' as const), key, expected: fc.option(value, { nil: null }), value }),
).map((c) => encodeCommand(c));
const queryArb = fc.oneof(fc.record({ op: fc.constant('get' as const), key }), fc.record({ op: fc.constant('scan' as const), prefix: value, limit: fc.integer({ min: 1, max: 10_000 }) })).map((q) => encodeQuery(q));
const resultArb = fc.oneof(
  fc.record({ kind: fc.constant('ok' as const), value: fc.option(value, { nil: undefined }) }),
  fc.constant({ kind: 'not-found' as const }),
  fc.record({ kind: fc.constant('cas-failed' as const), current: fc.option(value, { nil: null }) }),
  fc.record({ kind: fc.constant('scan' as const), entries: fc.array(fc.tuple(key, value), { maxLength: 4 }), more: fc.boolean() }),
  fc.record({ kind: fc.constant('error' as const), code: fc.integer({ min: 1, max: 4 }), message: fc.string({ maxLength: 40 }) }),
).map((r) => encodeResult(r as KvResult));
const requestArb = fc.oneof(
  fc.record({ kind: fc.constant(KIND_WRITE), requestId: fc.nat(), clientId: fc.integer({ min: 1, max: 2 ** 40 }), seq: fc.integer({ min: 1, max: 2 ** 40 }), floor: fc.nat(), timeoutMs: fc.nat(), command: commandArb }),
  fc.record({ kind: fc.constant(KIND_READ), requestId: fc.nat(), consistency: fc.constantFrom('linearizable' as const, 'lease' as const, 'local' as const), maxWaitMs: fc.nat(), query: queryArb }),
  fc.record({ kind: fc.constant(KIND_STATUS), requestId: fc.nat() }),
).map((r) => encodeRequest(r).subarray(4)); // the decoder takes the payload without the frame length

function totalBytes(x: unknown, depth = 0): number {
  if (x instanceof Uint8Array) return x.length;
  if (depth > 4 || x === null || typeof x !== 'object') return 0;
  return Object.values(x as Record<string, unknown>).reduce<number>((sum, v) => sum + totalBytes(v, depth + 1), 0);
}

const kvTargets: FuzzTarget[] = [
  {
    name: 'kv codec: decodeCommand/decodeQuery/decodeResult return or throw KvCodecError, bounded by their input',
    runs: 500,
    property: () =>
      fc.property(fc.oneof(hostile(commandArb), hostile(queryArb), hostile(resultArb)), (bytes) => {
        for (const decode of [decodeCommand, decodeQuery, decodeResult] as Array<(b: Uint8Array) => unknown>) {
          const outcome = timed(() => decode(bytes));
          expectTyped(outcome, KvCodecError, decode.name);
          if (outcome.ok) assert.ok(totalBytes(outcome.value) <= bytes.length);
        }
      }),
  },
  {
    name: 'kv protocol: decodeRequest/decodeResponse/decodeNotLeader return or throw ProtocolError',
    runs: 500,
    property: () =>
      fc.property(hostile(requestArb), (bytes) => {
        const request = timed(() => decodeRequest(bytes));
        expectTyped(request, ProtocolError, 'decodeRequest');
        if (request.ok) assert.ok(totalBytes(request.value) <= bytes.length);
        expectTyped(timed(() => decodeResponse(bytes)), ProtocolError, 'decodeResponse');
        const notLeader = timed(() => decodeNotLeader(bytes));
        assert.ok(notLeader.ok);
      }),
  },
];

export const decoderTargets: FuzzTarget[] = [...storageTargets, ...snapshotTargets, ...kvTargets];
