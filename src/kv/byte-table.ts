// A hash table from byte keys to byte values, kept in typed arrays instead of a Map of strings.
//
// Why: the key-value map is on every replica's apply path. A `Map<string, Uint8Array>` needs a
// string made from the key's bytes per command (a C++ call, an allocation and a hash), and its
// 100,000 entries are ~300,000 heap objects scattered over the old generation: every lookup
// chases four or five pointers (bucket, entry, key string, value object, value bytes), each a
// cache miss on a big state, and every full GC marks them all. Here a lookup is a hash of the
// bytes in place, one probe of a flat index (hash and entry id side by side) and one compare in
// a page where the key and its value sit together; nothing per entry is a heap object.
//
// Layout
//   index    Int32Array of slot pairs [hash, entry + 1] (0: empty); linear probing, load <= 1/2,
//            deletion by backward shift (no tombstones).
//   entries  parallel Int32Arrays by entry id: page, key offset, key length, value length,
//            value capacity. A record is [key bytes | value bytes (capacity)] in one page.
//   pages    Uint8Arrays of PAGE_BYTES (1 MiB) filled by a bump pointer; a record larger than
//            an eighth of a page gets a page of its own. A value that outgrows its capacity moves (the
//            old record becomes garbage); when garbage exceeds the live bytes (and GC_MIN_BYTES),
//            compact() copies the live records into fresh pages.
//   order    entry ids sorted by key (byte order), for snapshots and scans: kept while the key
//            set is unchanged; keys added since are sorted alone and merged in; a delete
//            invalidates it.
//
// The hash is seeded per table (random by default) so that keys cannot be chosen to collide.
// Layout (hence the seed) never shows outside: every ordered view is by key.

import { randomInt } from 'node:crypto';

const PAGE_BYTES = 1 << 20;
const GC_MIN_BYTES = 8 << 20;
const INDEX_SLOTS_MIN = 1 << 10;
const ENTRIES_MIN = 1 << 9;
const EMPTY_PAGE = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY_PAGE.buffer);

export class ByteTable {
  private index: Int32Array;
  private mask: number;
  private readonly seed: number;
  private readonly pageBytes: number;
  private readonly gcMinBytes: number;

  private entryPage: Int32Array;
  private entryAt: Int32Array;
  private entryKeyLen: Int32Array;
  private entryValLen: Int32Array;
  private entryValCap: Int32Array;
  /** Entry ids in use are < this; freed ids below it are in `freeIds`. */
  private entryTop = 0;
  private freeIds: number[] = [];

  private pages: Uint8Array[] = [];
  /** A DataView per page: key comparisons read four bytes at a time. */
  private views: DataView[] = [];
  private pageUsed: number[] = [];
  private pageGarbage: number[] = [];
  private freePages: number[] = [];
  private bumpPage = -1;

  private live = 0;
  private liveBytes = 0; // key + value bytes of live entries
  private recordBytes = 0; // bytes of records in pages (live records' capacity)
  private garbageBytes = 0;

  private order: Int32Array | null = new Int32Array(0);
  private added: number[] = [];

  /** `pageBytes` and `compactMinBytes` are for tests (small values exercise paging and compaction). */
  constructor(options: { seed?: number; pageBytes?: number; compactMinBytes?: number } = {}) {
    this.seed = options.seed ?? randomInt(0x7fffffff);
    this.pageBytes = options.pageBytes ?? PAGE_BYTES;
    this.gcMinBytes = options.compactMinBytes ?? GC_MIN_BYTES;
    this.index = new Int32Array(2 * INDEX_SLOTS_MIN);
    this.mask = INDEX_SLOTS_MIN - 1;
    this.entryPage = new Int32Array(ENTRIES_MIN);
    this.entryAt = new Int32Array(ENTRIES_MIN);
    this.entryKeyLen = new Int32Array(ENTRIES_MIN);
    this.entryValLen = new Int32Array(ENTRIES_MIN);
    this.entryValCap = new Int32Array(ENTRIES_MIN);
  }

  /** Number of keys. */
  get size(): number {
    return this.live;
  }

  /** Key and value bytes held. */
  get bytes(): number {
    return this.liveBytes;
  }

  /** The entry id of the key `buf[from, from + len)`, or -1. Ids are valid until the next change. */
  find(buf: Uint8Array, from: number, len: number): number {
    const h = this.hash(buf, from, len);
    const index = this.index;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = index[2 * i + 1]! - 1;
      if (e < 0) return -1;
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) return e;
    }
  }

  /**
   * Sets the key `buf[from, from + len)` to `value[vFrom, vFrom + vLen)` (copied). Returns the
   * entry's previous value length, or -1 if the key is new.
   */
  set(buf: Uint8Array, from: number, len: number, value: Uint8Array, vFrom: number, vLen: number): number {
    const h = this.hash(buf, from, len);
    const index = this.index;
    const mask = this.mask;
    let i = h & mask;
    for (; ; i = (i + 1) & mask) {
      const e = index[2 * i + 1]! - 1;
      if (e < 0) break;
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) return this.overwrite(e, value, vFrom, vLen);
    }
    const e = this.newEntry(buf, from, len, vLen);
    this.writeValue(e, value, vFrom, vLen);
    index[2 * i] = h;
    index[2 * i + 1] = e + 1;
    this.live++;
    this.liveBytes += len + vLen;
    if (this.order !== null) this.added.push(e);
    if (this.live * 2 > this.mask + 1) this.grow();
    return -1;
  }

  /** Removes the key; false if it was absent. */
  delete(buf: Uint8Array, from: number, len: number): boolean {
    const h = this.hash(buf, from, len);
    const index = this.index;
    const mask = this.mask;
    let i = h & mask;
    let e = -1;
    for (; ; i = (i + 1) & mask) {
      e = index[2 * i + 1]! - 1;
      if (e < 0) return false;
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) break;
    }
    // Backward shift: pull later members of the probe run into the hole, so no tombstones.
    for (let j = (i + 1) & mask; index[2 * j + 1] !== 0; j = (j + 1) & mask) {
      const home = index[2 * j]! & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        index[2 * i] = index[2 * j]!;
        index[2 * i + 1] = index[2 * j + 1]!;
        i = j;
      }
    }
    index[2 * i] = 0;
    index[2 * i + 1] = 0;
    this.live--;
    this.liveBytes -= this.entryKeyLen[e]! + this.entryValLen[e]!;
    this.release(e);
    this.freeIds.push(e);
    this.order = null;
    this.added.length = 0;
    this.maybeCompact();
    return true;
  }

  valueLength(e: number): number {
    return this.entryValLen[e]!;
  }

  /** Copies entry `e`'s value into `out` at `at`. */
  copyValue(e: number, out: Uint8Array, at: number): void {
    const page = this.pages[this.entryPage[e]!]!;
    const from = this.entryAt[e]! + this.entryKeyLen[e]!;
    copyBytes(page, from, this.entryValLen[e]!, out, at);
  }

  /** A copy of entry `e`'s value. */
  value(e: number): Uint8Array {
    const out = new Uint8Array(this.entryValLen[e]!);
    this.copyValue(e, out, 0);
    return out;
  }

  keyLength(e: number): number {
    return this.entryKeyLen[e]!;
  }

  copyKey(e: number, out: Uint8Array, at: number): void {
    copyBytes(this.pages[this.entryPage[e]!]!, this.entryAt[e]!, this.entryKeyLen[e]!, out, at);
  }

  /** A copy of entry `e`'s key. */
  key(e: number): Uint8Array {
    const out = new Uint8Array(this.entryKeyLen[e]!);
    this.copyKey(e, out, 0);
    return out;
  }

  valueEquals(e: number, bytes: Uint8Array): boolean {
    const n = this.entryValLen[e]!;
    if (n !== bytes.length) return false;
    const page = this.pages[this.entryPage[e]!]!;
    const at = this.entryAt[e]! + this.entryKeyLen[e]!;
    for (let k = 0; k < n; k++) if (page[at + k] !== bytes[k]) return false;
    return true;
  }

  /** Byte order of entry `e`'s key against `buf[from, from + len)`: <0, 0, >0. */
  compareKey(e: number, buf: Uint8Array, from: number, len: number): number {
    const page = this.pages[this.entryPage[e]!]!;
    const at = this.entryAt[e]!;
    const n = this.entryKeyLen[e]!;
    const m = n < len ? n : len;
    for (let k = 0; k < m; k++) {
      const d = page[at + k]! - buf[from + k]!;
      if (d !== 0) return d;
    }
    return n - len;
  }

  /** Does entry `e`'s key start with `prefix`? */
  keyHasPrefix(e: number, prefix: Uint8Array): boolean {
    if (this.entryKeyLen[e]! < prefix.length) return false;
    const page = this.pages[this.entryPage[e]!]!;
    const at = this.entryAt[e]!;
    for (let k = 0; k < prefix.length; k++) if (page[at + k] !== prefix[k]) return false;
    return true;
  }

  /** Entry ids in key order (do not modify; valid until the next change). */
  sorted(): Int32Array {
    if (this.order !== null && this.added.length === 0) return this.order;
    const byKey = (a: number, b: number) => this.compareEntries(a, b);
    if (this.order === null) {
      const ids = new Int32Array(this.live);
      let n = 0;
      for (let slot = 0; slot <= this.mask; slot++) {
        const e = this.index[2 * slot + 1]! - 1;
        if (e >= 0) ids[n++] = e;
      }
      this.order = ids.sort(byKey);
    } else {
      // Keys added since the last sort: sort them alone and merge (the common case under load:
      // a few new keys between two snapshots of a large map).
      const add = Int32Array.from(this.added).sort(byKey);
      const old = this.order;
      const out = new Int32Array(old.length + add.length);
      let i = 0;
      let j = 0;
      let k = 0;
      while (i < old.length && j < add.length) out[k++] = this.compareEntries(old[i]!, add[j]!) <= 0 ? old[i++]! : add[j++]!;
      while (i < old.length) out[k++] = old[i++]!;
      while (j < add.length) out[k++] = add[j++]!;
      this.order = out;
    }
    this.added.length = 0;
    return this.order;
  }

  /** Position in sorted() of the first key >= `key`. */
  lowerBound(key: Uint8Array): number {
    const ids = this.sorted();
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareKey(ids[mid]!, key, 0, key.length) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * A copy of the table as it is now (its key order computed first, and kept by both), for a
   * snapshot serialised while this one goes on changing. Every array is copied: ~the state's
   * size in memcpy, milliseconds where serialising in key order takes tens of them.
   */
  clone(): ByteTable {
    this.sorted();
    const c = new ByteTable({ seed: this.seed, pageBytes: this.pageBytes, compactMinBytes: this.gcMinBytes });
    c.index = this.index.slice();
    c.mask = this.mask;
    c.entryPage = this.entryPage.slice();
    c.entryAt = this.entryAt.slice();
    c.entryKeyLen = this.entryKeyLen.slice();
    c.entryValLen = this.entryValLen.slice();
    c.entryValCap = this.entryValCap.slice();
    c.entryTop = this.entryTop;
    c.freeIds = this.freeIds.slice();
    c.pages = this.pages.map((page, p) => (page.length === 0 ? page : page.slice(0, this.pageUsed[p])));
    c.views = c.pages.map((page) => (page.length === 0 ? EMPTY_VIEW : new DataView(page.buffer)));
    // The copies are trimmed to what is used: the clone is for reading (a write may reallocate).
    c.pageUsed = c.pages.map((page) => page.length);
    c.pageGarbage = this.pageGarbage.slice();
    c.freePages = this.freePages.slice();
    c.bumpPage = -1;
    c.live = this.live;
    c.liveBytes = this.liveBytes;
    c.recordBytes = this.recordBytes;
    c.garbageBytes = this.garbageBytes;
    c.order = this.order!.slice();
    c.added = [];
    return c;
  }

  /** Removes every key. */
  clear(): void {
    this.index = new Int32Array(2 * INDEX_SLOTS_MIN);
    this.mask = INDEX_SLOTS_MIN - 1;
    this.entryTop = 0;
    this.freeIds = [];
    this.pages = [];
    this.views = [];
    this.pageUsed = [];
    this.pageGarbage = [];
    this.freePages = [];
    this.bumpPage = -1;
    this.live = 0;
    this.liveBytes = 0;
    this.recordBytes = 0;
    this.garbageBytes = 0;
    this.order = new Int32Array(0);
    this.added = [];
  }

  // ---------------------------------------------------------------- internals

  private hash(buf: Uint8Array, from: number, len: number): number {
    // FNV-1a over the bytes from a per-table seed, then a murmur3 finaliser (FNV's low bits,
    // which pick the slot, are weak on their own).
    let h = (this.seed ^ 0x811c9dc5) | 0;
    for (let k = 0; k < len; k++) h = Math.imul(h ^ buf[from + k]!, 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  private keyEquals(e: number, buf: Uint8Array, from: number, len: number): boolean {
    if (this.entryKeyLen[e] !== len) return false;
    const page = this.pages[this.entryPage[e]!]!;
    const at = this.entryAt[e]!;
    for (let k = 0; k < len; k++) if (page[at + k] !== buf[from + k]) return false;
    return true;
  }

  private compareEntries(a: number, b: number): number {
    const va = this.views[this.entryPage[a]!]!;
    const vb = this.views[this.entryPage[b]!]!;
    const aa = this.entryAt[a]!;
    const ab = this.entryAt[b]!;
    const na = this.entryKeyLen[a]!;
    const nb = this.entryKeyLen[b]!;
    const m = na < nb ? na : nb;
    let k = 0;
    for (; k + 4 <= m; k += 4) {
      const x = va.getUint32(aa + k);
      const y = vb.getUint32(ab + k);
      if (x !== y) return x < y ? -1 : 1;
    }
    for (; k < m; k++) {
      const d = va.getUint8(aa + k) - vb.getUint8(ab + k);
      if (d !== 0) return d;
    }
    return na - nb;
  }

  private overwrite(e: number, value: Uint8Array, vFrom: number, vLen: number): number {
    const previous = this.entryValLen[e]!;
    if (vLen > this.entryValCap[e]!) {
      // Outgrew its record: move key and value to a new one, the old one becomes garbage.
      const keyLen = this.entryKeyLen[e]!;
      const oldPage = this.entryPage[e]!;
      const oldAt = this.entryAt[e]!;
      const oldBytes = keyLen + this.entryValCap[e]!;
      const [p, at] = this.allocate(keyLen + vLen);
      copyBytes(this.pages[oldPage]!, oldAt, keyLen, this.pages[p]!, at);
      this.entryPage[e] = p;
      this.entryAt[e] = at;
      this.entryValCap[e] = vLen;
      this.recordBytes += keyLen + vLen;
      this.free(oldPage, oldBytes);
    }
    this.writeValue(e, value, vFrom, vLen);
    this.liveBytes += vLen - previous;
    this.maybeCompact();
    return previous;
  }

  private writeValue(e: number, value: Uint8Array, vFrom: number, vLen: number): void {
    copyBytes(value, vFrom, vLen, this.pages[this.entryPage[e]!]!, this.entryAt[e]! + this.entryKeyLen[e]!);
    this.entryValLen[e] = vLen;
  }

  private newEntry(key: Uint8Array, from: number, len: number, vLen: number): number {
    let e: number;
    if (this.freeIds.length > 0) e = this.freeIds.pop()!;
    else {
      e = this.entryTop++;
      if (e >= this.entryPage.length) this.growEntries();
    }
    const [p, at] = this.allocate(len + vLen);
    copyBytes(key, from, len, this.pages[p]!, at);
    this.entryPage[e] = p;
    this.entryAt[e] = at;
    this.entryKeyLen[e] = len;
    this.entryValCap[e] = vLen;
    this.entryValLen[e] = 0;
    this.recordBytes += len + vLen;
    return e;
  }

  /** Releases entry `e`'s record (its id is the caller's to recycle). */
  private release(e: number): void {
    const bytes = this.entryKeyLen[e]! + this.entryValCap[e]!;
    this.free(this.entryPage[e]!, bytes);
  }

  private free(page: number, bytes: number): void {
    this.recordBytes -= bytes;
    this.garbageBytes += bytes;
    this.pageGarbage[page]! += bytes;
    if (this.pageGarbage[page] === this.pageUsed[page] && page !== this.bumpPage) {
      // Nothing live in it: drop it now (a large value's own page, typically).
      this.garbageBytes -= this.pageGarbage[page]!;
      this.pages[page] = EMPTY_PAGE;
      this.views[page] = EMPTY_VIEW;
      this.pageUsed[page] = 0;
      this.pageGarbage[page] = 0;
      this.freePages.push(page);
    }
  }

  /** Room for `bytes` bytes: [page, offset]. */
  private allocate(bytes: number): [number, number] {
    if (bytes > this.pageBytes >> 3) {
      const p = this.newPage(bytes);
      this.pageUsed[p] = bytes;
      return [p, 0];
    }
    if (this.bumpPage < 0 || this.pageUsed[this.bumpPage]! + bytes > this.pages[this.bumpPage]!.length) {
      const previous = this.bumpPage;
      this.bumpPage = this.newPage(this.pageBytes);
      if (previous >= 0 && this.pageGarbage[previous] === this.pageUsed[previous]) this.free(previous, 0);
    }
    const p = this.bumpPage;
    const at = this.pageUsed[p]!;
    this.pageUsed[p] = at + bytes;
    return [p, at];
  }

  private newPage(bytes: number): number {
    const page = new Uint8Array(bytes);
    const p = this.freePages.length > 0 ? this.freePages.pop()! : this.pages.length;
    this.pages[p] = page;
    this.views[p] = new DataView(page.buffer);
    this.pageUsed[p] = 0;
    this.pageGarbage[p] = 0;
    return p;
  }

  private maybeCompact(): void {
    if (this.garbageBytes > this.gcMinBytes && this.garbageBytes > this.recordBytes) this.compact();
  }

  /** Copies every live record into fresh pages, in entry order; ids and the index stay. */
  compact(): void {
    const oldPages = this.pages;
    this.pages = [];
    this.views = [];
    this.pageUsed = [];
    this.pageGarbage = [];
    this.freePages = [];
    this.bumpPage = -1;
    this.garbageBytes = 0;
    for (let slot = 0; slot <= this.mask; slot++) {
      const e = this.index[2 * slot + 1]! - 1;
      if (e < 0) continue;
      const bytes = this.entryKeyLen[e]! + this.entryValCap[e]!;
      const [p, at] = this.allocate(bytes);
      copyBytes(oldPages[this.entryPage[e]!]!, this.entryAt[e]!, bytes, this.pages[p]!, at);
      this.entryPage[e] = p;
      this.entryAt[e] = at;
    }
  }

  private grow(): void {
    const slots = (this.mask + 1) * 2;
    const index = new Int32Array(2 * slots);
    const mask = slots - 1;
    const old = this.index;
    for (let s = 0; s < old.length; s += 2) {
      const e1 = old[s + 1]!;
      if (e1 === 0) continue;
      let i = old[s]! & mask;
      while (index[2 * i + 1] !== 0) i = (i + 1) & mask;
      index[2 * i] = old[s]!;
      index[2 * i + 1] = e1;
    }
    this.index = index;
    this.mask = mask;
  }

  private growEntries(): void {
    const n = this.entryPage.length * 2;
    const grown = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.entryPage = grown(this.entryPage);
    this.entryAt = grown(this.entryAt);
    this.entryKeyLen = grown(this.entryKeyLen);
    this.entryValLen = grown(this.entryValLen);
    this.entryValCap = grown(this.entryValCap);
  }
}

/** `len` bytes from `src[from]` to `dst[at]`: a loop for short runs (no subarray object), else memcpy. */
export function copyBytes(src: Uint8Array, from: number, len: number, dst: Uint8Array, at: number): void {
  if (len <= 64) {
    for (let k = 0; k < len; k++) dst[at + k] = src[from + k]!;
  } else {
    dst.set(src.subarray(from, from + len), at);
  }
}
