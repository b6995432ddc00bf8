// The replicated key-value map: a StateMachine over the commands of ./codec.ts.
//
// Design note
// -----------
// Keys are byte strings, held with their values in a ByteTable (./byte-table.ts): a hash table in
// typed arrays, looked up with the command's own bytes (no string per command, no object per
// entry). Snapshots and prefix scans walk its key order (byte order), kept between changes of
// the key set; writes stay O(1).
//
// Determinism: apply() depends only on the command bytes and the current map. Limits are part
// of the cluster's configuration (every replica must be started with the same valueBytesMax);
// a command over a limit yields the same ERROR result on every replica, and never changes the map.
// Edges (HTTP, binary protocol) check the same limits first so that such commands are rarely
// proposed at all.

import type { ApplyContext, StateMachine } from '../runtime/api.js';
import { ByteTable } from './byte-table.js';
import {
  decodeCommand,
  decodeQuery,
  encodeResult,
  ERR_BAD_LIMIT,
  ERR_KEY_TOO_LARGE,
  ERR_MALFORMED,
  ERR_VALUE_TOO_LARGE,
  KEY_BYTES_MAX,
  KvCodecError,
  OP_GET,
  OP_PUT,
  RES_NOT_FOUND,
  RES_OK,
  SCAN_BYTES_MAX,
  SCAN_LIMIT_MAX,
  putU32be,
  u32be,
  VALUE_BYTES_MAX_DEFAULT,
  type KvCommand,
  type KvQuery,
  type KvResult,
} from './codec.js';

const SNAPSHOT_MAGIC = 0x534b5631; // "SKV1"

// The common answers, shared rather than allocated per command (a typed array per PUT on every
// replica): results are read-only bytes everywhere (the session table keeps them, replies copy them).
const OK_RESULT = Uint8Array.of(RES_OK);
const NOT_FOUND_RESULT = Uint8Array.of(RES_NOT_FOUND);
const EMPTY = new Uint8Array(0);

export interface KvMachineOptions {
  /** Largest value accepted. Default 1 MiB. Must be equal on every replica of a cluster. */
  valueBytesMax?: number;
  /**
   * Most bytes of entries one scan answers (8 + key + value each) beyond its first entry; past it
   * the scan stops early with `more`. Default SCAN_BYTES_MAX (4 MiB), or two entries of the largest
   * size if less: a binary client takes answers of up to 2 x valueBytesMax + 64 KiB. Need not be
   * the same on every replica (scans are not in the log).
   */
  scanBytesMax?: number;
}

export interface KvStats {
  keys: number;
  /** Key and value bytes held. */
  bytes: number;
  puts: number;
  deletes: number;
  casSwapped: number;
  casFailed: number;
  rejected: number;
}

export class KvMachine implements StateMachine {
  readonly valueBytesMax: number;
  readonly scanBytesMax: number;
  private table = new ByteTable({ warmClones: true });
  private prefetchBufs: Uint8Array[] = [];
  private prefetchFrom = new Int32Array(0);
  private prefetchLen = new Int32Array(0);
  /** prefetch()'s loads feed this, so that they are not optimised away. */
  prefetchSink = 0;
  private readonly counts = { puts: 0, deletes: 0, casSwapped: 0, casFailed: 0, rejected: 0 };

  constructor(options: KvMachineOptions = {}) {
    this.valueBytesMax = options.valueBytesMax ?? VALUE_BYTES_MAX_DEFAULT;
    if (!Number.isInteger(this.valueBytesMax) || this.valueBytesMax < 1 || this.valueBytesMax > 0x7fffffff) {
      throw new RangeError(`valueBytesMax must be an integer in 1..2^31-1, got ${this.valueBytesMax}`);
    }
    this.scanBytesMax = options.scanBytesMax ?? Math.min(SCAN_BYTES_MAX, 2 * (8 + KEY_BYTES_MAX + this.valueBytesMax));
    if (!Number.isInteger(this.scanBytesMax) || this.scanBytesMax < 0) throw new RangeError(`scanBytesMax must be a non-negative integer, got ${this.scanBytesMax}`);
  }

  // ---------------------------------------------------------------- StateMachine

  /**
   * The keys of a slot's PUTs looked up in one go before they are applied (ByteTable.prefetch):
   * their cache misses overlap instead of coming one per command. Other commands are left to
   * apply(). Changes nothing.
   */
  prefetch(commands: readonly Uint8Array[]): void {
    this.prefetchRoom(commands.length);
    let k = 0;
    for (let i = 0; i < commands.length; i++) {
      const c = commands[i]!;
      k = this.queuePrefetch(k, c, 0, c.length);
    }
    this.runPrefetch(k);
  }

  /**
   * The same as prefetch() for commands where they lie in a batch's bytes (StateMachine.prefetchAt).
   */
  prefetchAt(bytes: Uint8Array, offsets: Int32Array, lengths: Int32Array, n: number): void {
    this.prefetchRoom(n);
    let k = 0;
    for (let i = 0; i < n; i++) k = this.queuePrefetch(k, bytes, offsets[i]!, lengths[i]!);
    this.runPrefetch(k);
  }

  private prefetchRoom(n: number): void {
    if (this.prefetchFrom.length >= n) return;
    this.prefetchBufs = new Array<Uint8Array>(n);
    this.prefetchFrom = new Int32Array(n);
    this.prefetchLen = new Int32Array(n);
  }

  /** The key of the command `c[from, from + len)` as the k-th to look up, if it is a valid PUT; the next k. */
  private queuePrefetch(k: number, c: Uint8Array, from: number, len: number): number {
    const valueAt = this.validPutValueAt(c, from, len);
    if (valueAt < 0) return k;
    this.prefetchBufs[k] = c;
    this.prefetchFrom[k] = from + 5;
    this.prefetchLen[k] = valueAt - 9;
    return k + 1;
  }

  private runPrefetch(k: number): void {
    this.prefetchSink = this.table.prefetch(this.prefetchBufs, this.prefetchFrom, this.prefetchLen, k);
    this.prefetchBufs.fill(EMPTY, 0, k); // the commands are borrowed: not kept past this call
  }

  /**
   * apply() of `bytes[offset, offset + length)` without a view of it (StateMachine.applyAt): a PUT
   * is applied where it lies; anything else goes through apply() with a view (rare on the hot path).
   */
  applyAt(bytes: Uint8Array, offset: number, length: number, context?: ApplyContext): Uint8Array {
    return this.applyValidPut(bytes, offset, length) ?? this.apply(bytes.subarray(offset, offset + length), context);
  }

  apply(command: Uint8Array, _context?: ApplyContext): Uint8Array {
    const fast = this.applyValidPut(command);
    if (fast !== null) return fast;
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(command);
    } catch (e) {
      this.counts.rejected++;
      return encodeResult({ kind: 'error', code: ERR_MALFORMED, message: (e as Error).message });
    }
    const refusal = this.checkCommand(cmd);
    if (refusal) {
      this.counts.rejected++;
      return encodeResult(refusal);
    }
    return encodeResult(this.execute(cmd));
  }

  query(request: Uint8Array): Uint8Array {
    // The common case, a well-formed GET, without decoding into objects (as applyValidPut).
    const r = request;
    if (r.length >= 6 && r[0] === OP_GET) {
      const keyBytes = u32be(r, 1);
      if (keyBytes >= 1 && keyBytes <= KEY_BYTES_MAX && 5 + keyBytes === r.length) {
        const e = this.table.find(r, 5, keyBytes);
        if (e < 0) return NOT_FOUND_RESULT;
        const out = new Uint8Array(1 + this.table.valueLength(e));
        out[0] = RES_OK;
        this.table.copyValue(e, out, 1);
        return out;
      }
    }
    let q: KvQuery;
    try {
      q = decodeQuery(request);
    } catch (e) {
      return encodeResult({ kind: 'error', code: ERR_MALFORMED, message: (e as Error).message });
    }
    return encodeResult(this.read(q));
  }

  snapshot(): Uint8Array {
    // serialize() in one chunk of the whole size: the same encoder as snapshotStream()'s.
    const [bytes] = serialize(this.table, this.table.sorted(), Number.MAX_SAFE_INTEGER);
    return bytes!;
  }

  /**
   * The same bytes as snapshot(), produced later from a copy taken now (a few milliseconds for
   * 100,000 keys), in chunks of SNAPSHOT_CHUNK_BYTES: the runtime writes each before asking for the
   * next, so applies go on in between instead of waiting for the whole serialisation.
   */
  snapshotStream(): Iterable<Uint8Array> {
    const clone = this.table.clone();
    // The clone sorts the keys added since the last snapshot in steps (an empty chunk between two:
    // the runtime lets the event loop run there), then this table takes the order it found; when
    // the stream ends (or is abandoned with return()), the clone's arrays go back to this table's
    // pool for the next clone.
    return streamClone(clone, () => this.table.adoptOrder(clone));
  }

  restore(snapshot: Uint8Array): void {
    const view = new DataView(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
    const bad = (why: string) => new KvCodecError(`kv snapshot: ${why}`);
    if (snapshot.length < 8 || view.getUint32(0) !== SNAPSHOT_MAGIC) throw bad('bad magic (not a key-value snapshot)');
    const count = view.getUint32(4);
    const table = new ByteTable({ warmClones: true });
    let prevAt = -1;
    let prevLen = 0;
    let off = 8;
    for (let i = 0; i < count; i++) {
      if (off + 4 > snapshot.length) throw bad(`truncated at entry ${i}`);
      const klen = view.getUint32(off);
      // A key no command can make (apply() refuses empty and oversized keys) is damage, and would
      // stay for good: no command could delete it.
      if (klen === 0 || klen > KEY_BYTES_MAX) throw bad(`key of ${klen} bytes at entry ${i} (keys are 1..${KEY_BYTES_MAX})`);
      off += 4;
      if (off + klen + 4 > snapshot.length) throw bad(`truncated at entry ${i}`);
      const keyAt = off;
      off += klen;
      const vlen = view.getUint32(off);
      off += 4;
      if (off + vlen > snapshot.length) throw bad(`truncated at entry ${i}`);
      if (prevAt >= 0 && !(compareRanges(snapshot, prevAt, prevLen, keyAt, klen) < 0)) throw bad(`keys out of order at entry ${i}`);
      table.set(snapshot, keyAt, klen, snapshot, off, vlen); // copies: the snapshot's buffer is not kept
      prevAt = keyAt;
      prevLen = klen;
      off += vlen;
    }
    if (off !== snapshot.length) throw bad(`${snapshot.length - off} trailing bytes`);
    table.orderIsInsertionOrder(); // checked above: strictly increasing keys
    this.table = table;
  }

  // ---------------------------------------------------------------- direct access (tests, metrics)

  get size(): number {
    return this.table.size;
  }

  stats(): KvStats {
    return { keys: this.table.size, bytes: this.table.bytes, ...this.counts };
  }

  /** A copy of the value at `key`, or undefined (a local read of this replica's state). */
  get(key: Uint8Array): Uint8Array | undefined {
    const e = this.table.find(key, 0, key.length);
    return e < 0 ? undefined : this.table.value(e);
  }

  // ---------------------------------------------------------------- internals

  /**
   * The common case, a well-formed PUT within the limits, applied without decoding it into
   * objects (one per command on every replica: the apply loop's main cost). Anything else returns
   * null and takes the general path, which gives the same result for the same bytes.
   */
  /**
   * Why the edges should not propose these command bytes (malformed, or over a limit), or null.
   * A well-formed PUT is recognised without decoding (the binary server calls this per write).
   */
  refuseEncoded(command: Uint8Array): string | null {
    if (this.validPutValueAt(command) > 0) return null;
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(command);
    } catch (e) {
      return (e as Error).message;
    }
    const refusal = this.checkCommand(cmd);
    return refusal && refusal.kind === 'error' ? refusal.message : null;
  }

  /**
   * If the command `c[from, from + len)` is a PUT within the limits, where its value starts
   * (counted from `from`), else -1.
   */
  private validPutValueAt(c: Uint8Array, from = 0, len = c.length): number {
    if (len < 9 || c[from] !== OP_PUT) return -1;
    const keyBytes = u32be(c, from + 1);
    if (keyBytes === 0 || keyBytes > KEY_BYTES_MAX || 9 + keyBytes > len) return -1;
    const at = 5 + keyBytes;
    const valueBytes = u32be(c, from + at);
    return valueBytes > this.valueBytesMax || at + 4 + valueBytes !== len ? -1 : at + 4;
  }

  private applyValidPut(c: Uint8Array, from = 0, len = c.length): Uint8Array | null {
    const valueAt = this.validPutValueAt(c, from, len);
    if (valueAt < 0) return null;
    this.table.set(c, from + 5, valueAt - 9, c, from + valueAt, len - valueAt);
    this.counts.puts++;
    return OK_RESULT;
  }

  /** The same check the edges make before proposing; null when the command is acceptable. */
  checkCommand(cmd: KvCommand): KvResult | null {
    if (cmd.key.length === 0) return { kind: 'error', code: ERR_MALFORMED, message: 'the key is empty' };
    if (cmd.key.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `key of ${cmd.key.length} bytes exceeds ${KEY_BYTES_MAX}` };
    if (cmd.op !== 'delete' && cmd.value.length > this.valueBytesMax) {
      return { kind: 'error', code: ERR_VALUE_TOO_LARGE, message: `value of ${cmd.value.length} bytes exceeds ${this.valueBytesMax}` };
    }
    if (cmd.op === 'cas' && cmd.expected && cmd.expected.length > this.valueBytesMax) {
      return { kind: 'error', code: ERR_VALUE_TOO_LARGE, message: `expected value of ${cmd.expected.length} bytes exceeds ${this.valueBytesMax}` };
    }
    return null;
  }

  private execute(cmd: KvCommand): KvResult {
    const t = this.table;
    const key = cmd.key;
    switch (cmd.op) {
      case 'put':
        t.set(key, 0, key.length, cmd.value, 0, cmd.value.length);
        this.counts.puts++;
        return { kind: 'ok' };
      case 'delete':
        this.counts.deletes++;
        return { kind: 'ok', existed: t.delete(key, 0, key.length) };
      case 'cas': {
        const e = t.find(key, 0, key.length);
        const matches = cmd.expected === null ? e < 0 : e >= 0 && t.valueEquals(e, cmd.expected);
        if (!matches) {
          this.counts.casFailed++;
          return { kind: 'cas-failed', current: e < 0 ? null : t.value(e) };
        }
        t.set(key, 0, key.length, cmd.value, 0, cmd.value.length);
        this.counts.casSwapped++;
        return { kind: 'ok' };
      }
    }
  }

  private read(q: KvQuery): KvResult {
    const t = this.table;
    if (q.op === 'get') {
      if (q.key.length === 0 || q.key.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `key must be 1..${KEY_BYTES_MAX} bytes` };
      const e = t.find(q.key, 0, q.key.length);
      return e < 0 ? { kind: 'not-found' } : { kind: 'ok', value: t.value(e) };
    }
    if (q.limit < 1 || q.limit > SCAN_LIMIT_MAX) return { kind: 'error', code: ERR_BAD_LIMIT, message: `limit must be 1..${SCAN_LIMIT_MAX}` };
    if (q.prefix.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `prefix exceeds ${KEY_BYTES_MAX} bytes` };
    const after = q.after ?? null;
    if (after !== null && after.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `after exceeds ${KEY_BYTES_MAX} bytes` };
    const { ids, more } = t.prefixScan(q.prefix, q.limit, after);
    // Bounded in bytes as well as in count (10,000 values of 1 MiB were one answer, copied ~3x on
    // the way out): stop before the entry that would pass scanBytesMax, with `more`, but always
    // answer the first one so that paging goes on.
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    let bytes = 0;
    for (const e of ids) {
      bytes += 8 + t.keyLength(e) + t.valueLength(e);
      if (entries.length > 0 && bytes > this.scanBytesMax) return { kind: 'scan', entries, more: true };
      entries.push([t.key(e), t.value(e)]);
    }
    return { kind: 'scan', entries, more };
  }
}

/** Byte order of buf[a, a + an) against buf[b, b + bn). */
function compareRanges(buf: Uint8Array, a: number, an: number, b: number, bn: number): number {
  const m = an < bn ? an : bn;
  for (let k = 0; k < m; k++) {
    const d = buf[a + k]! - buf[b + k]!;
    if (d !== 0) return d;
  }
  return an - bn;
}

// A chunk is made in one synchronous step, and the runtime writes it (one paced step of the
// snapshot store's: BULK_STEP_BYTES) before asking for the next. With 1 MiB, a chunk held a loaded
// replica's event loop 7-40 ms and a leader's snapshot cost ~170 ms of CPU above its usual rate
// against ~60 with 256 KiB (two pairs of runs with a probe of the snapshot's parts, session 14).
const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/** The snapshot's bytes from `t` (magic, count, then each key and value in the order `ids`), in chunks of `chunkBytes` (the last one shorter). */
function* serialize(t: ByteTable, ids: Int32Array, chunkBytes: number): Generator<Uint8Array> {
  const out = new ChunkedOut(8 + 8 * ids.length + t.bytes, chunkBytes);
  out.u32(SNAPSHOT_MAGIC);
  out.u32(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const e = ids[i]!;
    // The usual case: the whole record fits in the current chunk. Else a field at a time.
    if (!out.record(t, e)) {
      const klen = t.keyLength(e);
      out.u32(klen);
      out.from(t, e, klen, true);
      const vlen = t.valueLength(e);
      out.u32(vlen);
      out.from(t, e, vlen, false);
    }
    while (out.ready.length > 0) yield out.ready.shift()!;
  }
  out.finish();
  while (out.ready.length > 0) yield out.ready.shift()!;
}

const NO_BYTES = new Uint8Array(0);

/**
 * snapshotStream()'s chunks from a clone: its key order computed in steps first, an empty chunk
 * yielded between two (see StateMachine.snapshotStream), then `adopt`, then serialize(). The
 * clone's arrays go back to its table at the end, or when the stream is abandoned (return()).
 */
function* streamClone(clone: ByteTable, adopt: () => void): Generator<Uint8Array> {
  try {
    const steps = clone.sortedInSteps();
    let r = steps.next();
    for (; !r.done; r = steps.next()) yield NO_BYTES;
    adopt();
    yield* serialize(clone, r.value, SNAPSHOT_CHUNK_BYTES);
  } finally {
    clone.releaseClone(); // the chunks are copies: nothing yielded reads the clone's arrays
  }
}

/** Bytes into fixed-size chunks (the last one shorter); completed chunks wait in `ready`. */
class ChunkedOut {
  readonly ready: Uint8Array[] = [];
  private chunk: Uint8Array;
  private view: DataView;
  private at = 0;
  private left: number;
  private scratch = new Uint8Array(0);

  constructor(
    total: number,
    private readonly chunkBytes: number,
  ) {
    this.left = total;
    this.chunk = new Uint8Array(Math.min(chunkBytes, total));
    this.view = new DataView(this.chunk.buffer);
    this.left -= this.chunk.length;
  }

  u32(x: number): void {
    if (this.chunk.length - this.at >= 4) {
      putU32be(this.chunk, this.at, x);
      this.at += 4;
      return;
    }
    const b = Uint8Array.of(x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff);
    this.bytes(b, 0, 4);
  }

  /** Entry `e`'s whole record, if it fits in the current chunk (else false, and nothing written). */
  record(t: ByteTable, e: number): boolean {
    const n = t.snapshotRecordInto(e, this.chunk, this.view, this.at);
    if (n < 0) return false;
    this.at += n;
    if (this.at === this.chunk.length) this.next();
    return true;
  }

  /** Entry `e`'s key (or value), `len` bytes. */
  from(t: ByteTable, e: number, len: number, key: boolean): void {
    if (this.chunk.length - this.at >= len) {
      if (key) t.copyKey(e, this.chunk, this.at);
      else t.copyValue(e, this.chunk, this.at);
      this.at += len;
      return;
    }
    // Straddles chunks: through a scratch copy.
    if (this.scratch.length < len) this.scratch = new Uint8Array(len);
    if (key) t.copyKey(e, this.scratch, 0);
    else t.copyValue(e, this.scratch, 0);
    this.bytes(this.scratch, 0, len);
  }

  private bytes(src: Uint8Array, from: number, len: number): void {
    while (len > 0) {
      const n = Math.min(len, this.chunk.length - this.at);
      this.chunk.set(src.subarray(from, from + n), this.at);
      this.at += n;
      from += n;
      len -= n;
      if (this.at === this.chunk.length) this.next();
    }
  }

  private next(): void {
    this.ready.push(this.chunk);
    this.chunk = new Uint8Array(Math.min(this.chunkBytes, this.left));
    this.view = new DataView(this.chunk.buffer);
    this.left -= this.chunk.length;
    this.at = 0;
  }

  finish(): void {
    if (this.at !== this.chunk.length || this.left !== 0) throw new Error(`kv snapshot: ${this.left + this.chunk.length - this.at} bytes unwritten`);
    if (this.at > 0) this.ready.push(this.chunk);
  }
}
