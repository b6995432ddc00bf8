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
//            deletion by backward shift (no tombstones). A large index doubles incrementally: from
//            1/2 full, every set or delete moves a few whole probe runs of the old index into the
//            new one (see rehashStep), so no single change pays the whole rehash.
//   meta     one Int32Array, 8 slots per entry id: page, key offset, key length, value length,
//            value capacity (side by side: a lookup misses the cache once for them, not five
//            times as with parallel arrays). A record is [key bytes | value bytes (capacity)] in
//            one page.
//   pages    Uint8Arrays of PAGE_BYTES (1 MiB) filled by a bump pointer; a record larger than
//            an eighth of a page gets a page of its own. A value that outgrows its capacity, or
//            shrinks below half of it (less SHRINK_SLACK_BYTES), moves (the old record becomes
//            garbage); when garbage exceeds the live bytes (and GC_MIN_BYTES), compact() copies
//            the live records into fresh pages.
//   order    entry ids sorted by key (byte order), for snapshots and scans: kept across changes;
//            keys added since are sorted alone and merged in, keys deleted since are filtered
//            out. A deleted key's id is not reused until then (so the order never holds an id
//            that names another key); past DEFERRED_IDS_MIN deferred ids (and more than the
//            keys left), the order is dropped instead and rebuilt by a full sort when next asked.
//
// The hash is seeded per table (random by default) so that keys cannot be chosen to collide.
// Layout (hence the seed) never shows outside: every ordered view is by key.

import { randomInt } from 'node:crypto';
import { COPY_LOOP_BYTES_MAX, copyBytes } from './codec.js';
import { IdList } from './id-list.js';
import { Prefaulter } from './prefault.js';
import { CONTRACTS, invariant } from '../core/contracts.js';

const PAGE_BYTES = 1 << 20;
const GC_MIN_BYTES = 8 << 20;
const INDEX_SLOTS_MIN = 1 << 10;
const ENTRIES_MIN = 1 << 9;
// An entry's fields in `meta`, at (e << 3) + field: 8 int32s (five used) are 32 bytes, two
// entries to a cache line and none split across two.
const META_STRIDE = 8;
const DEFERRED_IDS_MIN = 4096;
// Above this, snapshotRecordInto copies with one set() (its subarray's allocation is then the smaller cost).
const COPY_WORDS_BYTES_MAX = 256;
// The key order is computed in steps of bounded work (sortedInSteps), so that a clone sorting a
// few hundred thousand new keys for a snapshot lets the event loop run every few milliseconds:
// at most ~SORT_STEP key compares (or keys copied) between two yields, runs of SORT_RUN keys.
const SORT_STEP = 32_768;
const SORT_RUN = 4096;
const PAGE = 0; // page number
const AT = 1; // the record's (key's) offset in the page
const KEY_LEN = 2;
const VAL_LEN = 3;
const VAL_CAP = 4; // the value bytes the record has room for
// From PREPARE_ENTRIES_MIN entries, the next entry fields are made once 7/8 of the ids are used
// and filled ahead, META_COPY_STEP_IDS entries' fields per new entry (writes to the entries
// already copied go to both arrays), so their doubling copies little or nothing: at once, it took
// 3-17 ms at 524,288 entries, in every replica at the same slot. Not earlier: the second write
// costs every value written meanwhile a store to another array (~10-40 ns in the one-thread
// check), for as long as the table stays in that last eighth. With `warmClones`, a spare page
// per page and a spare copy of the entry fields for the next clone are made early and faulted in
// a few pages per record allocation (see prefault.ts). Smaller tables grow in well under a
// millisecond.
const PREPARE_ENTRIES_MIN = 1 << 15;
const META_COPY_STEP_IDS = 32;
// An index of at least this many slots doubles incrementally (rehashStep) once 1/2 full, moving
// at least REHASH_STEP_SLOTS old slots per set or delete: done within 1/16 of its slots in
// changes, while the new index is under 9/32 full. A smaller one is moved in the same change (a
// 32,768-slot index in ~0.2 ms): all at once, the doubling at 524,288 keys took 7-34 ms in a
// loaded replica.
const REHASH_INCREMENTAL_MIN = 1 << 16;
const REHASH_STEP_SLOTS = 16;
const PREFAULT_PAGES_PER_ALLOC = 2;
// A value overwritten by one that leaves more than its own length plus this unused in the record
// moves to a record of its size (see overwrite): a record holds at most twice its value and this.
const SHRINK_SLACK_BYTES = 64;
// A prefix scan sorts the keys added since the last sort (and keeps that order) only when they
// are this few; more, and it picks its matches among them without sorting (prefixScan).
const SCAN_SORT_ADDED_MAX = 4096;
const EMPTY_PAGE = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY_PAGE.buffer);

export class ByteTable {
  private index: Int32Array;
  private mask: number;
  /**
   * While the index doubles incrementally: the old index, whose keys not yet moved are still
   * found there (a lookup probes the new index, then this one). Null otherwise.
   */
  private oldIndex: Int32Array | null = null;
  private oldMask = 0;
  /** Keys still in oldIndex. */
  private oldLeft = 0;
  /** The next old slot to move; the old slots behind it (from where the move began) are empty. */
  private moveAt = 0;
  private readonly indexSlotsMin: number;
  private readonly rehashIncrementalMin: number;
  private readonly rehashStepSlots: number;
  private readonly seed: number;
  private readonly pageBytes: number;
  private readonly gcMinBytes: number;
  private readonly deferredIdsMin: number;
  private readonly sortRun: number;
  private readonly sortStep: number;
  private readonly prepareEntriesMin: number;
  private readonly prefaultPages: number;
  private readonly scanSortAddedMax: number;

  /** Entry e's fields at (e << 3) + PAGE, AT, KEY_LEN, VAL_LEN, VAL_CAP. */
  private meta: Int32Array;
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
  /** Ids deleted since the order was last brought up to date (still in it; reused after). */
  private removed: number[] = [];
  /**
   * 1 for the ids in `removed`, by id. Grown by delete() to cover the id it marks, so it may be
   * shorter than the ids in use: read it as `=== 1` (an id past its end is not deleted).
   */
  private removedMark = new Uint8Array(ENTRIES_MIN);
  private scratch = new Int32Array(0); // prefetch()'s per-key hashes, then entries
  private added = new IdList();
  /** Changes whenever order, added and removed are rebuilt or reset: a clone's order is adopted only if this has not changed since it was taken. */
  private orderGen = 0;
  /** Set on a clone until releaseClone(): the table it copies, that table's orderGen and the lengths of its added and removed lists when the clone was taken. */
  private cloneOf: { table: ByteTable; gen: number; added: number; removed: number } | null = null;
  /**
   * The arrays of the last clone, given back by its releaseClone(): the next clone copies into
   * them. Fresh memory costs a page fault and zeroing per 4 KiB: copying 130 MB into new arrays
   * took 60–90 ms (200–400 ms in a replica under load), into these ~12 ms.
   */
  private clonePool: ClonePool = EMPTY_POOL;
  /** Regular pages held by the clone now out (they come back as clonePool when it is released). */
  private clonedPagesOut = 0;

  /** Touches the arrays below ahead of need. */
  private readonly prefault = new Prefaulter();
  /**
   * The next entry fields, filled ahead: the fields of ids below `copiedIds` are copied into it,
   * and every write to them goes to both arrays (see copyEntriesAhead).
   */
  private nextMeta: Int32Array | null = null;
  private copiedIds = 0;
  private readonly entriesMin: number;
  /**
   * With `warmClones`: pages and entry fields for the next clone to copy into, beyond what
   * clonePool holds (made as the table grows, so that no clone copies into fresh memory).
   */
  private readonly warmClones: boolean;
  private sparePages: Uint8Array[] = [];
  private spareMeta: Int32Array | null = null;

  /**
   * `warmClones`: the table will be cloned again and again (a state machine's snapshots), so keep
   * as much memory as a clone needs ready as the table grows (twice the table's memory, which the
   * clone pool holds anyway after the first clone), instead of faulting it in during the clone.
   * The other options but `seed` are for tests (small values exercise paging, compaction, dropping the order, sorting in steps). */
  constructor(
    options: { seed?: number; warmClones?: boolean; pageBytes?: number; compactMinBytes?: number; deferredIdsMin?: number; sortRun?: number; sortStep?: number; prepareEntriesMin?: number; prefaultPages?: number; scanSortAddedMax?: number; indexSlotsMin?: number; rehashIncrementalMin?: number; rehashStepSlots?: number; entriesMin?: number } = {},
  ) {
    this.seed = options.seed ?? randomInt(0x7fffffff);
    this.warmClones = options.warmClones ?? false;
    this.pageBytes = options.pageBytes ?? PAGE_BYTES;
    this.gcMinBytes = options.compactMinBytes ?? GC_MIN_BYTES;
    this.deferredIdsMin = options.deferredIdsMin ?? DEFERRED_IDS_MIN;
    this.sortRun = options.sortRun ?? SORT_RUN;
    this.sortStep = options.sortStep ?? SORT_STEP;
    this.prepareEntriesMin = options.prepareEntriesMin ?? PREPARE_ENTRIES_MIN;
    this.prefaultPages = options.prefaultPages ?? PREFAULT_PAGES_PER_ALLOC;
    this.scanSortAddedMax = options.scanSortAddedMax ?? SCAN_SORT_ADDED_MAX;
    this.indexSlotsMin = options.indexSlotsMin ?? INDEX_SLOTS_MIN;
    this.rehashIncrementalMin = options.rehashIncrementalMin ?? REHASH_INCREMENTAL_MIN;
    this.rehashStepSlots = options.rehashStepSlots ?? REHASH_STEP_SLOTS;
    this.entriesMin = options.entriesMin ?? ENTRIES_MIN;
    this.removedMark = new Uint8Array(this.entriesMin);
    this.index = new Int32Array(2 * this.indexSlotsMin);
    this.mask = this.indexSlotsMin - 1;
    this.meta = new Int32Array(this.entriesMin * META_STRIDE);
  }

  /** Number of keys. */
  get size(): number {
    return this.live;
  }

  /** The hash index's slots, and the keys still to move out of the old index while it doubles (0 otherwise). */
  indexState(): { slots: number; moving: number } {
    return { slots: this.mask + 1, moving: this.oldLeft };
  }

  /** Key and value bytes held. */
  get bytes(): number {
    return this.liveBytes;
  }

  /** Bytes of the pages that hold the records (live records with their spare room, garbage, unused page tails): their memory. */
  get pageBytesHeld(): number {
    let n = 0;
    for (const page of this.pages) n += page.length;
    return n;
  }

  /**
   * Brings into the cache what looking up these keys will touch (key i is `bufs[i][from[i],
   * from[i] + len[i])`), without changing anything. On a table much larger than the cache a
   * lookup is three cache misses in a chain (index slot → entry fields → record), ~0.5 µs; a
   * batch looked up one key at a time pays them one after another. Here each level is one pass
   * over all the keys, whose loads do not depend on each other, so the CPU overlaps their misses;
   * the lookups that follow then hit the cache. Returns a value computed from what was read (so
   * the loads cannot be optimised away); it means nothing.
   */
  prefetch(bufs: readonly Uint8Array[], from: Int32Array, len: Int32Array, n: number): number {
    if (this.scratch.length < n) this.scratch = new Int32Array(Math.max(n, 2 * this.scratch.length));
    const slots = this.scratch;
    const index = this.index;
    const mask = this.mask;
    const meta = this.meta;
    const old = this.oldIndex;
    const oldMask = this.oldMask;
    let sum = 0;
    // Level 1: the home slot of each key's hash (in both indexes while the index doubles).
    for (let i = 0; i < n; i++) {
      const h = this.hash(bufs[i]!, from[i]!, len[i]!);
      sum += index[2 * (h & mask)]!;
      if (old !== null) sum += old[2 * (h & oldMask)]!;
      slots[i] = h;
    }
    // Level 2: the fields of the entry in that slot (the key's own, unless it collided).
    for (let i = 0; i < n; i++) {
      const h = slots[i]!;
      let e = index[2 * (h & mask) + 1]! - 1;
      if (e < 0 && old !== null) e = old[2 * (h & oldMask) + 1]! - 1;
      slots[i] = e;
      if (e >= 0) sum += meta[(e << 3) + AT]!;
    }
    // Level 3: the record (key and value, one or two cache lines).
    for (let i = 0; i < n; i++) {
      const e = slots[i]!;
      if (e < 0) continue;
      const page = this.pages[meta[(e << 3) + PAGE]!]!;
      const at = meta[(e << 3) + AT]!;
      sum += page[at]! + page[at + meta[(e << 3) + KEY_LEN]! + meta[(e << 3) + VAL_CAP]! - 1]!;
    }
    return sum;
  }

  /** The entry id of the key `buf[from, from + len)`, or -1. Ids are valid until the next change. */
  find(buf: Uint8Array, from: number, len: number): number {
    const h = this.hash(buf, from, len);
    const index = this.index;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = index[2 * i + 1]! - 1;
      if (e < 0) return this.oldIndex === null ? -1 : this.findInOld(h, buf, from, len);
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) return e;
    }
  }

  /** find() in the old index while the index doubles. */
  private findInOld(h: number, buf: Uint8Array, from: number, len: number): number {
    const j = this.slotOf(this.oldIndex!, this.oldMask, h, buf, from, len);
    return j >= 0 ? this.oldIndex![2 * j + 1]! - 1 : -1;
  }

  /** The slot of `index` holding the key (hash `h`), or ~(the empty slot that ends its probe run). For the old index; find, set and delete keep their own loops over the current one. */
  private slotOf(index: Int32Array, mask: number, h: number, buf: Uint8Array, from: number, len: number): number {
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = index[2 * i + 1]! - 1;
      if (e < 0) return ~i;
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) return i;
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
    const old = this.oldIndex;
    if (old !== null) {
      // An overwrite of a key not yet moved moves some (so the doubling ends under overwrites
      // alone too); one already moved does not, and costs what it did before the doubling.
      const j = this.slotOf(old, this.oldMask, h, buf, from, len);
      if (j >= 0) {
        const previous = this.overwrite(old[2 * j + 1]! - 1, value, vFrom, vLen);
        this.rehashStep();
        return previous;
      }
    }
    const e = this.newEntry(buf, from, len, vLen);
    this.writeValue(e, value, vFrom, vLen);
    index[2 * i] = h;
    index[2 * i + 1] = e + 1;
    this.live++;
    this.liveBytes += len + vLen;
    if (this.order !== null) this.added.push(e);
    if (this.oldIndex !== null) {
      this.rehashStep();
      // Not reached with REHASH_STEP_SLOTS (the move ends first; see there), only with smaller steps (tests).
      if (this.oldIndex !== null && this.live * 2 > this.mask + 1) this.rehashStep(Infinity);
    } else if (this.live * 2 > this.mask + 1) {
      const small = this.mask + 1 < this.rehashIncrementalMin;
      this.startRehash();
      if (small) this.rehashStep(Infinity); // at once
    }
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
      if (e < 0) break;
      if (index[2 * i] === h && this.keyEquals(e, buf, from, len)) break;
    }
    if (e >= 0) {
      removeSlot(index, mask, i);
    } else {
      const old = this.oldIndex;
      if (old === null) return false;
      const j = this.slotOf(old, this.oldMask, h, buf, from, len);
      if (j < 0) return false;
      e = old[2 * j + 1]! - 1;
      // Within its probe run, which is all still here (rehashStep moves whole runs).
      removeSlot(old, this.oldMask, j);
      this.oldLeft--;
    }
    this.live--;
    if (this.oldIndex !== null) this.rehashStep();
    this.liveBytes -= this.meta[(e << 3) + KEY_LEN]! + this.meta[(e << 3) + VAL_LEN]!;
    this.release(e);
    if (this.order === null) {
      this.freeIds.push(e);
    } else if (this.removed.length >= this.deferredIdsMin && this.removed.length > this.live) {
      // Mostly deletes and no sort for long: drop the order rather than hold ever more ids.
      this.freeIds.push(e);
      this.dropOrder();
    } else {
      this.removed.push(e);
      if (e >= this.removedMark.length) {
        const grown = new Uint8Array(Math.max(2 * this.removedMark.length, e + 1));
        grown.set(this.removedMark);
        this.removedMark = grown;
      }
      this.removedMark[e] = 1;
    }
    this.maybeCompact();
    return true;
  }

  valueLength(e: number): number {
    return this.meta[(e << 3) + VAL_LEN]!;
  }

  /**
   * Writes entry `e` at `out[at]` as a snapshot record (key length, u32 big endian; key; value
   * length; value) if it fits before the end of `out`, and returns its length; else writes nothing
   * and returns -1. Copied four bytes at a time through the page's DataView and `outView` (over
   * `out`): a snapshot copies every entry, and a byte loop for the key plus a `set()` of a
   * `subarray` for the value (an allocation) cost ~3x as much for 16-byte keys and 64-byte values.
   */
  snapshotRecordInto(e: number, out: Uint8Array, outView: DataView, at: number): number {
    const m = e << 3;
    const klen = this.meta[m + KEY_LEN]!;
    const vlen = this.meta[m + VAL_LEN]!;
    const n = 8 + klen + vlen;
    if (out.length - at < n) return -1;
    const p = this.meta[m + PAGE]!;
    const from = this.meta[m + AT]!;
    const page = this.pages[p]!;
    const view = this.views[p]!;
    outView.setUint32(at, klen);
    copyWords(page, view, from, klen, out, outView, at + 4);
    outView.setUint32(at + 4 + klen, vlen);
    copyWords(page, view, from + klen, vlen, out, outView, at + 8 + klen);
    return n;
  }

  /** Copies entry `e`'s value into `out` at `at`. */
  copyValue(e: number, out: Uint8Array, at: number): void {
    const page = this.pages[this.meta[(e << 3) + PAGE]!]!;
    const from = this.meta[(e << 3) + AT]! + this.meta[(e << 3) + KEY_LEN]!;
    copyBytes(page, from, this.meta[(e << 3) + VAL_LEN]!, out, at);
  }

  /** A copy of entry `e`'s value. */
  value(e: number): Uint8Array {
    const out = new Uint8Array(this.meta[(e << 3) + VAL_LEN]!);
    this.copyValue(e, out, 0);
    return out;
  }

  keyLength(e: number): number {
    return this.meta[(e << 3) + KEY_LEN]!;
  }

  copyKey(e: number, out: Uint8Array, at: number): void {
    copyBytes(this.pages[this.meta[(e << 3) + PAGE]!]!, this.meta[(e << 3) + AT]!, this.meta[(e << 3) + KEY_LEN]!, out, at);
  }

  /** A copy of entry `e`'s key. */
  key(e: number): Uint8Array {
    const out = new Uint8Array(this.meta[(e << 3) + KEY_LEN]!);
    this.copyKey(e, out, 0);
    return out;
  }

  valueEquals(e: number, bytes: Uint8Array): boolean {
    const n = this.meta[(e << 3) + VAL_LEN]!;
    if (n !== bytes.length) return false;
    const page = this.pages[this.meta[(e << 3) + PAGE]!]!;
    const at = this.meta[(e << 3) + AT]! + this.meta[(e << 3) + KEY_LEN]!;
    for (let k = 0; k < n; k++) if (page[at + k] !== bytes[k]) return false;
    return true;
  }

  /** Byte order of entry `e`'s key against `buf[from, from + len)`: <0, 0, >0. */
  compareKey(e: number, buf: Uint8Array, from: number, len: number): number {
    const page = this.pages[this.meta[(e << 3) + PAGE]!]!;
    const at = this.meta[(e << 3) + AT]!;
    const n = this.meta[(e << 3) + KEY_LEN]!;
    const m = n < len ? n : len;
    for (let k = 0; k < m; k++) {
      const d = page[at + k]! - buf[from + k]!;
      if (d !== 0) return d;
    }
    return n - len;
  }

  /** Does entry `e`'s key start with `prefix`? */
  keyHasPrefix(e: number, prefix: Uint8Array): boolean {
    if (this.meta[(e << 3) + KEY_LEN]! < prefix.length) return false;
    const page = this.pages[this.meta[(e << 3) + PAGE]!]!;
    const at = this.meta[(e << 3) + AT]!;
    for (let k = 0; k < prefix.length; k++) if (page[at + k] !== prefix[k]) return false;
    return true;
  }

  /** Entry ids in key order (do not modify; valid until the next change). */
  sorted(): Int32Array {
    const steps = this.sortedInSteps();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * sorted() in steps: yields after every ~SORT_STEP key compares, returns the order. The table
   * must not change until it returns (a clone's does not: it is for reading).
   */
  *sortedInSteps(): Generator<void, Int32Array> {
    if (this.order !== null && this.added.length === 0 && this.removed.length === 0) return this.order;
    let order: Int32Array;
    if (this.order === null) {
      order = yield* this.sortByKey(this.liveIds());
    } else {
      // Keys added since the last sort: sorted alone and merged in (the common case under load: a
      // few new keys between two snapshots of a large map).
      let old = this.order;
      let add = this.added.view();
      if (this.removed.length > 0) {
        const mark = this.removedMark;
        old = this.withoutRemoved(old);
        add = add.filter((e) => mark[e] !== 1);
      } else add = add.slice(); // sortByKey's own (the view would change with the list)
      order = add.length > 0 ? yield* this.mergeByKey(old, yield* this.sortByKey(add)) : old;
    }
    if (this.removed.length > 0) this.releaseDeferredIds();
    this.order = order;
    this.added.clear();
    this.orderGen++;
    return order;
  }

  /**
   * The keys were set, each once, in strictly increasing key order into an empty table (a snapshot
   * being restored, which checks that order): take it as the key order, instead of sorting every
   * key again at the next snapshot or scan.
   */
  orderIsInsertionOrder(): void {
    if (this.order === null || this.order.length !== 0 || this.removed.length !== 0 || this.added.length !== this.live) {
      throw new Error('ByteTable.orderIsInsertionOrder: the table was not filled from empty with sets only');
    }
    const added = this.added.view();
    for (let i = 1; i < added.length; i++) {
      if (this.compareEntries(added[i - 1]!, added[i]!) >= 0) throw new Error('ByteTable.orderIsInsertionOrder: keys were not set in increasing order');
    }
    this.order = added.slice();
    this.added.clear();
    this.orderGen++;
  }

  /** The ids of every key, in index order. */
  private liveIds(): Int32Array {
    const ids = new Int32Array(this.live);
    let n = 0;
    for (const index of this.oldIndex === null ? [this.index] : [this.index, this.oldIndex]) {
      for (let s = 1; s < index.length; s += 2) if (index[s] !== 0) ids[n++] = index[s]! - 1;
    }
    if (CONTRACTS) invariant(n === this.live, `the index holds ${n} keys, not ${this.live}`);
    return ids;
  }

  /**
   * Takes the key order that `clone` (a clone of this table, see clone()) computed as this
   * table's own, unless this table's order was rebuilt since the clone was taken: the keys
   * added since then stay to be merged, the ids deleted before it are free at last. So the sort
   * a snapshot's clone does in steps, off the apply loop, is not done again here.
   */
  adoptOrder(clone: ByteTable): void {
    const from = clone.cloneOf;
    if (from === null || from.table !== this || from.gen !== this.orderGen || clone.order === null || clone.added.length > 0 || clone.removed.length > 0) return;
    for (let i = 0; i < from.removed; i++) {
      const e = this.removed[i]!;
      this.removedMark[e] = 0;
      this.freeIds.push(e);
    }
    // slice, not splice(0, n): splice builds an array of the n removed ids (hundreds of thousands
    // when many keys were added between two snapshots) only to drop it.
    this.removed = this.removed.slice(from.removed);
    this.added.dropFirst(from.added);
    this.order = clone.order;
    this.orderGen++; // a second adoption of the same clone finds another generation: nothing
  }

  /** Forgets the key order (rebuilt by a full sort when next asked); deferred ids become free. */
  private dropOrder(): void {
    this.releaseDeferredIds();
    this.order = null;
    this.added.clear();
    this.orderGen++;
  }

  /** The ids of keys deleted since the last sort become free for reuse (the order no longer holds them). */
  private releaseDeferredIds(): void {
    for (const e of this.removed) {
      this.removedMark[e] = 0;
      this.freeIds.push(e);
    }
    this.removed.length = 0;
  }

  /**
   * `ids` in key order. The keys are first copied side by side into one buffer (each record read
   * once), then sorted there: a sort compares each key ~log n times, and against records spread
   * over the pages every compare was two cache misses. A merge sort in steps: runs of SORT_RUN
   * keys sorted alone, then merged pairwise, yielding every ~SORT_STEP compares.
   */
  private *sortByKey(ids: Int32Array): Generator<void, Int32Array> {
    const n = ids.length;
    if (n < 2) return ids;
    const meta = this.meta;
    const run = this.sortRun;
    const step = this.sortStep;
    let total = 0;
    for (let i = 0; i < n; i++) total += meta[(ids[i]! << 3) + KEY_LEN]!;
    const keys = new Uint8Array(Math.max(total, 1));
    const at = new Int32Array(n + 1);
    for (let i = 0, o = 0; i < n; i++) {
      const e = ids[i]!;
      const len = meta[(e << 3) + KEY_LEN]!;
      copyBytes(this.pages[meta[(e << 3) + PAGE]!]!, meta[(e << 3) + AT]!, len, keys, o);
      at[i] = o;
      o += len;
      at[i + 1] = o;
      if (i % step === step - 1) yield;
    }
    const view = new DataView(keys.buffer);
    const before = (x: number, y: number) => compareKeys(view, at[x]!, at[x + 1]! - at[x]!, view, at[y]!, at[y + 1]! - at[y]!);
    let a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    for (let lo = 0; lo < n; lo += run) {
      a.subarray(lo, Math.min(lo + run, n)).sort(before);
      if (n > run) yield;
    }
    let b = new Int32Array(n);
    let work = 0;
    for (let width = run; width < n; width *= 2) {
      for (let lo = 0; lo < n; lo += 2 * width) {
        const mid = Math.min(lo + width, n);
        const hi = Math.min(lo + 2 * width, n);
        let i = lo;
        let j = mid;
        let k = lo;
        while (i < mid && j < hi) {
          b[k++] = before(a[j]!, a[i]!) < 0 ? a[j++]! : a[i++]!;
          if (++work === step) {
            work = 0;
            yield;
          }
        }
        if (i < mid) b.set(a.subarray(i, mid), k);
        else b.set(a.subarray(j, hi), k);
      }
      const t = a;
      a = b;
      b = t;
    }
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = ids[a[i]!]!;
    return out;
  }

  /**
   * Merges `add` into `old` (both in key order, no key in both). Each added key finds its place
   * by galloping from the previous one's (steps 1, 2, 4, ... then a binary search), and the old
   * ids in between are block-copied: ~2 m log(n/m) record compares instead of n + m, since m new
   * keys between two snapshots are usually far fewer than the n old ones. Yields every
   * ~SORT_STEP compares.
   */
  private *mergeByKey(old: Int32Array, add: Int32Array): Generator<void, Int32Array> {
    const n = old.length;
    const out = new Int32Array(n + add.length);
    let i = 0;
    let k = 0;
    let work = 0;
    const step = this.sortStep;
    for (let j = 0; j < add.length; j++) {
      const a = add[j]!;
      // Invariant: old[lo - 1] < a (or lo = i); old[hi] > a (or hi = n).
      let lo = i;
      let bound = 1;
      while (i + bound - 1 < n && this.compareEntries(old[i + bound - 1]!, a) < 0) {
        lo = i + bound;
        bound *= 2;
        work++;
      }
      let hi = Math.min(i + bound - 1, n);
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.compareEntries(old[mid]!, a) < 0) lo = mid + 1;
        else hi = mid;
        work++;
      }
      out.set(old.subarray(i, lo), k);
      k += lo - i;
      i = lo;
      out[k++] = a;
      if (++work >= step) {
        work = 0;
        yield;
      }
    }
    out.set(old.subarray(i), k);
    return out;
  }

  /** Position in sorted() of the first key >= `key`. */
  lowerBound(key: Uint8Array): number {
    return this.lowerBoundIn(this.sorted(), key);
  }

  /**
   * The entry ids of the first `limit` keys that start with `prefix` (and, with `after`, sort
   * after it: the next page of a scan), in key order, and whether another one follows. With more than scanSortAddedMax keys added since the last sort, it does
   * not sort them: the matches in the key order are found by a binary search (in a copy without
   * the ids deleted since, if any: their records may be gone), those among the added keys by one
   * pass keeping the limit + 1 smallest in a heap, and the two are merged; the order is left for
   * the next snapshot's clone to bring up to date. (A scan of a 1,000,000-key table sorted the
   * ~300,000 keys added since its last snapshot inside the request's turn.)
   */
  prefixScan(prefix: Uint8Array, limit: number, after: Uint8Array | null = null): { ids: number[]; more: boolean } {
    const k = limit + 1;
    let matches: number[];
    if (this.order === null || this.added.length <= this.scanSortAddedMax) {
      matches = this.firstMatches(this.sorted(), prefix, k, after);
    } else {
      const fromOrder = this.firstMatches(this.removed.length > 0 ? this.withoutRemoved(this.order) : this.order, prefix, k, after);
      const fromAdded = this.smallestMatches(this.added.view(), prefix, k, after);
      matches = [];
      let a = 0;
      let b = 0;
      while (matches.length < k && (a < fromOrder.length || b < fromAdded.length)) {
        if (b >= fromAdded.length || (a < fromOrder.length && this.compareEntries(fromOrder[a]!, fromAdded[b]!) < 0)) matches.push(fromOrder[a++]!);
        else matches.push(fromAdded[b++]!);
      }
    }
    const more = matches.length > limit;
    if (more) matches.length = limit;
    return { ids: matches, more };
  }

  /** The first (at most) `k` of `ids` (entry ids in key order) whose keys start with `prefix` and sort after `after`. */
  private firstMatches(ids: Int32Array, prefix: Uint8Array, k: number, after: Uint8Array | null): number[] {
    const out: number[] = [];
    let from = this.lowerBoundIn(ids, prefix);
    if (after !== null) from = Math.max(from, this.upperBoundIn(ids, after));
    for (let i = from; i < ids.length && out.length < k; i++) {
      if (!this.keyHasPrefix(ids[i]!, prefix)) break;
      out.push(ids[i]!);
    }
    return out;
  }

  /** Among `ids`, the (at most) `k` smallest keys that start with `prefix` and sort after `after`, in key order: a max-heap of k. */
  private smallestMatches(ids: Int32Array, prefix: Uint8Array, k: number, after: Uint8Array | null): number[] {
    const heap: number[] = [];
    const above = (i: number, j: number) => this.compareEntries(heap[i]!, heap[j]!) > 0;
    const swap = (i: number, j: number) => {
      const t = heap[i]!;
      heap[i] = heap[j]!;
      heap[j] = t;
    };
    const removed = this.removed.length > 0 ? this.removedMark : null;
    for (const e of ids) {
      if (removed !== null && removed[e] === 1) continue; // deleted since it was added
      if (!this.keyHasPrefix(e, prefix)) continue;
      if (after !== null && this.compareKey(e, after, 0, after.length) <= 0) continue;
      if (heap.length < k) {
        heap.push(e);
        for (let i = heap.length - 1; i > 0 && above(i, (i - 1) >> 1); i = (i - 1) >> 1) swap(i, (i - 1) >> 1);
      } else if (this.compareEntries(e, heap[0]!) < 0) {
        heap[0] = e;
        for (let i = 0; ; ) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && above(l, m)) m = l;
          if (r < heap.length && above(r, m)) m = r;
          if (m === i) break;
          swap(i, m);
          i = m;
        }
      }
    }
    return heap.sort((x, y) => this.compareEntries(x, y));
  }

  /** `ids` without the ids deleted since the last sort (marked in removedMark). */
  private withoutRemoved(ids: Int32Array): Int32Array {
    const mark = this.removedMark;
    const kept = new Int32Array(ids.length);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const e = ids[i]!;
      if (mark[e] !== 1) kept[n++] = e;
    }
    return kept.subarray(0, n);
  }

  /** Position in `ids` (entry ids in key order) of the first key > `key`. */
  private upperBoundIn(ids: Int32Array, key: Uint8Array): number {
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareKey(ids[mid]!, key, 0, key.length) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Position in `ids` (entry ids in key order) of the first key >= `key`. */
  private lowerBoundIn(ids: Int32Array, key: Uint8Array): number {
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
   * A read-only copy of the table as it is now, for a snapshot serialised while this one goes on
   * changing: the records and entry fields are copied (~the state's size in memcpy, into the last
   * clone's arrays when it was released: releaseClone), the hash index is not (the clone is read
   * in key order and by entry id; its find() finds nothing, and it must not be written). The key
   * order is not computed here but by the clone (sortedInSteps(), between the chunks of the
   * snapshot), and handed back with adoptOrder(). So the pause is the copy alone, however many
   * keys were added since the last sort.
   */
  clone(): ByteTable {
    if (this.order === null) {
      // Start tracking again, with every key "added": the clone's sort is then the full sort, and
      // this table can adopt its result.
      this.added = IdList.of(this.liveIds());
      this.order = new Int32Array(0);
      this.orderGen++;
    }
    const pool = this.clonePool;
    this.clonePool = EMPTY_POOL; // the clone holds these arrays until it is released
    const c = new ByteTable({ seed: this.seed, pageBytes: this.pageBytes, compactMinBytes: this.gcMinBytes, deferredIdsMin: this.deferredIdsMin, sortRun: this.sortRun, sortStep: this.sortStep });
    // No hash index: the clone is read by key order and entry id only (its find() finds nothing).
    const metaUsed = this.entryTop * META_STRIDE;
    let metaInto = pool.meta;
    if ((metaInto === null || metaInto.length < metaUsed) && this.spareMeta !== null && this.spareMeta.length >= metaUsed) {
      metaInto = this.prefault.take(this.spareMeta);
      this.spareMeta = null;
    }
    c.meta = copyInto(metaInto, this.meta, metaUsed);
    c.entryTop = this.entryTop;
    // Regular pages are copied into full-size arrays (the pool's, then the spares made ahead, then
    // new ones; the pool then keeps them all); a page of its own for a large record, trimmed to
    // what is used. The clone is for reading: its bytes past pageUsed are stale and never read.
    let spare = pool.pages.length;
    let spareTaken = 0;
    let regular = 0;
    c.pages = this.pages.map((page, p) => {
      if (page.length === 0) return page;
      const used = this.pageUsed[p]!;
      if (page.length !== this.pageBytes) return page.slice(0, used);
      let into: Uint8Array;
      if (spare > 0) into = pool.pages[--spare]!;
      else if (spareTaken < this.sparePages.length) into = this.prefault.take(this.sparePages[spareTaken++]!);
      else into = new Uint8Array(this.pageBytes);
      regular++;
      into.set(used === page.length ? page : page.subarray(0, used));
      return into;
    });
    if (spareTaken > 0) this.sparePages = this.sparePages.slice(spareTaken);
    this.clonedPagesOut = regular;
    if (CONTRACTS) invariant(!this.prefault.has(c.meta) && c.pages.every((page) => page.length === 0 || !this.prefault.has(page)), 'a clone array is still being faulted in (prefault step() would write it)');
    c.views = c.pages.map((page) => (page.length === 0 ? EMPTY_VIEW : new DataView(page.buffer, page.byteOffset, page.byteLength)));
    c.pageUsed = this.pageUsed.slice();
    // Nothing of the allocator (free ids and pages, garbage counts): the clone is never written.
    c.live = this.live;
    c.liveBytes = this.liveBytes;
    c.order = this.order; // never written in place (a new array replaces it), so shared
    c.added = this.added.copy();
    c.removed = this.removed.slice();
    c.removedMark = this.removedMark.slice();
    c.cloneOf = { table: this, gen: this.orderGen, added: this.added.length, removed: this.removed.length };
    return c;
  }

  /**
   * A clone whose reading is over gives its arrays back to the table it was taken from, for the
   * next clone to copy into. The clone must not be used afterwards (it is emptied).
   */
  releaseClone(): void {
    if (this.cloneOf === null) return;
    const owner = this.cloneOf.table;
    this.cloneOf = null;
    owner.clonePool = { meta: this.meta, pages: this.pages.filter((page) => page.length === owner.pageBytes) };
    owner.clonedPagesOut = 0;
    this.meta = new Int32Array(0);
    this.pages = [];
    this.views = [];
    this.pageUsed = [];
  }

  /** Removes every key. */
  clear(): void {
    this.clonePool = EMPTY_POOL;
    this.prefault.clear();
    this.nextMeta = null;
    this.copiedIds = 0;
    this.sparePages = [];
    this.spareMeta = null;
    this.index = new Int32Array(2 * this.indexSlotsMin);
    this.mask = this.indexSlotsMin - 1;
    this.oldIndex = null;
    this.oldLeft = 0;
    this.meta = new Int32Array(this.entriesMin * META_STRIDE);
    this.entryTop = 0;
    this.freeIds = [];
    this.resetPages();
    this.live = 0;
    this.liveBytes = 0;
    this.recordBytes = 0;
    this.order = new Int32Array(0);
    this.added = new IdList();
    this.removed = [];
    this.removedMark = new Uint8Array(this.entriesMin);
    this.orderGen++;
  }

  // ---------------------------------------------------------------- internals

  private hash(buf: Uint8Array, from: number, len: number): number {
    // MurmurHash3 (x86, 32-bit) from a per-table seed: four bytes a round (FNV-1a's byte a round
    // was ~40 ns for a 16-byte key, twice per command with prefetch), tail and finaliser as usual.
    let h = this.seed | 0;
    const end4 = from + (len & ~3);
    let k = from;
    for (; k < end4; k += 4) {
      let w = buf[k]! | (buf[k + 1]! << 8) | (buf[k + 2]! << 16) | (buf[k + 3]! << 24);
      w = Math.imul(w, 0xcc9e2d51);
      w = (w << 15) | (w >>> 17);
      h ^= Math.imul(w, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    const tail = len & 3;
    if (tail > 0) {
      let w = buf[k]!;
      if (tail > 1) w |= buf[k + 1]! << 8;
      if (tail > 2) w |= buf[k + 2]! << 16;
      w = Math.imul(w, 0xcc9e2d51);
      w = (w << 15) | (w >>> 17);
      h ^= Math.imul(w, 0x1b873593);
    }
    h ^= len;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  private keyEquals(e: number, buf: Uint8Array, from: number, len: number): boolean {
    if (this.meta[(e << 3) + KEY_LEN] !== len) return false;
    const page = this.pages[this.meta[(e << 3) + PAGE]!]!;
    const at = this.meta[(e << 3) + AT]!;
    for (let k = 0; k < len; k++) if (page[at + k] !== buf[from + k]) return false;
    return true;
  }

  private compareEntries(a: number, b: number): number {
    const meta = this.meta;
    const va = this.views[meta[(a << 3) + PAGE]!]!;
    const vb = this.views[meta[(b << 3) + PAGE]!]!;
    return compareKeys(va, meta[(a << 3) + AT]!, meta[(a << 3) + KEY_LEN]!, vb, meta[(b << 3) + AT]!, meta[(b << 3) + KEY_LEN]!);
  }

  private overwrite(e: number, value: Uint8Array, vFrom: number, vLen: number): number {
    const previous = this.meta[(e << 3) + VAL_LEN]!;
    const cap = this.meta[(e << 3) + VAL_CAP]!;
    if (vLen > cap || cap - vLen > vLen + SHRINK_SLACK_BYTES) {
      // Outgrew its record, or would leave most of it unused: move key and value to a new one of
      // the value's size, the old one becomes garbage. A record that only ever grew kept its
      // largest value's room: keys set to 1 MiB and then to a byte held a MiB each, as live
      // bytes that compaction copies and never reclaims.
      const keyLen = this.meta[(e << 3) + KEY_LEN]!;
      const oldPage = this.meta[(e << 3) + PAGE]!;
      const oldAt = this.meta[(e << 3) + AT]!;
      const oldBytes = keyLen + this.meta[(e << 3) + VAL_CAP]!;
      const [p, at] = this.allocate(keyLen + vLen);
      copyBytes(this.pages[oldPage]!, oldAt, keyLen, this.pages[p]!, at);
      this.meta[(e << 3) + PAGE] = p;
      this.meta[(e << 3) + AT] = at;
      this.meta[(e << 3) + VAL_CAP] = vLen;
      if (e < this.copiedIds) {
        const next = this.nextMeta!;
        next[(e << 3) + PAGE] = p;
        next[(e << 3) + AT] = at;
        next[(e << 3) + VAL_CAP] = vLen;
      }
      this.recordBytes += keyLen + vLen;
      this.free(oldPage, oldBytes);
    }
    this.writeValue(e, value, vFrom, vLen);
    this.liveBytes += vLen - previous;
    this.maybeCompact();
    return previous;
  }

  private writeValue(e: number, value: Uint8Array, vFrom: number, vLen: number): void {
    const p = this.meta[(e << 3) + PAGE]!;
    copyToPage(value, vFrom, vLen, this.pages[p]!, this.views[p]!, this.meta[(e << 3) + AT]! + this.meta[(e << 3) + KEY_LEN]!);
    this.meta[(e << 3) + VAL_LEN] = vLen;
    if (e < this.copiedIds) this.nextMeta![(e << 3) + VAL_LEN] = vLen;
  }

  private newEntry(key: Uint8Array, from: number, len: number, vLen: number): number {
    let e: number;
    if (this.freeIds.length > 0) e = this.freeIds.pop()!;
    else {
      e = this.entryTop++;
      if (e * META_STRIDE >= this.meta.length) this.growEntries();
      else if (this.nextMeta === null && e * META_STRIDE * 8 >= this.meta.length * 7 && this.meta.length >= this.prepareEntriesMin * META_STRIDE) {
        this.nextMeta = new Int32Array(this.meta.length * 2);
        this.copiedIds = 0;
      }
    }
    const [p, at] = this.allocate(len + vLen);
    copyBytes(key, from, len, this.pages[p]!, at);
    const meta = this.meta;
    meta[(e << 3) + PAGE] = p;
    meta[(e << 3) + AT] = at;
    meta[(e << 3) + KEY_LEN] = len;
    meta[(e << 3) + VAL_CAP] = vLen;
    meta[(e << 3) + VAL_LEN] = 0;
    this.recordBytes += len + vLen;
    if (this.nextMeta !== null) {
      if (e < this.copiedIds) {
        const next = this.nextMeta;
        for (let f = 0; f < META_STRIDE; f++) next[(e << 3) + f] = meta[(e << 3) + f]!;
      }
      this.copyEntriesAhead();
    }
    return e;
  }

  /**
   * Copies the fields of the next META_COPY_STEP_IDS ids into nextMeta. From 7/8 of the ids used
   * to all of them there are 1/8 as many new entries: the copy is done at 29/32 and the doubling
   * finds nothing left to copy (and its pages, faulted in 1 KiB at a time, warm).
   */
  private copyEntriesAhead(): void {
    const next = this.nextMeta!;
    const meta = this.meta;
    const to = Math.min(this.copiedIds + META_COPY_STEP_IDS, this.entryTop) * META_STRIDE;
    for (let i = this.copiedIds * META_STRIDE; i < to; i++) next[i] = meta[i]!;
    this.copiedIds = to / META_STRIDE;
  }

  /** Releases entry `e`'s record (its id is the caller's to recycle). */
  private release(e: number): void {
    const bytes = this.meta[(e << 3) + KEY_LEN]! + this.meta[(e << 3) + VAL_CAP]!;
    this.free(this.meta[(e << 3) + PAGE]!, bytes);
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
    this.prefault.step(this.prefaultPages);
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
    // One spare for the next clone per regular page, unless the pool, the spares and the clone now
    // out already cover every one (after a compaction, or pages dropped). Counted here, once per
    // MiB of records, rather than kept up to date at every page's birth and death.
    if (this.warmClones && bytes === this.pageBytes) {
      let regular = 0;
      for (const page of this.pages) if (page.length === this.pageBytes) regular++;
      if (this.clonePool.pages.length + this.sparePages.length + this.clonedPagesOut < regular) this.sparePages.push(this.prefault.add(new Uint8Array(this.pageBytes)));
    }
    return p;
  }

  private maybeCompact(): void {
    if (this.garbageBytes > this.gcMinBytes && this.garbageBytes > this.recordBytes) this.compact();
  }

  /** No pages (the records stay wherever the caller keeps the old ones). */
  private resetPages(): void {
    this.pages = [];
    this.views = [];
    this.pageUsed = [];
    this.pageGarbage = [];
    this.freePages = [];
    this.bumpPage = -1;
    this.garbageBytes = 0;
  }

  /** Copies every live record into fresh pages, in entry order; ids and the index stay. */
  compact(): void {
    const oldPages = this.pages;
    this.resetPages();
    for (const e of this.liveIds()) {
      const bytes = this.meta[(e << 3) + KEY_LEN]! + this.meta[(e << 3) + VAL_CAP]!;
      const [p, at] = this.allocate(bytes);
      copyBytes(oldPages[this.meta[(e << 3) + PAGE]!]!, this.meta[(e << 3) + AT]!, bytes, this.pages[p]!, at);
      this.meta[(e << 3) + PAGE] = p;
      this.meta[(e << 3) + AT] = at;
    }
    this.copiedIds = 0; // every record moved: the copy ahead starts again
  }

  /**
   * Begins doubling the index: the keys stay in the old one, to be moved by rehashStep(), and new
   * keys go into the new one. The move begins at an empty old slot, so it never starts inside a
   * probe run.
   */
  private startRehash(): void {
    const old = this.index;
    const oldMask = this.mask;
    let at = 0;
    while (old[2 * at + 1] !== 0) at++; // load ~1/2: an empty slot comes soon
    this.oldIndex = old;
    this.oldMask = oldMask;
    this.oldLeft = this.live;
    this.moveAt = at;
    this.index = new Int32Array(4 * (oldMask + 1));
    this.mask = 2 * oldMask + 1;
  }

  /**
   * Moves at least `budget` old slots (whole probe runs: a key is found by probing from
   * its home slot to an empty one, so emptying part of a run could hide the rest of it; whole
   * runs leave the others intact, and a delete's backward shift stays within its run, which is
   * not yet moved). Ends the doubling when the old index is empty.
   */
  private rehashStep(budget = this.rehashStepSlots): void {
    const old = this.oldIndex!;
    const oldMask = this.oldMask;
    const index = this.index;
    const mask = this.mask;
    let at = this.moveAt;
    for (; (budget > 0 || old[2 * at + 1] !== 0) && this.oldLeft > 0; budget--) {
      if (old[2 * at + 1] !== 0) {
        place(index, mask, old[2 * at]!, old[2 * at + 1]!);
        old[2 * at] = 0;
        old[2 * at + 1] = 0;
        this.oldLeft--;
      }
      at = (at + 1) & oldMask;
    }
    this.moveAt = at;
    if (this.oldLeft === 0) {
      this.oldIndex = null;
      if (CONTRACTS) {
        let n = 0;
        for (let s = 1; s < index.length; s += 2) if (index[s] !== 0) n++;
        invariant(n === this.live, `after the doubling the index holds ${n} keys, not ${this.live}`);
      }
    }
  }

  private growEntries(): void {
    let grown = this.nextMeta;
    if (grown === null) {
      grown = new Int32Array(this.meta.length * 2);
      this.copiedIds = 0;
    } else if (CONTRACTS) {
      const n = this.copiedIds * META_STRIDE;
      for (let i = 0; i < n; i++) invariant(grown[i] === this.meta[i], `entry fields copied ahead differ at ${i} (a write that missed nextMeta)`);
    }
    grown.set(this.meta.subarray(this.copiedIds * META_STRIDE), this.copiedIds * META_STRIDE);
    this.nextMeta = null;
    this.copiedIds = 0;
    if (this.warmClones && grown.length >= this.prepareEntriesMin * META_STRIDE && (this.clonePool.meta?.length ?? 0) < grown.length) {
      // The next clone copies the fields into this (the pool's is too small now).
      if (this.spareMeta !== null) this.prefault.remove(this.spareMeta);
      this.spareMeta = this.prefault.add(new Int32Array(grown.length));
    }
    this.meta = grown;
  }
}

/** Puts [h, e1] (entry id + 1) into the first empty slot of its probe run in `index`. */
function place(index: Int32Array, mask: number, h: number, e1: number): void {
  let i = h & mask;
  while (index[2 * i + 1] !== 0) i = (i + 1) & mask;
  index[2 * i] = h;
  index[2 * i + 1] = e1;
}

/** Empties slot i of `index`, pulling later members of its probe run back (backward shift: no tombstones). */
function removeSlot(index: Int32Array, mask: number, i: number): void {
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
}

/** Byte order of the key at va[aa, aa + na) against the one at vb[ab, ab + nb), four bytes at a time. */
function compareKeys(va: DataView, aa: number, na: number, vb: DataView, ab: number, nb: number): number {
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

interface ClonePool {
  meta: Int32Array | null;
  pages: Uint8Array[];
}

const EMPTY_POOL: ClonePool = { meta: null, pages: [] };

/** `len` bytes from `src[from]` to `dst[at]`, four at a time through the views (large runs: `set()`). */
function copyWords(src: Uint8Array, srcView: DataView, from: number, len: number, dst: Uint8Array, dstView: DataView, at: number): void {
  if (len > COPY_WORDS_BYTES_MAX) {
    dst.set(src.subarray(from, from + len), at);
    return;
  }
  let k = 0;
  for (; k + 4 <= len; k += 4) dstView.setUint32(at + k, srcView.getUint32(from + k));
  for (; k < len; k++) dst[at + k] = src[from + k]!;
}

/**
 * `len` bytes from `src[from]` (a command, any Uint8Array) to a page: up to COPY_WORDS_BYTES_MAX
 * four at a time, each word put together from the source's bytes and stored through the page's
 * view. The same time as `set()` of a `subarray` at 64 bytes (~49 against ~46 ns alone), without
 * the subarray: a 94-byte view per PUT was an eighth of what the leader allocated per write.
 */
function copyToPage(src: Uint8Array, from: number, len: number, dst: Uint8Array, dstView: DataView, at: number): void {
  if (len <= COPY_LOOP_BYTES_MAX || len > COPY_WORDS_BYTES_MAX) return copyBytes(src, from, len, dst, at);
  let k = 0;
  for (; k + 4 <= len; k += 4) {
    const s = from + k;
    dstView.setUint32(at + k, ((src[s]! << 24) | (src[s + 1]! << 16) | (src[s + 2]! << 8) | src[s + 3]!) >>> 0);
  }
  for (; k < len; k++) dst[at + k] = src[from + k]!;
}

/**
 * The first `used` elements of `from` at the start of `into` if that is long enough (a clone reads
 * entry ids below entryTop only, so what follows is never read), else in a new array with a
 * quarter more room, so that the next clones of a growing table still fit.
 */
function copyInto(into: Int32Array | null, from: Int32Array, used: number): Int32Array {
  const part = used === from.length ? from : from.subarray(0, used);
  if (into === null || into.length < used) into = new Int32Array(Math.min(from.length, Math.ceil(used * 1.25)));
  into.set(part);
  return into;
}
