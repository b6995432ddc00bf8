// Deadlines for many short-lived requests without a timer each: a coarse timing wheel.
//
// Why: proposals and reads arrive by the tens of thousands per second, and a setTimeout plus
// clearTimeout per request was a visible share of the leader's CPU (docs/performance.md). Items go
// into buckets of BUCKET_MS keyed by their deadline rounded up (nothing expires early); removing
// an item that finished is a Set delete, and the replica's tick takes every bucket that has ended.
// An item may expire up to one bucket (plus one tick) late.

const BUCKET_MS = 50;

export class DeadlineWheel<T> {
  private readonly buckets = new Map<number, Set<T>>();

  /** Adds `item`; returns its bucket, which remove() needs. */
  add(item: T, deadlineMs: number): number {
    const bucket = Math.ceil(deadlineMs / BUCKET_MS);
    let b = this.buckets.get(bucket);
    if (b === undefined) {
      b = new Set();
      this.buckets.set(bucket, b);
    }
    b.add(item);
    return bucket;
  }

  remove(item: T, bucket: number): void {
    const b = this.buckets.get(bucket);
    if (b === undefined) return;
    b.delete(item);
    if (b.size === 0) this.buckets.delete(bucket);
  }

  /** Removes and returns every item whose deadline is at or before `nowMs`. */
  takeExpired(nowMs: number): T[] {
    const out: T[] = [];
    const last = Math.floor(nowMs / BUCKET_MS);
    for (const [bucket, items] of this.buckets) {
      if (bucket > last) continue;
      for (const item of items) out.push(item);
      this.buckets.delete(bucket);
    }
    return out;
  }
}
