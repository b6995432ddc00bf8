// The segment index: where each write group starts, by LSN. One entry per group (a commit), so it stays
// small even for tiny records: a read binary-searches the group and walks forward from its start.
//
//   lsns     [ 1 | 40 | 41 | 97 | ... ]   first LSN of each group, strictly increasing
//   segments [ 1 |  1 |  2 |  2 | ... ]   segment index of the group (non-decreasing)
//   offsets  [128|2040| 128| 600| ... ]   byte offset of the group header in its segment
//             ^start                       entries below `start` were dropped (compacted in amortized steps)

export interface GroupLocation {
  firstLsn: number;
  segmentIndex: number;
  offset: number;
}

export class GroupIndex {
  private lsns: number[] = [];
  private segments: number[] = [];
  private offsets: number[] = [];
  private start = 0;

  get size(): number {
    return this.lsns.length - this.start;
  }

  add(firstLsn: number, segmentIndex: number, offset: number): void {
    const n = this.lsns.length;
    if (n > this.start) {
      if (!(firstLsn > this.lsns[n - 1]!)) throw new RangeError(`group lsn ${firstLsn} not above ${this.lsns[n - 1]}`);
      if (segmentIndex < this.segments[n - 1]!) throw new RangeError(`segment ${segmentIndex} below ${this.segments[n - 1]}`);
    }
    this.lsns.push(firstLsn);
    this.segments.push(segmentIndex);
    this.offsets.push(offset);
  }

  /** The group holding `lsn`: the last one whose firstLsn <= lsn, or null if lsn is below the first. */
  locate(lsn: number): GroupLocation | null {
    let lo = this.start;
    let hi = this.lsns.length - 1;
    if (hi < lo || lsn < this.lsns[lo]!) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.lsns[mid]! <= lsn) lo = mid;
      else hi = mid - 1;
    }
    return { firstLsn: this.lsns[lo]!, segmentIndex: this.segments[lo]!, offset: this.offsets[lo]! };
  }

  /** The group after the one at `location` (by its firstLsn), or null. */
  next(firstLsn: number): GroupLocation | null {
    const at = this.find(firstLsn);
    if (at < 0 || at + 1 >= this.lsns.length) return null;
    return { firstLsn: this.lsns[at + 1]!, segmentIndex: this.segments[at + 1]!, offset: this.offsets[at + 1]! };
  }

  /** Drops every group of segments below `segmentIndex`. */
  dropSegmentsBelow(segmentIndex: number): void {
    while (this.start < this.lsns.length && this.segments[this.start]! < segmentIndex) this.start++;
    if (this.start > 1024 && this.start * 2 > this.lsns.length) {
      this.lsns = this.lsns.slice(this.start);
      this.segments = this.segments.slice(this.start);
      this.offsets = this.offsets.slice(this.start);
      this.start = 0;
    }
  }

  /** Forgets groups from `firstLsn` up (a truncated tail). */
  dropFrom(firstLsn: number): void {
    while (this.lsns.length > this.start && this.lsns[this.lsns.length - 1]! >= firstLsn) {
      this.lsns.pop();
      this.segments.pop();
      this.offsets.pop();
    }
  }

  private find(firstLsn: number): number {
    const loc = this.locate(firstLsn);
    if (!loc || loc.firstLsn !== firstLsn) return -1;
    let lo = this.start;
    let hi = this.lsns.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lsns[mid]! < firstLsn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
