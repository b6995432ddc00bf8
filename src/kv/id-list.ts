// A growable list of entry ids in an Int32Array. ByteTable keeps the ids of the keys added since
// its last sort in one: hundreds of thousands between two snapshots of a large table. A JS array
// of numbers grows by copying element by element into a new backing store: 6, 9 and 14 ms at
// 0.87, 1.3 and 1.96 million ids on an idle machine (measured), inside a write's turn; here
// growth is a doubling and one memcpy (2 ms at a million), and so are a clone's copy and the
// drop of an adopted prefix.

export class IdList {
  private ids: Int32Array;
  private n = 0;

  constructor(capacity = 16) {
    this.ids = new Int32Array(Math.max(16, capacity));
  }

  /** A list holding a copy of `ids`. */
  static of(ids: Int32Array): IdList {
    const list = new IdList(ids.length);
    list.ids.set(ids);
    list.n = ids.length;
    return list;
  }

  get length(): number {
    return this.n;
  }

  push(e: number): void {
    if (this.n === this.ids.length) {
      const grown = new Int32Array(2 * this.ids.length);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids[this.n++] = e;
  }

  /** The ids in order, as a view that is valid until the list next changes. */
  view(): Int32Array {
    return this.ids.subarray(0, this.n);
  }

  /** A copy. */
  copy(): IdList {
    return IdList.of(this.view());
  }

  /** Drops the first `k` ids (in place: the array stays, its pages already faulted in). */
  dropFirst(k: number): void {
    this.ids.copyWithin(0, k, this.n);
    this.n -= k;
  }

  clear(): void {
    this.n = 0;
  }
}
