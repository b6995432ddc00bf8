// A map keyed by sequence numbers that arrive roughly in order and leave roughly in order: a
// client's requests in flight (the session table's results, the runtime's pending proposals).
//
//   ring:  [ . | v | v | . | v | . | . | . ]   capacity a power of two; key k sits at k & mask
//   keys:        ^base                         the ring holds keys in [base, base + capacity)
//   far:   Map for the keys that do not fit (a client far ahead of its floor, or far behind)
//
// Why not a Map: a long-lived Map with one insert and one delete per request rehashes its table
// every few dozen operations, and once the Map is in V8's old generation the new tables go there
// too, and the values stored in it are promoted with them. Measured (node 20, a Map promoted to
// the old generation, 64 keys live, one insert and one delete per operation): about two thirds of
// all bytes allocated were promoted, against 0.2% with this ring; in a replica at full load that
// was most of what made the old generation grow (docs/performance.md, "Memory").
//
// Keys are safe integers (>= 0). Values are never undefined (undefined marks a free ring slot).
// entries() lists keys in ascending order, so the order never depends on the order of inserts.

const CAPACITY_MIN = 8;
/** A ring is not cut back below this many slots (512 bytes): see shrinkIfSparse. */
const CAPACITY_KEPT = 64;
/** Largest ring: keys spread wider than this (from the lowest kept one) go to the Map. */
const CAPACITY_MAX = 65536;

export class SeqMap<V> {
  private ring: Array<V | undefined> = [];
  private mask = -1;
  private base = 0;
  private inRing = 0;
  private far: Map<number, V> | null = null;
  /** No key in `far` is below this (exact after a sweep, a lower bound after that). */
  private farLow = Infinity;

  static from<V>(entries: Iterable<readonly [number, V]>): SeqMap<V> {
    const m = new SeqMap<V>();
    for (const [key, value] of entries) m.set(key, value);
    return m;
  }

  get size(): number {
    return this.inRing + (this.far?.size ?? 0);
  }

  get(key: number): V | undefined {
    if (key >= this.base && key - this.base <= this.mask) {
      const v = this.ring[key & this.mask];
      if (v !== undefined) return v;
    }
    return this.far === null ? undefined : this.far.get(key);
  }

  set(key: number, value: V): void {
    if (value === undefined) throw new TypeError('SeqMap: a value may not be undefined');
    if (this.far !== null && this.far.delete(key) && this.far.size === 0) this.far = null;
    if (this.inRing === 0) {
      // Empty: the ring may start anywhere, but not above keys kept far (they would be stranded
      // below it: see sweepFar).
      if (this.mask < 0) this.resize(key, CAPACITY_MIN);
      this.base = this.far === null ? key : Math.min(key, this.farLow);
    } else if (key < this.base || key - this.base > this.mask) this.fit(key);
    if (key >= this.base && key - this.base <= this.mask) {
      const i = key & this.mask;
      if (this.ring[i] === undefined) this.inRing++;
      this.ring[i] = value;
      return;
    }
    (this.far ??= new Map()).set(key, value);
    if (key < this.farLow) this.farLow = key;
  }

  delete(key: number): boolean {
    if (key >= this.base && key - this.base <= this.mask) {
      const i = key & this.mask;
      if (this.ring[i] !== undefined) {
        this.ring[i] = undefined;
        this.inRing--;
        return true;
      }
    }
    if (this.far === null || !this.far.delete(key)) return false;
    if (this.far.size === 0) this.far = null;
    return true;
  }

  /**
   * Deletes every key below `floor`: O(keys passed), not O(size) (amortised, for the far keys).
   * `deleted`, if given, is called with each value deleted (in no particular order).
   */
  deleteBelow(floor: number, deleted?: (value: V) => void): void {
    if (this.inRing > 0 && floor > this.base) {
      if (floor - this.base > this.mask) {
        if (deleted !== undefined) for (const v of this.ring) if (v !== undefined) deleted(v);
        this.ring.fill(undefined);
        this.inRing = 0;
      } else {
        for (let key = this.base; key < floor; key++) {
          const i = key & this.mask;
          const v = this.ring[i];
          if (v !== undefined) {
            this.ring[i] = undefined;
            this.inRing--;
            deleted?.(v);
          }
        }
        this.base = floor;
      }
    }
    if (this.far !== null && (floor > this.farLow || this.inRing === 0)) this.sweepFar(floor, deleted);
    this.shrinkIfSparse();
  }

  /**
   * Drops the far keys below `floor` and moves into the ring every far key its window covers,
   * re-basing an empty ring at the lowest one. A client whose window of requests is wider than the
   * ring's span keeps keys here: scanning them on every deleteBelow made each command O(window)
   * (a client with 4,096 requests in flight: ~17 µs per command on replay). Now a sweep runs only
   * when the floor passes the lowest far key or the ring is empty, and it leaves in `far` only
   * keys beyond the ring's window, so the next one waits until the floor has moved that far.
   */
  private sweepFar(floor: number, deleted?: (value: V) => void): void {
    const far = this.far!;
    let low = Infinity;
    let high = -Infinity;
    for (const [key, value] of far) {
      if (key < floor) {
        far.delete(key);
        deleted?.(value);
      } else {
        if (key < low) low = key;
        if (key > high) high = key;
      }
    }
    if (far.size === 0) {
      this.far = null;
      this.farLow = Infinity;
      return;
    }
    if (this.inRing === 0) this.resize(low, capacityFor(Math.min(high - low + 1, CAPACITY_MAX)));
    low = Infinity;
    for (const [key, value] of far) {
      if (key >= this.base && key - this.base <= this.mask) {
        this.ring[key & this.mask] = value; // a key is never in both: set() keeps it in one place
        this.inRing++;
        far.delete(key);
      } else if (key < low) low = key;
    }
    this.farLow = low;
    if (far.size === 0) this.far = null;
  }

  /** [key, value] pairs in ascending key order. */
  entries(): Array<[number, V]> {
    const out: Array<[number, V]> = [];
    if (this.inRing > 0) {
      for (let key = this.base; key - this.base <= this.mask; key++) {
        const v = this.ring[key & this.mask];
        if (v !== undefined) out.push([key, v]);
      }
    }
    if (this.far !== null) {
      for (const e of this.far) out.push(e);
      out.sort((a, b) => a[0] - b[0]);
    }
    return out;
  }

  values(): V[] {
    return this.entries().map((e) => e[1]);
  }

  /**
   * Makes the ring cover `key` if the kept keys and it span at most CAPACITY_MAX: first by moving
   * base up to the lowest kept key (single deletes leave the bottom empty), then by growing.
   * Otherwise leaves it: set() puts the key in the Map.
   */
  private fit(key: number): void {
    while (this.ring[this.base & this.mask] === undefined) this.base++; // inRing > 0: ends within the ring
    if (key >= this.base && key - this.base <= this.mask) return;
    // Too wide already from the lowest kept key: no need to look for the highest (a scan down the
    // ring that, for a window wider than the ring, cost each new key O(ring)).
    if (Math.abs(key - this.base) + 1 > CAPACITY_MAX) return;
    const low = Math.min(key, this.base);
    const high = Math.max(key, this.highestKey());
    if (high - low + 1 > CAPACITY_MAX) return;
    this.resize(low, capacityFor(high - low + 1));
  }

  private highestKey(): number {
    let key = this.base + this.mask;
    while (this.ring[key & this.mask] === undefined) key--;
    return key;
  }

  /**
   * A ring much larger than its keys' span (after a burst) is cut back, so idle entries stay small;
   * but never below CAPACITY_KEPT: a client whose requests in flight go from a few dozen to none
   * and back with every slot cut its ring back and grew it again each time (most of a follower's
   * allocation per write once the per-command views were gone).
   */
  private shrinkIfSparse(): void {
    const capacity = this.mask + 1;
    if (capacity <= CAPACITY_KEPT || this.inRing * 16 > capacity) return;
    if (this.inRing === 0) {
      this.ring = [];
      this.mask = -1;
      return;
    }
    while (this.ring[this.base & this.mask] === undefined) this.base++;
    const span = this.highestKey() - this.base + 1;
    if (span * 4 <= capacity) this.resize(this.base, Math.max(CAPACITY_KEPT, capacityFor(span * 2)));
  }

  private resize(newBase: number, capacity: number): void {
    const old = this.ring;
    const oldMask = this.mask;
    const oldBase = this.base;
    this.ring = new Array<V | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    this.base = newBase;
    if (this.inRing === 0) return;
    for (let key = oldBase; key - oldBase <= oldMask; key++) {
      const v = old[key & oldMask];
      if (v !== undefined) this.ring[key & this.mask] = v;
    }
    // The old ring is garbage now, but if it is in the old generation a scavenge still reads it
    // (V8 remembers its pointers to young objects) until a full collection: emptied, it keeps
    // nothing alive (its values, and what they hold, would be promoted).
    old.fill(undefined);
  }
}

function capacityFor(span: number): number {
  let capacity = CAPACITY_MIN;
  while (capacity < span) capacity *= 2;
  return capacity;
}
