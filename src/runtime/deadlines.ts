// Deadlines for many short-lived requests without a timer each: a coarse timing wheel.
//
// Why: proposals and reads arrive by the tens of thousands per second, and a setTimeout plus
// clearTimeout per request was a visible share of the leader's CPU (docs/performance.md). Items go
// into buckets of BUCKET_MS keyed by their deadline rounded up (nothing expires early); the
// replica's tick takes every bucket that has ended. An item may expire up to one bucket (plus one
// tick) late.
//
// Each bucket is a doubly linked list through the items themselves (wheelPrev/wheelNext), so
// removing an item that finished is a few pointer writes. It was a Set per bucket: a bucket lives
// as long as the timeout (seconds), so its Set reached V8's old generation, and one insert and one
// delete per request then made V8 promote the items with its tables (src/core/seq-map.ts).

const BUCKET_MS = 50;

/** The wheel's fields in an item: its bucket (-1: not in the wheel) and its neighbours there. */
export interface WheelItem<T> {
  bucket: number;
  wheelPrev: T | null;
  wheelNext: T | null;
}

interface Bucket<T> {
  head: T | null;
}

export class DeadlineWheel<T extends WheelItem<T>> {
  private readonly buckets = new Map<number, Bucket<T>>();

  /** Adds `item` (not in a wheel already). */
  add(item: T, deadlineMs: number): void {
    const bucket = Math.ceil(deadlineMs / BUCKET_MS);
    let b = this.buckets.get(bucket);
    if (b === undefined) {
      b = { head: null };
      this.buckets.set(bucket, b);
    }
    item.bucket = bucket;
    item.wheelPrev = null;
    item.wheelNext = b.head;
    if (b.head !== null) b.head.wheelPrev = item;
    b.head = item;
  }

  /** Removes `item` if it is in the wheel (a second call does nothing). */
  remove(item: T): void {
    const key = item.bucket;
    if (key < 0) return;
    const b = this.buckets.get(key);
    item.bucket = -1;
    if (b === undefined) return;
    const { wheelPrev: prev, wheelNext: next } = item;
    if (prev !== null) prev.wheelNext = next;
    else b.head = next;
    if (next !== null) next.wheelPrev = prev;
    item.wheelPrev = null;
    item.wheelNext = null;
    if (b.head === null) this.buckets.delete(key);
  }

  /** Removes and returns every item whose deadline is at or before `nowMs`. */
  takeExpired(nowMs: number): T[] {
    const out: T[] = [];
    const last = Math.floor(nowMs / BUCKET_MS);
    for (const [bucket, b] of this.buckets) {
      if (bucket > last) continue;
      for (let item = b.head; item !== null; ) {
        const next = item.wheelNext;
        item.bucket = -1;
        item.wheelPrev = null;
        item.wheelNext = null;
        out.push(item);
        item = next;
      }
      this.buckets.delete(bucket);
    }
    return out;
  }
}
