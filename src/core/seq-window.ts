// A session's sequence numbers in flight, and the floor it sends with each request: the lowest one
// not yet settled, so that the replicas may drop the results of every seq below it. Numbers are
// issued in increasing order and settled in any order. The unsettled ones sit in a SeqMap ring
// rather than a Set: on the client's write path a Set cost three hash operations per request (add,
// delete, and the floor's lookups), a ring three array accesses. Both the KV client and a replica's
// own session (propose() without a clientId) keep one.

import { SeqMap } from './seq-map.js';

export class SeqWindow {
  private readonly unsettled = new SeqMap<true>();
  private last = 0;
  private low = 1;

  /** The next sequence number (1, 2, 3...); add() it when its request goes out. */
  next(): number {
    return ++this.last;
  }

  add(seq: number): void {
    this.unsettled.set(seq, true);
  }

  /** `seq` was answered (or given up on): it no longer holds the floor down. */
  delete(seq: number): void {
    this.unsettled.delete(seq);
  }

  /** The lowest unsettled seq, or the last one issued if every seq is settled (amortised O(1)). */
  floor(): number {
    while (this.low < this.last && this.unsettled.get(this.low) === undefined) this.low++;
    return this.low;
  }
}
