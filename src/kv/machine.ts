// The replicated key-value map: a StateMachine over the commands of ./codec.ts.
//
// Design note
// -----------
// Keys are byte strings; the map is keyed by their latin1 image (one char per byte), so that
// JavaScript's string order (UTF-16 code units, here all < 256) is exactly byte order, which a
// prefix scan needs. A sorted array of keys is rebuilt lazily, only when a scan runs after a
// write changed the key set: writes stay O(1) and a scan after a burst of writes pays one sort.
//
// Determinism: apply() depends only on the command bytes and the current map. Limits are part
// of the cluster's configuration (every replica must be started with the same valueBytesMax);
// a command over a limit yields the same ERROR result on every replica, and never changes the map.
// Edges (HTTP, binary protocol) check the same limits first so that such commands are rarely
// proposed at all.

import type { ApplyContext, StateMachine } from '../runtime/api.js';
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
  SCAN_LIMIT_MAX,
  u32be,
  VALUE_BYTES_MAX_DEFAULT,
  type KvCommand,
  type KvQuery,
  type KvResult,
} from './codec.js';

const SNAPSHOT_MAGIC = 0x534b5631; // "SKV1"

export interface KvMachineOptions {
  /** Largest value accepted. Default 1 MiB. Must be equal on every replica of a cluster. */
  valueBytesMax?: number;
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

const toKey = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const fromKey = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

export class KvMachine implements StateMachine {
  readonly valueBytesMax: number;
  private map = new Map<string, Uint8Array>();
  private sorted: string[] | null = [];
  private bytesHeld = 0;
  private readonly counts = { puts: 0, deletes: 0, casSwapped: 0, casFailed: 0, rejected: 0 };

  constructor(options: KvMachineOptions = {}) {
    this.valueBytesMax = options.valueBytesMax ?? VALUE_BYTES_MAX_DEFAULT;
    if (!Number.isInteger(this.valueBytesMax) || this.valueBytesMax < 1 || this.valueBytesMax > 0x7fffffff) {
      throw new RangeError(`valueBytesMax must be an integer in 1..2^31-1, got ${this.valueBytesMax}`);
    }
  }

  // ---------------------------------------------------------------- StateMachine

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
        const v = this.map.get(Buffer.from(r.buffer, r.byteOffset + 5, keyBytes).toString('latin1'));
        if (v === undefined) return Uint8Array.of(RES_NOT_FOUND);
        const out = new Uint8Array(1 + v.length);
        out[0] = RES_OK;
        out.set(v, 1);
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
    const keys = this.sortedKeys();
    let size = 8;
    for (const k of keys) size += 8 + k.length + this.map.get(k)!.length;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setUint32(0, SNAPSHOT_MAGIC);
    view.setUint32(4, keys.length);
    let off = 8;
    for (const k of keys) {
      const v = this.map.get(k)!;
      view.setUint32(off, k.length);
      off += 4;
      for (let i = 0; i < k.length; i++) out[off + i] = k.charCodeAt(i); // latin1: one byte per char (no array per key)
      off += k.length;
      view.setUint32(off, v.length);
      off += 4;
      out.set(v, off);
      off += v.length;
    }
    if (off !== size) throw new Error(`kv snapshot: wrote ${off} of ${size} bytes`);
    return out;
  }

  restore(snapshot: Uint8Array): void {
    const view = new DataView(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
    const bad = (why: string) => new KvCodecError(`kv snapshot: ${why}`);
    if (snapshot.length < 8 || view.getUint32(0) !== SNAPSHOT_MAGIC) throw bad('bad magic (not a key-value snapshot)');
    const count = view.getUint32(4);
    const map = new Map<string, Uint8Array>();
    const keys: string[] = [];
    let bytes = 0;
    let off = 8;
    for (let i = 0; i < count; i++) {
      if (off + 4 > snapshot.length) throw bad(`truncated at entry ${i}`);
      const klen = view.getUint32(off);
      off += 4;
      if (off + klen + 4 > snapshot.length) throw bad(`truncated at entry ${i}`);
      const key = toKey(snapshot.subarray(off, off + klen));
      off += klen;
      const vlen = view.getUint32(off);
      off += 4;
      if (off + vlen > snapshot.length) throw bad(`truncated at entry ${i}`);
      if (keys.length > 0 && !(keys[keys.length - 1]! < key)) throw bad(`keys out of order at entry ${i}`);
      map.set(key, new Uint8Array(snapshot.subarray(off, off + vlen))); // a copy (slice() of a Buffer is a view of the whole snapshot)
      keys.push(key);
      bytes += klen + vlen;
      off += vlen;
    }
    if (off !== snapshot.length) throw bad(`${snapshot.length - off} trailing bytes`);
    this.map = map;
    this.sorted = keys;
    this.bytesHeld = bytes;
  }

  // ---------------------------------------------------------------- direct access (tests, metrics)

  get size(): number {
    return this.map.size;
  }

  stats(): KvStats {
    return { keys: this.map.size, bytes: this.bytesHeld, ...this.counts };
  }

  /** A copy of the value at `key`, or undefined (a local read of this replica's state). */
  get(key: Uint8Array): Uint8Array | undefined {
    const value = this.map.get(toKey(key));
    return value === undefined ? undefined : value.slice(); // stored arrays are overwritten in place
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

  /** Where the value starts if `c` is a PUT within the limits, else -1. */
  private validPutValueAt(c: Uint8Array): number {
    if (c.length < 9 || c[0] !== OP_PUT) return -1;
    const keyBytes = u32be(c, 1);
    if (keyBytes === 0 || keyBytes > KEY_BYTES_MAX || 9 + keyBytes > c.length) return -1;
    const at = 5 + keyBytes;
    const valueBytes = u32be(c, at);
    return valueBytes > this.valueBytesMax || at + 4 + valueBytes !== c.length ? -1 : at + 4;
  }

  private applyValidPut(c: Uint8Array): Uint8Array | null {
    const valueAt = this.validPutValueAt(c);
    if (valueAt < 0) return null;
    const key = Buffer.from(c.buffer, c.byteOffset + 5, valueAt - 9).toString('latin1');
    this.set(key, this.map.get(key), c.subarray(valueAt));
    this.counts.puts++;
    return Uint8Array.of(RES_OK);
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
    const key = toKey(cmd.key);
    const current = this.map.get(key);
    switch (cmd.op) {
      case 'put':
        this.set(key, current, cmd.value);
        this.counts.puts++;
        return { kind: 'ok' };
      case 'delete':
        this.counts.deletes++;
        if (current === undefined) return { kind: 'ok', existed: false };
        this.map.delete(key);
        this.bytesHeld -= key.length + current.length;
        this.sorted = null;
        return { kind: 'ok', existed: true };
      case 'cas': {
        const matches = cmd.expected === null ? current === undefined : current !== undefined && equalBytes(current, cmd.expected);
        if (!matches) {
          this.counts.casFailed++;
          return { kind: 'cas-failed', current: current ?? null };
        }
        this.set(key, current, cmd.value);
        this.counts.casSwapped++;
        return { kind: 'ok' };
      }
    }
  }

  private set(key: string, current: Uint8Array | undefined, value: Uint8Array): void {
    if (current !== undefined && current.length === value.length) {
      // Overwrite in place: no allocation. A new array per write lived for seconds (until its key
      // was written again), so V8 promoted every one to the old generation and let that grow by
      // far more than the map holds. Safe because no stored array leaves this class: reads copy
      // (query, get, snapshot), and results are encoded before apply/query return.
      current.set(value);
      return;
    }
    // Copy into a buffer of its own: the command's bytes are a view of the log's buffers (on the
    // leader, of a 64 KiB socket read). Not value.slice(): on a Buffer that is a view, not a copy,
    // and each value kept that way held its whole socket read in memory.
    this.map.set(key, new Uint8Array(value));
    if (current === undefined) {
      this.bytesHeld += key.length + value.length;
      this.sorted = null;
    } else this.bytesHeld += value.length - current.length;
  }

  private read(q: KvQuery): KvResult {
    if (q.op === 'get') {
      if (q.key.length === 0 || q.key.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `key must be 1..${KEY_BYTES_MAX} bytes` };
      const v = this.map.get(toKey(q.key));
      return v === undefined ? { kind: 'not-found' } : { kind: 'ok', value: v };
    }
    if (q.limit < 1 || q.limit > SCAN_LIMIT_MAX) return { kind: 'error', code: ERR_BAD_LIMIT, message: `limit must be 1..${SCAN_LIMIT_MAX}` };
    if (q.prefix.length > KEY_BYTES_MAX) return { kind: 'error', code: ERR_KEY_TOO_LARGE, message: `prefix exceeds ${KEY_BYTES_MAX} bytes` };
    const keys = this.sortedKeys();
    const prefix = toKey(q.prefix);
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    let i = lowerBound(keys, prefix);
    for (; i < keys.length && entries.length < q.limit; i++) {
      const k = keys[i]!;
      if (!k.startsWith(prefix)) break;
      entries.push([fromKey(k), this.map.get(k)!]);
    }
    const more = i < keys.length && keys[i]!.startsWith(prefix);
    return { kind: 'scan', entries, more };
  }

  private sortedKeys(): string[] {
    if (this.sorted === null) this.sorted = [...this.map.keys()].sort();
    return this.sorted;
  }
}

function lowerBound(keys: string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(a, b) === 0;
}
