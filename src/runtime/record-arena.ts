// Copies of byte strings kept for a while and released roughly in the order they came (the recent
// log's entry records), packed into a few large chunks that are reused once all they hold is
// released.
//
// Why: each log record is its encoder's own ArrayBuffer. Held for the recent log's window (about
// half a second at 100,000 writes/s with 4 MiB), the records lived through two scavenges on the
// leader and were promoted, and V8 counts the external memory that promoted buffers keep against
// the old generation's limit: with only ~12 MB of old-generation objects, the leader ran a full
// collection every ~3 s (a 5–15 ms pause). Copied here, the records die young; the chunks are old
// and stay (docs/performance.md, "Session 16").
//
//   chunks (in use):  [ r r r . r | r r r r r | r r . . . ]   <- current: appends go here
//   spares:           [ free chunk ] [ free chunk ]            reused before allocating one
//
// A chunk goes back to the spares when the last copy in it is released and it is not the current
// one. Copies larger than a quarter of a chunk are not packed: the caller's bytes are kept as they
// are (they would waste most of a chunk, and such records are rare).

/** Default chunk size: the recent log's default bound (4 MiB) spans about four of them. */
export const ARENA_CHUNK_BYTES = 1024 * 1024;
/** Free chunks kept for reuse; more are left to the garbage collector. */
const SPARE_CHUNKS_MAX = 2;

interface Chunk {
  readonly bytes: Uint8Array;
  used: number;
  live: number;
}

export class RecordArena {
  private readonly chunks: Chunk[] = [];
  private current: Chunk | null = null;
  private readonly spares: Uint8Array[] = [];

  constructor(private readonly chunkBytes = ARENA_CHUNK_BYTES) {
    if (!Number.isInteger(chunkBytes) || chunkBytes < 64) throw new RangeError(`arena chunk size ${chunkBytes}: at least 64 bytes`);
  }

  /** Bytes of the chunks in use and spare (what the arena holds, copies or not). */
  get chunkBytesHeld(): number {
    return (this.chunks.length + this.spares.length) * this.chunkBytes;
  }

  /**
   * A copy of `bytes` that stays as it is until release(copy); large ones are `bytes` itself (the
   * caller must not change them either).
   */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n * 4 > this.chunkBytes) return bytes;
    let chunk = this.current;
    if (chunk === null || chunk.used + n > this.chunkBytes) chunk = this.nextChunk();
    const at = chunk.used;
    chunk.bytes.set(bytes, at);
    chunk.used = at + n;
    chunk.live++;
    return chunk.bytes.subarray(at, at + n);
  }

  /** `copy` (a copy() result) is no longer used: its chunk may be reused once all its copies are released. */
  release(copy: Uint8Array): void {
    const chunks = this.chunks;
    // Released roughly oldest first: the chunk is almost always the first.
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      if (chunk.bytes.buffer !== copy.buffer) continue;
      if (--chunk.live > 0) return;
      if (chunk === this.current) {
        chunk.used = 0; // nothing in it is used any more: start it over
      } else {
        chunks.splice(i, 1);
        if (this.spares.length < SPARE_CHUNKS_MAX) this.spares.push(chunk.bytes);
      }
      return;
    }
    // Not in a chunk: a large one kept as given.
  }

  private nextChunk(): Chunk {
    const chunk: Chunk = { bytes: this.spares.pop() ?? new Uint8Array(this.chunkBytes), used: 0, live: 0 };
    this.chunks.push(chunk);
    this.current = chunk;
    return chunk;
  }
}
