// The key-value commands, queries and results as bytes.
//
// These bytes go into the replicated log (commands), into session tables and snapshots
// (results), and over the binary client protocol (commands, queries and results unchanged), so
// the format is fixed and versioned by its first byte (the opcode). Lengths are u32 big-endian:
// a key is at most KEY_BYTES_MAX and a value at most the configured limit, both far below 2^32.
//
//   command  PUT     01 | klen u32 | key | vlen u32 | value
//            DELETE  02 | klen u32 | key
//            CAS     03 | klen u32 | key | hasExpected u8 | [elen u32 | expected] | vlen u32 | value
//   query    GET     10 | klen u32 | key
//            SCAN    11 | plen u32 | prefix | limit u32 | [alen u32 | after]   (after: keys > it only)
//   result   OK      00 | [payload]             PUT: none; DELETE: existed u8; GET: value
//            NOTFOUND 01                        GET of an absent key
//            CASFAIL 02 | hasCurrent u8 | [clen u32 | current]
//            SCAN    03 | count u32 | (klen u32 | key | vlen u32 | value)* | more u8
//            ERROR   ff | code u8 | UTF-8 message     (a malformed or oversized command)
//
// Decoding is strict: a truncated field or trailing bytes is a KvCodecError.

/** Keys are byte strings of 1..KEY_BYTES_MAX bytes. */
export const KEY_BYTES_MAX = 1024;
/** Default limit on a value (configurable per cluster; every replica must use the same). */
export const VALUE_BYTES_MAX_DEFAULT = 1 << 20;
/** Most entries one scan returns. */
export const SCAN_LIMIT_MAX = 10_000;
/**
 * Most bytes of entries (8 + key + value each, as encoded) one scan returns, beyond its first
 * entry: past it the scan stops early with `more` (the next page starts after its last key).
 * KvMachine lowers it to two entries of the largest size (2 x (8 + KEY_BYTES_MAX + valueBytesMax))
 * when that is less, so that an answer fits a binary client's frame (2 x valueBytesMax + 64 KiB).
 */
export const SCAN_BYTES_MAX = 4 * 1024 * 1024;

export const OP_PUT = 0x01;
export const OP_DELETE = 0x02;
export const OP_CAS = 0x03;
export const OP_GET = 0x10;
export const OP_SCAN = 0x11;

export const RES_OK = 0x00;
export const RES_NOT_FOUND = 0x01;
export const RES_CAS_FAILED = 0x02;
export const RES_SCAN = 0x03;
export const RES_ERROR = 0xff;

/** Codes carried by an ERROR result (stable: they cross the wire). */
export const ERR_MALFORMED = 1;
export const ERR_KEY_TOO_LARGE = 2;
export const ERR_VALUE_TOO_LARGE = 3;
export const ERR_BAD_LIMIT = 4;

export type KvCommand =
  | { op: 'put'; key: Uint8Array; value: Uint8Array }
  | { op: 'delete'; key: Uint8Array }
  | { op: 'cas'; key: Uint8Array; expected: Uint8Array | null; value: Uint8Array };

export type KvQuery = { op: 'get'; key: Uint8Array } | { op: 'scan'; prefix: Uint8Array; limit: number; after?: Uint8Array | null };

export type KvResult =
  | { kind: 'ok'; value?: Uint8Array; existed?: boolean }
  | { kind: 'not-found' }
  | { kind: 'cas-failed'; current: Uint8Array | null }
  | { kind: 'scan'; entries: Array<[Uint8Array, Uint8Array]>; more: boolean }
  | { kind: 'error'; code: number; message: string };

export class KvCodecError extends Error {
  readonly code = 'SYNOD_KV_MALFORMED';
  constructor(message: string) {
    super(message);
    this.name = 'KvCodecError';
  }
}

/** The big-endian u32 at `at` (the caller has checked that 4 bytes are there). */
export function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** Writes `v` as a big-endian u32 at `at` (the caller has made room). */
export function putU32be(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = v >>> 16;
  out[at + 2] = v >>> 8;
  out[at + 3] = v;
}

export const COPY_LOOP_BYTES_MAX = 24;

/**
 * `len` bytes from `src[from]` to `dst[at]`: a loop for short runs (a subarray and set() cost
 * ~60 ns whatever the length), else memcpy. A byte loop costs ~1.7 ns a byte: at 64 bytes (the
 * benchmark's values) it took twice as long as set() (Node 20, this machine). All of `src` goes
 * through set() without the subarray, whose allocation is most of that 60 ns (set() alone: ~30 ns
 * at 64 bytes).
 */
export function copyBytes(src: Uint8Array, from: number, len: number, dst: Uint8Array, at: number): void {
  if (len <= COPY_LOOP_BYTES_MAX) {
    for (let k = 0; k < len; k++) dst[at + k] = src[from + k]!;
  } else {
    dst.set(from === 0 && len === src.length ? src : src.subarray(from, from + len), at);
  }
}

// ---------------------------------------------------------------- writing

const POOLED_BYTES_MAX = 1024;

class Out {
  readonly bytes: Uint8Array;
  offset = 0;
  constructor(size: number) {
    // Small outputs from Node's Buffer pool: a Uint8Array over 64 bytes gets its own malloc'd
    // backing store (and GC bookkeeping), and commands are ~100 bytes. Every byte is written
    // (finish() checks), so the pool's uninitialized memory never shows.
    // A plain Uint8Array view (not the Buffer itself): callers and decoders see Uint8Arrays.
    if (size <= POOLED_BYTES_MAX) {
      const pooled = Buffer.allocUnsafe(size);
      this.bytes = new Uint8Array(pooled.buffer, pooled.byteOffset, size);
    } else this.bytes = new Uint8Array(size);
  }
  u8(v: number): void {
    this.bytes[this.offset++] = v;
  }
  u32(v: number): void {
    // By hand rather than through a DataView: one fewer object per encoded command.
    const b = this.bytes;
    let o = this.offset;
    b[o++] = v >>> 24;
    b[o++] = v >>> 16;
    b[o++] = v >>> 8;
    b[o++] = v;
    this.offset = o;
  }
  blob(b: Uint8Array): void {
    this.u32(b.length);
    this.bytes.set(b, this.offset);
    this.offset += b.length;
  }
  finish(): Uint8Array {
    if (this.offset !== this.bytes.length) throw new Error(`kv codec: wrote ${this.offset} of ${this.bytes.length} bytes`);
    return this.bytes;
  }
}

export function encodeCommand(cmd: KvCommand): Uint8Array {
  switch (cmd.op) {
    case 'put': {
      const o = new Out(1 + 4 + cmd.key.length + 4 + cmd.value.length);
      o.u8(OP_PUT);
      o.blob(cmd.key);
      o.blob(cmd.value);
      return o.finish();
    }
    case 'delete': {
      const o = new Out(1 + 4 + cmd.key.length);
      o.u8(OP_DELETE);
      o.blob(cmd.key);
      return o.finish();
    }
    case 'cas': {
      const o = new Out(1 + 4 + cmd.key.length + 1 + (cmd.expected ? 4 + cmd.expected.length : 0) + 4 + cmd.value.length);
      o.u8(OP_CAS);
      o.blob(cmd.key);
      o.u8(cmd.expected ? 1 : 0);
      if (cmd.expected) o.blob(cmd.expected);
      o.blob(cmd.value);
      return o.finish();
    }
  }
}

export function encodeQuery(q: KvQuery): Uint8Array {
  if (q.op === 'get') {
    const o = new Out(1 + 4 + q.key.length);
    o.u8(OP_GET);
    o.blob(q.key);
    return o.finish();
  }
  const after = q.after ?? null;
  const o = new Out(1 + 4 + q.prefix.length + 4 + (after === null ? 0 : 4 + after.length));
  o.u8(OP_SCAN);
  o.blob(q.prefix);
  o.u32(q.limit);
  if (after !== null) o.blob(after); // optional: a scan without it encodes as before
  return o.finish();
}

export function encodeResult(r: KvResult): Uint8Array {
  switch (r.kind) {
    case 'ok': {
      if (r.value) {
        const out = new Uint8Array(1 + r.value.length);
        out[0] = RES_OK;
        out.set(r.value, 1);
        return out;
      }
      if (r.existed !== undefined) return Uint8Array.of(RES_OK, r.existed ? 1 : 0);
      return Uint8Array.of(RES_OK);
    }
    case 'not-found':
      return Uint8Array.of(RES_NOT_FOUND);
    case 'cas-failed': {
      const o = new Out(2 + (r.current ? 4 + r.current.length : 0));
      o.u8(RES_CAS_FAILED);
      o.u8(r.current ? 1 : 0);
      if (r.current) o.blob(r.current);
      return o.finish();
    }
    case 'scan': {
      let size = 1 + 4 + 1;
      for (const [k, v] of r.entries) size += 8 + k.length + v.length;
      const o = new Out(size);
      o.u8(RES_SCAN);
      o.u32(r.entries.length);
      for (const [k, v] of r.entries) {
        o.blob(k);
        o.blob(v);
      }
      o.u8(r.more ? 1 : 0);
      return o.finish();
    }
    case 'error': {
      const msg = new TextEncoder().encode(r.message);
      const out = new Uint8Array(2 + msg.length);
      out[0] = RES_ERROR;
      out[1] = r.code;
      out.set(msg, 2);
      return out;
    }
  }
}

// ---------------------------------------------------------------- reading

class In {
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}
  need(n: number, what: string): void {
    if (this.offset + n > this.bytes.length) throw new KvCodecError(`truncated ${what} at byte ${this.offset}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.offset++]!;
  }
  u32(what: string): number {
    this.need(4, what);
    const o = this.offset;
    this.offset = o + 4;
    return u32be(this.bytes, o);
  }
  /** A length-prefixed byte string, as a view into the input (callers copy what they keep). */
  blob(what: string, max: number): Uint8Array {
    if (this.offset + 4 > this.bytes.length) this.need(4, `${what} length`);
    const n = this.u32(what);
    if (n > max) throw new KvCodecError(`${what} of ${n} bytes exceeds ${max}`);
    this.need(n, what);
    const b = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  end(): void {
    if (this.offset !== this.bytes.length) throw new KvCodecError(`${this.bytes.length - this.offset} trailing bytes`);
  }
}

/** Decodes a command; lengths are bounded only by 2^32 here, the machine checks the limits. */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  const r = new In(bytes);
  const op = r.u8('opcode');
  let cmd: KvCommand;
  if (op === OP_PUT) {
    const key = r.blob('key', 0xffffffff);
    cmd = { op: 'put', key, value: r.blob('value', 0xffffffff) };
  } else if (op === OP_DELETE) {
    cmd = { op: 'delete', key: r.blob('key', 0xffffffff) };
  } else if (op === OP_CAS) {
    const key = r.blob('key', 0xffffffff);
    const has = r.u8('expected flag');
    if (has > 1) throw new KvCodecError(`bad expected flag ${has}`);
    const expected = has ? r.blob('expected', 0xffffffff) : null;
    cmd = { op: 'cas', key, expected, value: r.blob('value', 0xffffffff) };
  } else {
    throw new KvCodecError(`unknown command opcode 0x${op.toString(16)}`);
  }
  r.end();
  return cmd;
}

export function decodeQuery(bytes: Uint8Array): KvQuery {
  const r = new In(bytes);
  const op = r.u8('opcode');
  let q: KvQuery;
  if (op === OP_GET) q = { op: 'get', key: r.blob('key', 0xffffffff) };
  else if (op === OP_SCAN) {
    const prefix = r.blob('prefix', 0xffffffff);
    const limit = r.u32('limit');
    q = r.offset < bytes.length ? { op: 'scan', prefix, limit, after: r.blob('after', 0xffffffff) } : { op: 'scan', prefix, limit };
  } else throw new KvCodecError(`unknown query opcode 0x${op.toString(16)}`);
  r.end();
  return q;
}

export function decodeResult(bytes: Uint8Array): KvResult {
  const r = new In(bytes);
  const kind = r.u8('result kind');
  switch (kind) {
    case RES_OK:
      if (bytes.length === 1) return { kind: 'ok' };
      // Either DELETE's existed flag or GET's value: the caller knows which it asked for; both
      // are returned as the raw payload and interpreted by the caller (see okPayload()).
      return { kind: 'ok', value: bytes.subarray(1) };
    case RES_NOT_FOUND:
      r.end();
      return { kind: 'not-found' };
    case RES_CAS_FAILED: {
      const has = r.u8('current flag');
      const current = has ? r.blob('current', 0xffffffff) : null;
      r.end();
      return { kind: 'cas-failed', current };
    }
    case RES_SCAN: {
      const count = r.u32('count');
      const entries: Array<[Uint8Array, Uint8Array]> = [];
      for (let i = 0; i < count; i++) {
        const k = r.blob('key', 0xffffffff);
        entries.push([k, r.blob('value', 0xffffffff)]);
      }
      const more = r.u8('more') === 1;
      r.end();
      return { kind: 'scan', entries, more };
    }
    case RES_ERROR: {
      const code = r.u8('error code');
      return { kind: 'error', code, message: new TextDecoder().decode(bytes.subarray(2)) };
    }
    default:
      throw new KvCodecError(`unknown result kind 0x${kind.toString(16)}`);
  }
}

/** A DELETE result's "the key existed" flag. */
export function deleteExisted(result: KvResult): boolean {
  return result.kind === 'ok' && result.value !== undefined && result.value.length === 1 && result.value[0] === 1;
}
