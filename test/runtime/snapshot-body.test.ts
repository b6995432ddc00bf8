// snapshotBodyHeadOf: a snapshot body that arrives in chunks is checked from its leading chunks,
// without joining the whole body (a leader adopting a follower's snapshot, replica.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionTable } from '../../src/core/sessions.js';
import { decodeSnapshotBody, encodeSnapshotBody, snapshotBodyHeadOf } from '../../src/runtime/snapshot-body.js';

/** `bytes` cut at `cuts` (offsets, any order, repeats allowed). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b).filter((c) => c > 0 && c < bytes.length);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

const headOf = (b: ReturnType<typeof decodeSnapshotBody>) => ({ slot: b.slot, configs: b.configs, addresses: b.addresses, incarnations: b.incarnations, stoppedAt: b.stoppedAt, sessions: JSON.stringify(b.sessions.toJSON()) });

test('the head read from the leading chunks is the head of the whole body, however it was cut', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 50 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 1e6 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 20 })), { maxLength: 30 }),
      fc.uint8Array({ maxLength: 3000 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (slot, sessionRows, app, cuts) => {
        const sessions = SessionTable.fromJSON<Uint8Array>(sessionRows.map(([id, floor, results]) => [id, floor, results] as [number, number, Array<[number, Uint8Array]>]));
        const whole = encodeSnapshotBody({ slot, configs: [], addresses: [[1, '127.0.0.1', 7000]], incarnations: [], sessions, app });
        const chunks = split(whole, cuts);
        const head = snapshotBodyHeadOf(chunks);
        assert.deepEqual(headOf(decodeSnapshotBody(head)), headOf(decodeSnapshotBody(whole)));
        const headBytes = 8 + new DataView(whole.buffer, whole.byteOffset).getUint32(4, true);
        if (chunks[0]!.length >= headBytes) assert.equal(head, chunks[0], 'the first chunk itself, not a copy');
        else assert.ok(head.length >= headBytes && head.length < headBytes + Math.max(...chunks.map((c) => c.length)), `joined only as far as the head: ${head.length} for ${headBytes}`);
      },
    ),
    { numRuns: 300 },
  );
});

test('a first chunk shorter than the head\'s length field: joined only as far as the head, not the whole body', () => {
  const whole = encodeSnapshotBody({ slot: 7, configs: [], addresses: [], incarnations: [], sessions: SessionTable.fromJSON<Uint8Array>([]), app: new Uint8Array(4096).fill(9) });
  const headBytes = 8 + new DataView(whole.buffer, whole.byteOffset).getUint32(4, true);
  const cuts = [3, headBytes + 10];
  for (let at = headBytes + 100; at < whole.length; at += 100) cuts.push(at);
  const chunks = split(whole, cuts);
  const head = snapshotBodyHeadOf(chunks);
  assert.equal(head.length, headBytes + 10, 'the first two chunks: up to the cut just past the head');
  assert.equal(decodeSnapshotBody(head).slot, 7);
});

test('a head length beyond what came makes decodeSnapshotBody refuse it, not read past the chunks', () => {
  const body = new Uint8Array(64);
  const view = new DataView(body.buffer);
  view.setUint32(0, 0x31424e53, true);
  view.setUint32(4, 1 << 20, true);
  assert.throws(() => decodeSnapshotBody(snapshotBodyHeadOf([body.subarray(0, 30), body.subarray(30)])), /header runs past the end/);
  assert.throws(() => decodeSnapshotBody(snapshotBodyHeadOf([])), /truncated/);
});
