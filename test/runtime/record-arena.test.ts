// The recent log's record arena (src/runtime/record-arena.ts): copies packed into reused chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordArena } from '../../src/runtime/record-arena.js';

const CHUNK = 256;

test('property: every copy keeps its bytes until released, whatever is copied and released meanwhile; chunks are reused, not piled up', () => {
  const op = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('copy' as const), length: fc.integer({ min: 0, max: 100 }), fill: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(), oldest: fc.boolean() }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const arena = new RecordArena(CHUNK);
      const live: Array<{ copy: Uint8Array; expect: Uint8Array }> = [];
      for (const o of ops) {
        if (o.kind === 'copy') {
          const source = new Uint8Array(o.length).fill(o.fill);
          const copy = arena.copy(source);
          const expect = source.slice();
          if (o.length * 4 <= CHUNK) {
            assert.notEqual(copy.buffer, source.buffer, 'a small one is copied');
            source.fill(o.fill ^ 0xff); // the caller may reuse its bytes
          } else {
            assert.equal(copy, source, 'a large one is kept as given');
          }
          live.push({ copy, expect });
        } else if (live.length > 0) {
          const [gone] = live.splice(o.oldest ? 0 : o.pick % live.length, 1);
          arena.release(gone!.copy);
        }
        for (const { copy, expect } of live) assert.deepEqual(copy, expect);
      }
      // Bounded by what is live: every chunk in use holds a live copy, except the current one, and
      // at most two spares are kept.
      assert.ok(arena.chunkBytesHeld <= (live.length + 3) * CHUNK, `${arena.chunkBytesHeld} bytes of chunks for ${live.length} live copies`);
      for (const { copy } of live) arena.release(copy);
      assert.ok(arena.chunkBytesHeld <= 3 * CHUNK, 'with nothing live: the current chunk and two spares at most');
    }),
  );
});

test('released oldest first, the arena cycles through the same few chunks', () => {
  const arena = new RecordArena(CHUNK);
  const window: Uint8Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for (let i = 0; i < 10_000; i++) {
    const copy = arena.copy(new Uint8Array(40).fill(i & 0xff));
    buffers.add(copy.buffer);
    window.push(copy);
    if (window.length > 12) arena.release(window.shift()!); // ~2 chunks of copies held
    assert.equal(window[0]![39], (i - window.length + 1) & 0xff);
  }
  assert.ok(buffers.size <= 5, `${buffers.size} chunks made for 10,000 copies`);
  assert.ok(arena.chunkBytesHeld <= 5 * CHUNK, `${arena.chunkBytesHeld} bytes of chunks held at the end`);
});
