// The load generator: closed loop (clients × inflight lanes, each awaiting its previous answer)
// or open loop (a fixed rate, latency measured from the intended send time so that a stall is not
// hidden: no coordinated omission). Runs in the bench process (--inproc --via direct) or in a
// worker thread (./load-worker.ts) for every other mode.
//
// Keys: lane L writes only keys whose index ≡ L (mod lanes), so writes to one key are sequential
// and "the last acknowledged value" of a key is well defined; reads pick any key. Each value
// starts with the 8-byte id of its write, so verification can tell which write it sees.
//
// Measured window: warmupS of load first (not counted), then totalOps operations or durationS
// seconds. onMeasure('start' | 'end') lets the caller snapshot CPU and counters at its edges.

import * as hdr from 'hdr-histogram-js';
import type { BenchParams } from './params.js';
import { errorCode, type Target } from './targets.js';

/** Latency samples are recorded in microseconds; one hour fits. */
const LATENCY_US_MAX = 3_600_000_000;
const TIMELINE_INTERVAL_MS = 250;
const PROGRESS_INTERVAL_MS = 200;
const OPEN_LOOP_TICK_MS = 1;
const VERIFY_CONCURRENCY = 256;

export interface LatencyQuantiles {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface TimelinePoint {
  tS: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

export interface VerifyResult {
  keysChecked: number;
  ok: number;
  missing: number;
  wrong: number;
  errors: number;
  /** Keys whose last write failed (its outcome is unknown): not checked. */
  uncertain: number;
  skipped: string | null;
}

export interface LoadResult {
  ops: number;
  writes: number;
  reads: number;
  readsFound: number;
  errors: number;
  errorsByCode: Record<string, number>;
  /** Open loop: operations not issued because every lane was busy. */
  overloadSkipped: number;
  elapsedS: number;
  latency: LatencyQuantiles;
  writeLatency: LatencyQuantiles;
  readLatency: LatencyQuantiles;
  /** Latency histogram: [upper bound ms, count] in log-spaced buckets. */
  histogram: Array<[number, number]>;
  timeline: TimelinePoint[];
  verify: VerifyResult;
}

export interface LoadHooks {
  onMeasure?: (edge: 'start' | 'end') => void | Promise<void>;
  onProgress?: (ops: number, errors: number, elapsedS: number) => void;
  stopRequested?: () => boolean;
}

const now = () => performance.now();

export function keyOf(index: number, keyBytes: number): Uint8Array {
  const text = `k${index.toString().padStart(keyBytes - 1, '0')}`;
  return new TextEncoder().encode(text.slice(-keyBytes)); // an index wider than keyBytes keeps its low digits
}

function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3 });
}

function quantiles(h: ReturnType<typeof newHistogram>): LatencyQuantiles {
  const q = (p: number) => h.getValueAtPercentile(p) / 1000;
  return { p50Ms: q(50), p90Ms: q(90), p99Ms: q(99), p999Ms: q(99.9), maxMs: h.maxValue / 1000, meanMs: h.totalCount ? h.mean / 1000 : 0 };
}

export async function runLoad(p: BenchParams, target: Target, hooks: LoadHooks = {}): Promise<LoadResult> {
  const lanes = p.clients * p.inflight;
  // Key width: enough digits for the key space, or the checks would alias keys.
  if (String(p.keySpace - 1).length + 1 > p.keyBytes) throw new RangeError(`keyBytes ${p.keyBytes} cannot name ${p.keySpace} keys`);
  const keys = Array.from({ length: Math.min(p.keySpace, 1 << 20) }, (_, i) => keyOf(i, p.keyBytes));
  const key = (i: number) => keys[i] ?? keyOf(i, p.keyBytes);
  /** Last acknowledged write id per key: -1 none, -2 uncertain (a failed write). */
  const lastWrite = new Float64Array(p.keySpace).fill(-1);
  // One value buffer for every write: a Target copies it before put() returns (its contract), so
  // the generator allocates nothing per write for values. The write id in the first 8 bytes lets
  // the verification tell which write a key holds.
  const scratch = new Uint8Array(p.valueBytes).fill(0x61);
  const scratchId = new DataView(scratch.buffer);
  let nextWriteId = 1;
  const valueOf = (writeId: number) => {
    scratchId.setFloat64(0, writeId);
    return scratch;
  };

  // Per operation: its kind's histogram and the interval one; the overall histogram is their sum,
  // made at the end (one record fewer per operation).
  const writesH = newHistogram();
  const readsH = newHistogram();
  const interval = newHistogram();
  const buckets: number[] = [];
  const timeline: TimelinePoint[] = [];
  const errorsByCode: Record<string, number> = {};
  const counts = { ops: 0, writes: 0, reads: 0, readsFound: 0, errors: 0, overloadSkipped: 0, intervalOps: 0 };
  let measuring = p.warmupS === 0;
  let stopping = false;
  let measureStart = now();
  let measureEnd = 0;
  let intervalStart = measureStart;

  const record = (startMs: number, isRead: boolean, error: unknown) => {
    if (!measuring) return;
    if (error !== null) {
      counts.errors++;
      const code = errorCode(error);
      errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      return;
    }
    const us = Math.max(1, Math.min(LATENCY_US_MAX, Math.round((now() - startMs) * 1000)));
    interval.recordValue(us);
    (isRead ? readsH : writesH).recordValue(us);
    const b = bucketOf(us);
    buckets[b] = (buckets[b] ?? 0) + 1;
    counts.ops++;
    counts.intervalOps++;
    if (isRead) counts.reads++;
    else counts.writes++;
    if (p.totalOps > 0 && counts.ops >= p.totalOps) stopping = true;
  };

  const laneKeysMax = (lane: number) => Math.floor((p.keySpace - 1 - lane) / lanes) + 1;
  const oneOp = async (lane: number, startMs: number): Promise<void> => {
    const isRead = p.readRatio > 0 && Math.random() < p.readRatio;
    if (isRead) {
      try {
        const v = await target.get(lane, key(Math.floor(Math.random() * p.keySpace)), p.consistency);
        if (v !== null && measuring) counts.readsFound++;
        record(startMs, true, null);
      } catch (e) {
        record(startMs, true, e);
      }
      return;
    }
    const k = p.keySpace >= lanes ? lane + lanes * Math.floor(Math.random() * laneKeysMax(lane)) : Math.floor(Math.random() * p.keySpace);
    const id = nextWriteId++;
    try {
      await target.put(lane, key(k), valueOf(id));
      if (p.keySpace >= lanes) lastWrite[k] = id;
      record(startMs, false, null);
    } catch (e) {
      if (p.keySpace >= lanes) lastWrite[k] = -2;
      record(startMs, false, e);
    }
  };

  const tStart = now();
  const timers: NodeJS.Timeout[] = [];
  timers.push(
    setInterval(() => {
      const t = now();
      if (measuring && !stopping) {
        timeline.push({ tS: (t - measureStart) / 1000, opsPerSec: (counts.intervalOps * 1000) / (t - intervalStart), p50Ms: interval.getValueAtPercentile(50) / 1000, p99Ms: interval.getValueAtPercentile(99) / 1000 });
        interval.reset();
        counts.intervalOps = 0;
        intervalStart = t;
      }
    }, TIMELINE_INTERVAL_MS),
    setInterval(() => {
      if (hooks.stopRequested?.()) stopping = true;
      hooks.onProgress?.(counts.ops, counts.errors, measuring ? (now() - measureStart) / 1000 : 0);
    }, PROGRESS_INTERVAL_MS),
  );
  const startMeasuring = async () => {
    await hooks.onMeasure?.('start');
    measuring = true;
    measureStart = now();
    intervalStart = measureStart;
  };
  if (measuring) await startMeasuring();
  else
    timers.push(
      setTimeout(() => {
        void startMeasuring();
      }, p.warmupS * 1000),
    );
  timers.push(setTimeout(() => (stopping = true), (p.warmupS + p.durationS) * 1000 + (p.totalOps > 0 ? 600_000 : 0)));

  try {
    if (p.rateOpsPerS === 0) {
      await Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          while (!stopping) await oneOp(lane, now());
        }),
      );
    } else {
      // Open loop: a lane is taken from the free list per operation; the schedule is fixed.
      const free = Array.from({ length: lanes }, (_, i) => lanes - 1 - i);
      const busy = new Set<Promise<void>>();
      let issued = 0;
      while (!stopping) {
        const due = Math.floor(((now() - tStart) / 1000) * p.rateOpsPerS);
        while (issued < due && !stopping) {
          const intended = tStart + (issued * 1000) / p.rateOpsPerS;
          issued++;
          const lane = free.pop();
          if (lane === undefined) {
            if (measuring) counts.overloadSkipped++;
            continue;
          }
          const op: Promise<void> = oneOp(lane, intended).finally(() => {
            free.push(lane);
            busy.delete(op);
          });
          busy.add(op);
        }
        await new Promise((r) => setTimeout(r, OPEN_LOOP_TICK_MS));
      }
      await Promise.all(busy);
    }
  } finally {
    for (const t of timers) clearTimeout(t);
  }
  measureEnd = now();
  await hooks.onMeasure?.('end');
  hooks.onProgress?.(counts.ops, counts.errors, (measureEnd - measureStart) / 1000);

  const verify = p.verify ? await verifyWrites(p, target, lanes, lastWrite, key) : skippedVerify('--no-verify');
  const all = newHistogram();
  all.add(writesH);
  all.add(readsH);
  return {
    ops: counts.ops,
    writes: counts.writes,
    reads: counts.reads,
    readsFound: counts.readsFound,
    errors: counts.errors,
    errorsByCode,
    overloadSkipped: counts.overloadSkipped,
    elapsedS: (measureEnd - measureStart) / 1000,
    latency: quantiles(all),
    writeLatency: quantiles(writesH),
    readLatency: quantiles(readsH),
    histogram: histogramBuckets(buckets),
    timeline,
    verify,
  };
}

function skippedVerify(why: string): VerifyResult {
  return { keysChecked: 0, ok: 0, missing: 0, wrong: 0, errors: 0, uncertain: 0, skipped: why };
}

/** Reads back (linearizably) the last acknowledged value of up to verifyKeysMax written keys. */
async function verifyWrites(p: BenchParams, target: Target, lanes: number, lastWrite: Float64Array, key: (i: number) => Uint8Array): Promise<VerifyResult> {
  if (p.keySpace < lanes) return skippedVerify(`keySpace ${p.keySpace} < lanes ${lanes}: concurrent writes to one key have no single last value`);
  const written: number[] = [];
  let uncertain = 0;
  for (let k = 0; k < lastWrite.length; k++) {
    if (lastWrite[k]! >= 1) written.push(k);
    else if (lastWrite[k] === -2) uncertain++;
  }
  // A uniform sample when there are more written keys than the limit.
  for (let i = written.length - 1; i > 0 && written.length > p.verifyKeysMax; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [written[i], written[j]] = [written[j]!, written[i]!];
  }
  const check = written.slice(0, p.verifyKeysMax);
  const r: VerifyResult = { keysChecked: check.length, ok: 0, missing: 0, wrong: 0, errors: 0, uncertain, skipped: null };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(VERIFY_CONCURRENCY, check.length) }, async (_, lane) => {
      while (next < check.length) {
        const k = check[next++]!;
        try {
          const v = await target.get(lane, key(k), 'linearizable');
          if (v === null) r.missing++;
          else if (v.length !== p.valueBytes || new DataView(v.buffer, v.byteOffset, v.byteLength).getFloat64(0) !== lastWrite[k]) r.wrong++;
          else r.ok++;
        } catch {
          r.errors++;
        }
      }
    }),
  );
  return r;
}

/** Log-spaced latency buckets, 4 per octave of microseconds, for the HTML report's histogram. */
const BUCKETS_PER_OCTAVE = 4;
const bucketOf = (us: number) => Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE);

function histogramBuckets(counts: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const first = counts.findIndex((c) => c > 0);
  if (first < 0) return out;
  for (let i = first; i < counts.length; i++) out.push([2 ** ((i + 1) / BUCKETS_PER_OCTAVE) / 1000, counts[i] ?? 0]);
  return out;
}
