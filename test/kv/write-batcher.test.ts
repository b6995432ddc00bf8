import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Socket } from 'node:net';
import { encodeResponse } from '../../src/kv/protocol.js';
import { WriteBatcher } from '../../src/kv/write-batcher.js';

/** A socket that records what is written to it. */
function fakeSocket(): { socket: Socket; written: Buffer[] } {
  const written: Buffer[] = [];
  const socket = { destroyed: false, write: (b: Uint8Array) => written.push(Buffer.from(b)) } as unknown as Socket;
  return { socket, written };
}

test('property: a tick of answers and ready frames is written as one buffer, byte for byte what encodeResponse and the frames give', async () => {
  const item = fc.oneof(
    fc.record({ kind: fc.constant('response' as const), status: fc.integer({ min: 0, max: 255 }), id: fc.integer({ min: 0, max: 0xffffffff }), body: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ kind: fc.constant('frame' as const), body: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 30 }), async (items) => {
      const { socket, written } = fakeSocket();
      const out = new WriteBatcher(socket);
      const expected: Uint8Array[] = [];
      for (const it of items) {
        if (it.kind === 'response') {
          out.writeResponse(it.status, it.id, it.body);
          expected.push(encodeResponse(it.status, it.id, it.body));
        } else {
          out.write(it.body);
          expected.push(it.body);
        }
      }
      assert.equal(written.length, 0); // nothing before the tick ends
      await new Promise((r) => process.nextTick(r));
      assert.equal(written.length, 1);
      assert.deepEqual(written[0], Buffer.concat(expected));
    }),
    { numRuns: 200 },
  );
});

test('property: reserved frames go out in order with ready frames and answers, one write a tick; a reserved frame\'s bytes stay as written', async () => {
  const item = fc.oneof(
    // Sizes only (the bytes follow from the size and a seed, so a counterexample stays short); large
    // ones too: a run that outgrows the slab moves to a new one (copied), a frame larger than a slab gets its own.
    fc.record({ kind: fc.constant('reserve' as const), bytes: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 20_000, max: 70_000 })), seed: fc.integer({ min: 0, max: 255 }) }),
    // Answers small (encoded into the slab's run) and large (over 4 KiB with the header: kept, copied at flush).
    fc.record({ kind: fc.constant('response' as const), status: fc.integer({ min: 0, max: 255 }), id: fc.integer({ min: 0, max: 0xffffffff }), body: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 4080, maxLength: 4100 })) }),
    fc.record({ kind: fc.constant('frame' as const), body: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  );
  await fc.assert(
    // Slabs of the default size, of a server's 8 KiB, and tiny ones (every run outgrows its slab).
    fc.asyncProperty(fc.array(fc.array(item, { minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 4 }), fc.constantFrom(undefined, 8192, 64), async (ticks, slabBytes) => {
      const { socket, written } = fakeSocket();
      const out = new WriteBatcher(socket, slabBytes);
      const kept: Array<{ view: Uint8Array; bytes: Uint8Array }> = [];
      for (const items of ticks) {
        const expected: Uint8Array[] = [];
        for (const it of items) {
          if (it.kind === 'reserve') {
            const body = Buffer.from(Uint8Array.from({ length: it.bytes }, (_, i) => (i * 31 + it.seed) & 0xff));
            const at = out.reserve(body.length);
            out.buffer.set(body, at);
            kept.push({ view: out.buffer.subarray(at, at + body.length), bytes: body });
            expected.push(body);
          } else if (it.kind === 'response') {
            out.writeResponse(it.status, it.id, it.body);
            expected.push(encodeResponse(it.status, it.id, it.body));
          } else {
            out.write(it.body);
            expected.push(it.body);
          }
        }
        const before = written.length;
        await new Promise((r) => process.nextTick(r));
        assert.equal(written.length, before + 1, 'one socket write a tick');
        assert.deepEqual(written[before], Buffer.concat(expected));
      }
      for (const k of kept) assert.deepEqual(k.view, k.bytes, 'a kept view of a reserved frame is unchanged');
    }),
    { numRuns: 200 },
  );
});

test('reserve: refuses an empty or non-integer size', () => {
  const out = new WriteBatcher(fakeSocket().socket);
  assert.throws(() => out.reserve(0), RangeError);
  assert.throws(() => out.reserve(1.5), RangeError);
});

test('reserve: a tick of many small frames moves to a new slab O(log n) times, not once per frame', async () => {
  const { socket, written } = fakeSocket();
  const out = new WriteBatcher(socket);
  const slabs = new Set<Uint8Array>();
  const frames = 20_000; // ~2 MB in one tick, as a client with thousands of requests in flight
  for (let i = 0; i < frames; i++) {
    const at = out.reserve(100);
    out.buffer.fill(i & 0xff, at, at + 100);
    slabs.add(out.buffer);
  }
  await new Promise((r) => process.nextTick(r));
  assert.ok(slabs.size <= 8, `${slabs.size} slabs for one tick of ${frames} frames (each move copies the run so far)`);
  assert.equal(written.length, 1);
  assert.equal(written[0]!.length, frames * 100);
  for (const i of [0, 1, 655, 19_999]) assert.equal(written[0]![i * 100 + 99], i & 0xff);
});

test('large answers of one tick go out as they pass 16 MiB, in order, not as one buffer of the whole tick', async () => {
  const { socket, written } = fakeSocket();
  const out = new WriteBatcher(socket);
  const body = (n: number) => new Uint8Array(6 * 1024 * 1024).fill(n);
  const expected: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) {
    out.writeResponse(0, i, body(i));
    expected.push(encodeResponse(0, i, body(i)));
  }
  assert.ok(written.length >= 2, `written before the tick ended: ${written.length} writes`);
  await new Promise((r) => process.nextTick(r));
  assert.ok(written.every((w) => w.length <= 16 * 1024 * 1024 + 6 * 1024 * 1024 + 9), 'no write of the whole tick');
  assert.deepEqual(Buffer.concat(written), Buffer.concat(expected));
});
