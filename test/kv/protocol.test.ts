// The binary protocol's request decoder reads a frame where it lies in a socket chunk
// (decodeRequest(bytes, start, end)): the same request as from an exact buffer, whatever surrounds it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeRequest, decodeWriteInto, encodeRequest, KIND_READ, KIND_REGISTER, KIND_STATUS, KIND_WRITE, type Request, type WriteHeader } from '../../src/kv/protocol.js';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const session = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER));
const bytes = fc.uint8Array({ maxLength: 80 });
const request: fc.Arbitrary<Request> = fc.oneof(
  fc
    .record({ kind: fc.constant(KIND_WRITE), requestId: u32, clientId: session, seq: session, floor: fc.oneof(fc.constant(0), session), timeoutMs: u32, command: bytes })
    .map((r) => ({ ...r, floor: Math.min(r.floor, r.seq) })), // floor <= seq: a higher floor is refused
  fc.record({ kind: fc.constant(KIND_READ), requestId: u32, consistency: fc.constantFrom('linearizable', 'lease', 'local'), maxWaitMs: u32, query: bytes }),
  fc.record({ kind: fc.constant(KIND_STATUS), requestId: u32 }),
  fc.record({ kind: fc.constant(KIND_REGISTER), requestId: u32, timeoutMs: u32 }),
) as fc.Arbitrary<Request>;

/** The request with its byte fields as plain arrays, for comparison whatever their views. */
function fields(r: Request): Record<string, unknown> {
  const out: Record<string, unknown> = { ...r };
  for (const k of ['command', 'query']) if (k in out) out[k] = [...(out[k] as Uint8Array)];
  return out;
}

test('decodeRequest(bytes, start, end) reads a frame inside a larger chunk as the request that was encoded', () => {
  fc.assert(
    fc.property(request, bytes, bytes, (r, before, after) => {
      const payload = encodeRequest(r).subarray(4); // without the frame's length
      const chunk = new Uint8Array([...before, ...payload, ...after]);
      const decoded = decodeRequest(chunk, before.length, before.length + payload.length);
      assert.deepStrictEqual(fields(decoded), fields(r));
      assert.deepStrictEqual(fields(decodeRequest(payload)), fields(r));
      if (decoded.kind === KIND_WRITE) assert.equal(decoded.command.buffer, chunk.buffer, 'the command is a view of the chunk');
    }),
    { numRuns: 500 },
  );
});

test('decodeRequest refuses a range shorter than its header, not the bytes after it', () => {
  const payload = encodeRequest({ kind: KIND_WRITE, requestId: 7, clientId: 1, seq: 1, floor: 0, timeoutMs: 10, command: new Uint8Array(0) }).subarray(4);
  const chunk = new Uint8Array([...payload, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => decodeRequest(chunk, 0, payload.length - 1), /truncated WRITE header/);
  assert.throws(() => decodeRequest(chunk, 3, 7), /shorter than its header/);
});

test('decodeWriteInto (the server\'s hot path) fills a reused header with every field of the write, and returns a view of the chunk', () => {
  const header: WriteHeader = { requestId: -1, clientId: -1, seq: -1, floor: -1, timeoutMs: -1 };
  const write = request.filter((r) => r.kind === KIND_WRITE) as fc.Arbitrary<Extract<Request, { kind: typeof KIND_WRITE }>>;
  fc.assert(
    fc.property(write, bytes, bytes, (r, before, after) => {
      const payload = encodeRequest(r).subarray(4);
      const chunk = new Uint8Array([...before, ...payload, ...after]);
      const command = decodeWriteInto(chunk, before.length, before.length + payload.length, header);
      assert.deepStrictEqual({ ...header }, { requestId: r.requestId, clientId: r.clientId, seq: r.seq, floor: r.floor, timeoutMs: r.timeoutMs });
      assert.deepStrictEqual([...command], [...r.command]);
      assert.equal(command.buffer, chunk.buffer, 'the command is a view of the chunk');
    }),
    { numRuns: 300 },
  );
  const bad = encodeRequest({ kind: KIND_WRITE, requestId: 7, clientId: 0, seq: 1, floor: 0, timeoutMs: 10, command: new Uint8Array(0) }).subarray(4);
  assert.throws(() => decodeWriteInto(bad, 0, bad.length, header), /clientId and seq start at 1/);
  assert.throws(() => decodeWriteInto(bad, 0, 32, header), /truncated WRITE header/);
});

test('a WRITE whose floor exceeds its seq is refused, as HTTP refuses Synod-Floor above Synod-Seq (a floor at the seq is fine)', () => {
  const write = (seq: number, floor: number) => encodeRequest({ kind: KIND_WRITE, requestId: 7, clientId: 3, seq, floor, timeoutMs: 10, command: new Uint8Array(0) }).subarray(4);
  const header: WriteHeader = { requestId: -1, clientId: -1, seq: -1, floor: -1, timeoutMs: -1 };
  assert.throws(() => decodeRequest(write(4, 5)), /floor \(5\) may not exceed seq \(4\): the floor is the lowest seq not yet answered/);
  const over = write(1, 2 ** 40);
  assert.throws(() => decodeWriteInto(over, 0, over.length, header), /floor \(1099511627776\) may not exceed seq \(1\)/);
  const at = write(4, 4);
  decodeWriteInto(at, 0, at.length, header);
  assert.deepStrictEqual([header.seq, header.floor], [4, 4]);
});
