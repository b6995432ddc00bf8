import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FRAME_HEADER_BYTES, FrameDecoder, TransportError, encodeFrame } from '../../src/transport/index.js';

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('frame decoder: random chunking of a stream of frames yields exactly the frames, zero-copy when whole (with and without a growing buffer)', () => {
  const frameBytesMax = 300;
  for (const growFromBytes of [0, 16]) fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: frameBytesMax }), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (frames, cutSeeds) => {
        const stream = concat(frames.map(encodeFrame));
        // Cut points, sorted and distinct, inside the stream.
        const cuts = [...new Set(cutSeeds.map((c) => (stream.length ? c % (stream.length + 1) : 0)))].sort((x, y) => x - y);
        const bounds = [0, ...cuts, stream.length];
        // Each chunk in its own ArrayBuffer, as sockets deliver them.
        const chunks: Uint8Array[] = [];
        for (let i = 0; i + 1 < bounds.length; i++) chunks.push(stream.slice(bounds[i], bounds[i + 1]));
        const decoder = new FrameDecoder(frameBytesMax, growFromBytes);
        const out: { frame: Uint8Array; chunk: Uint8Array }[] = [];
        for (const chunk of chunks) {
          const error = decoder.push(chunk, (frame) => out.push({ frame: frame.slice(), chunk: frame.buffer === chunk.buffer ? chunk : new Uint8Array(0) }));
          assert.equal(error, null);
          assert.ok(decoder.bufferedBytes() <= FRAME_HEADER_BYTES + frameBytesMax);
        }
        assert.equal(decoder.bufferedBytes(), 0);
        assert.deepEqual(
          out.map((o) => o.frame),
          frames.map((f) => new Uint8Array(f)),
        );
        // Zero-copy: a non-empty frame whose bytes lie within one chunk is a view of that chunk.
        let offset = 0;
        frames.forEach((frame, i) => {
          const start = offset + FRAME_HEADER_BYTES;
          const end = start + frame.length;
          offset = end;
          const chunkIndex = bounds.findIndex((b, k) => k + 1 < bounds.length && b <= start && end <= bounds[k + 1]! && start < bounds[k + 1]!);
          if (frame.length > 0 && chunkIndex >= 0) assert.ok(out[i]!.chunk.length > 0, `frame ${i} was copied although whole in chunk ${chunkIndex}`);
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('frame decoder: pushRanges (frames read in place), alone or mixed with push, yields exactly the frames; an oversized one is the same error', () => {
  const frameBytesMax = 300;
  for (const growFromBytes of [0, 16]) fc.assert(
    fc.property(
      // Bytes 0 and 1 too: a chunk that starts inside a frame then often looks like a header.
      fc.array(fc.oneof(fc.uint8Array({ maxLength: frameBytesMax }), fc.uint8Array({ max: 1, maxLength: frameBytesMax })), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.boolean(), { minLength: 41, maxLength: 41 }),
      fc.boolean(),
      (frames, cutSeeds, useRanges, oversizedLast) => {
        const stream = concat([...frames.map(encodeFrame), ...(oversizedLast ? [encodeFrame(new Uint8Array(frameBytesMax + 1))] : [])]);
        const cuts = [...new Set(cutSeeds.map((c) => (stream.length ? c % (stream.length + 1) : 0)))].sort((x, y) => x - y);
        const bounds = [0, ...cuts, stream.length];
        const decoder = new FrameDecoder(frameBytesMax, growFromBytes);
        const out: Uint8Array[] = [];
        let error: TransportError | null = null;
        for (let i = 0; i + 1 < bounds.length && error === null; i++) {
          const chunk = stream.slice(bounds[i], bounds[i + 1]);
          error = useRanges[i]
            ? decoder.pushRanges(chunk, (bytes, start, end) => out.push(bytes.slice(start, end)))
            : decoder.push(chunk, (frame) => out.push(frame.slice()));
        }
        assert.deepEqual(out, frames.map((f) => new Uint8Array(f)));
        if (oversizedLast) assert.equal(error?.code, 'SYNOD_TRANSPORT_FRAME_TOO_LARGE');
        else {
          assert.equal(error, null);
          assert.equal(decoder.bufferedBytes(), 0);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('frame decoder: a header one byte at a time, then zero-length frames', () => {
  const decoder = new FrameDecoder(16);
  const stream = concat([encodeFrame(new Uint8Array([7, 8, 9])), encodeFrame(new Uint8Array(0)), encodeFrame(new Uint8Array(0))]);
  const got: number[][] = [];
  for (const byte of stream) assert.equal(decoder.push(new Uint8Array([byte]), (f) => got.push([...f])), null);
  assert.deepEqual(got, [[7, 8, 9], [], []]);
});

test('frame decoder: an oversized header is an error before any allocation, and stays one', () => {
  const decoder = new FrameDecoder(1024);
  const before = process.memoryUsage().arrayBuffers;
  let delivered = 0;
  const header = new Uint8Array([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]);
  const error = decoder.push(header, () => delivered++);
  assert.ok(error instanceof TransportError);
  assert.equal(error.code, 'SYNOD_TRANSPORT_FRAME_TOO_LARGE');
  assert.match(error.message, /4294967280 bytes exceeds frameBytesMax 1024/);
  assert.equal(decoder.bufferedBytes(), 0);
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  assert.equal(decoder.push(encodeFrame(new Uint8Array(1)), () => delivered++), error);
  assert.equal(delivered, 0);
  // Exactly at the limit is fine, one more is not.
  const ok = new FrameDecoder(5);
  assert.equal(ok.push(encodeFrame(new Uint8Array(5)), () => delivered++), null);
  assert.equal(delivered, 1);
  assert.equal(ok.push(encodeFrame(new Uint8Array(6)), () => delivered++)?.code, 'SYNOD_TRANSPORT_FRAME_TOO_LARGE');
});

test('frame decoder: a partial frame holds at most header + frameBytesMax', () => {
  const max = 64 * 1024;
  const decoder = new FrameDecoder(max);
  const frame = encodeFrame(new Uint8Array(max).fill(3));
  let got: Uint8Array | null = null;
  for (let at = 0; at < frame.length; at += 1000) {
    decoder.push(frame.subarray(at, Math.min(frame.length, at + 1000)), (f) => (got = f));
    assert.ok(decoder.bufferedBytes() <= FRAME_HEADER_BYTES + max);
  }
  assert.ok(got !== null);
  assert.equal((got as Uint8Array).length, max);
});

test('frame decoder with growFromBytes: a header announcing the largest frame reserves about what has arrived, not the frame', () => {
  const max = 2 * 1024 * 1024;
  const grow = 64 * 1024;
  const frame = encodeFrame(new Uint8Array(max).map((_, i) => i * 7));
  const growing = new FrameDecoder(max, grow);
  const whole = new FrameDecoder(max);
  assert.equal(growing.push(frame.subarray(0, 9), () => assert.fail('not whole yet')), null);
  assert.equal(whole.push(frame.subarray(0, 9), () => assert.fail('not whole yet')), null);
  assert.equal(growing.reservedBytes(), grow);
  assert.equal(whole.reservedBytes(), max, 'without growFromBytes: the whole frame at once (the peer transport)');
  // Fed in 10,000-byte chunks: never more than twice what arrived (or growFromBytes), the same frame at the end.
  let got: Uint8Array | null = null;
  for (let at = 9; at < frame.length; at += 10_000) {
    growing.push(frame.subarray(at, Math.min(frame.length, at + 10_000)), (f) => (got = f.slice()));
    if (got === null) assert.ok(growing.reservedBytes() <= Math.max(grow, 2 * (growing.bufferedBytes() - FRAME_HEADER_BYTES)), `${growing.reservedBytes()} reserved for ${growing.bufferedBytes()} received`);
  }
  assert.deepEqual(got, frame.subarray(FRAME_HEADER_BYTES));
  assert.equal(growing.reservedBytes(), 0);
  // A frame smaller than growFromBytes gets exactly its length, as without.
  const small = new FrameDecoder(max, grow);
  small.push(encodeFrame(new Uint8Array(100)).subarray(0, 50), () => {});
  assert.equal(small.reservedBytes(), 100);
});
