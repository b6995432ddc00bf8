// Latency counts for the load generator: the bucket layout of an HDR histogram with 3 significant
// digits over 1 µs .. 1 hour (hdr-histogram-js's own layout, so the counts convert to one without
// loss), recorded with integer arithmetic (Math.clz32 and a shift: a few ns) instead of
// hdr-histogram-js's recordValue (Math.log2, Math.pow: ~160 ns, twice per operation before).
//
// A snapshot (the non-zero buckets as (index, count) pairs, plus the exact max and sum) is what a
// worker thread posts to the bench process; snapshots of several workers add up exactly.

import * as hdr from 'hdr-histogram-js';

/** Latency samples are recorded in microseconds; one hour fits (and fits in a uint32). */
export const LATENCY_US_MAX = 3_600_000_000;
/** 3 significant digits: 2048 sub-buckets per bucket, the upper half of each used from bucket 1 on. */
const SUB_HALF_MAGNITUDE = 10;
const SUB_HALF = 1 << SUB_HALF_MAGNITUDE;
/** hdr-histogram-js's countsArrayLength for (1, LATENCY_US_MAX, 3). */
const COUNTS_LENGTH = 23 * SUB_HALF;

export interface LatencyQuantiles {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Non-zero buckets as [index, count, index, count, ...]; structured-clonable (worker messages). */
export interface LatencySnapshot {
  pairs: Float64Array;
  total: number;
  maxUs: number;
  sumUs: number;
}

/** The bucket index of an integer 1..LATENCY_US_MAX (HDR's countsArrayIndex for unit magnitude 0). */
export function bucketIndex(us: number): number {
  const b = 31 - Math.clz32(us) - SUB_HALF_MAGNITUDE;
  return b <= 0 ? us : (b << SUB_HALF_MAGNITUDE) + (us >>> b);
}

/** The lowest value of bucket `index` (HDR's valueFromIndex). */
export function bucketValue(index: number): number {
  let b = (index >> SUB_HALF_MAGNITUDE) - 1;
  let sub = (index & (SUB_HALF - 1)) + SUB_HALF;
  if (b < 0) {
    sub -= SUB_HALF;
    b = 0;
  }
  return sub * 2 ** b;
}

export class LatencyCounts {
  readonly counts = new Float64Array(COUNTS_LENGTH);
  total = 0;
  maxUs = 0;
  sumUs = 0;

  /** `us` must be an integer in 1..LATENCY_US_MAX (the caller clamps). */
  record(us: number): void {
    this.counts[bucketIndex(us)]++;
    this.total++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  clear(): void {
    if (this.total === 0) return;
    this.counts.fill(0);
    this.total = 0;
    this.maxUs = 0;
    this.sumUs = 0;
  }

  snapshot(): LatencySnapshot {
    const c = this.counts;
    let n = 0;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) n++;
    const pairs = new Float64Array(2 * n);
    for (let i = 0, j = 0; i < c.length; i++) {
      if (c[i] === 0) continue;
      pairs[j++] = i;
      pairs[j++] = c[i]!;
    }
    return { pairs, total: this.total, maxUs: this.maxUs, sumUs: this.sumUs };
  }

  add(s: LatencySnapshot): this {
    const pairs = s.pairs;
    for (let j = 0; j < pairs.length; j += 2) this.counts[pairs[j]!]! += pairs[j + 1]!;
    this.total += s.total;
    this.sumUs += s.sumUs;
    if (s.maxUs > this.maxUs) this.maxUs = s.maxUs;
    return this;
  }

  static sum(snapshots: LatencySnapshot[]): LatencyCounts {
    const c = new LatencyCounts();
    for (const s of snapshots) c.add(s);
    return c;
  }

  /** The same counts in an hdr-histogram-js histogram (identical buckets, so no loss). */
  toHdr(): hdr.Histogram {
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3 });
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) h.recordValueWithCount(bucketValue(i), c[i]!);
    return h;
  }

  quantiles(): LatencyQuantiles {
    if (this.total === 0) return { p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 };
    const h = this.toHdr();
    const q = (p: number) => h.getValueAtPercentile(p) / 1000;
    return { p50Ms: q(50), p90Ms: q(90), p99Ms: q(99), p999Ms: q(99.9), maxMs: this.maxUs / 1000, meanMs: this.sumUs / this.total / 1000 };
  }

  /** Log-spaced buckets, `perOctave` per octave of microseconds: [upper bound ms, count], for the HTML report. */
  logBuckets(perOctave: number): Array<[number, number]> {
    const byBucket: number[] = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      if (c[i] === 0) continue;
      const b = Math.floor(Math.log2(Math.max(1, bucketValue(i))) * perOctave);
      byBucket[b] = (byBucket[b] ?? 0) + c[i]!;
    }
    const out: Array<[number, number]> = [];
    const first = byBucket.findIndex((x) => x > 0);
    if (first < 0) return out;
    for (let i = first; i < byBucket.length; i++) out.push([2 ** ((i + 1) / perOctave) / 1000, byBucket[i] ?? 0]);
    return out;
  }
}
