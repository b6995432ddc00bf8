// The load generator: closed loop (clients × inflight lanes, each awaiting its previous answer)
// or open loop (a fixed rate, latency measured from the intended send time so that a stall is not
// hidden: no coordinated omission). An open-loop operation that falls due while every lane is
// busy waits for the next free lane, in order, and that wait counts in its latency (dropping it
// would leave the slowest moments out of the quantiles); so do those still waiting when the window
// ends: an overloaded run lasts until its backlog is answered, and elapsedS includes that drain
// (a SIGINT drops the backlog). Runs in the bench process (--inproc
// --via direct) or in worker threads (./load-worker.ts, --load-workers) for every other mode.
//
// Keys: lane L writes only keys whose index ≡ L (mod lanes), so writes to one key are sequential
// and "the last acknowledged value" of a key is well defined; reads pick any key. Each value
// starts with the 8-byte id of its write, so verification can tell which write it sees.
//
// Parts: with several worker threads each runs one part (splitLoad): a disjoint range of the lane
// numbers (the lane count stays global, so the keys a part writes are its own), its share of the
// connections, of --total, of --rate and of the keys to verify, and write ids no other part uses.
// A part verifies its own keys after the measured window; mergeLoad adds the parts' counts,
// latency buckets (exactly: ./latency.ts) and timeline intervals (TimelineMerger).
//
// Measured window: warmupS of load first (not counted), then totalOps operations or durationS
// seconds from the start of measuring. onMeasure('start' | 'end') lets the caller snapshot CPU and
// counters at its edges (with several parts, the caller answers once every part has asked: a
// barrier, so all parts measure the same window).
//
// Per operation the generator allocates nothing of its own: each lane is an object with its
// completion callback bound once (Targets take callbacks: no async function, promise or closure
// per operation), latency goes into integer-indexed buckets, and a closed-loop lane's next
// operation starts at the time its previous one was recorded as done (one clock read per operation).

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { BenchParams } from './params.js';
import { errorCode, getAsync, type GetDone, type PutDone, type Target } from './targets.js';
import { LATENCY_US_MAX, LatencyCounts, type LatencyQuantiles, type LatencySnapshot } from './latency.js';

export type { LatencyQuantiles } from './latency.js';

const TIMELINE_INTERVAL_MS = 250;
const PROGRESS_INTERVAL_MS = 200;
const OPEN_LOOP_TICK_MS = 1;
const VERIFY_CONCURRENCY = 256;
/** Log-spaced latency buckets of the HTML report's histogram, per octave of microseconds. */
const BUCKETS_PER_OCTAVE = 4;

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

/** What a whole run and each part of it count. */
export interface LoadCounts {
  ops: number;
  writes: number;
  reads: number;
  readsFound: number;
  errors: number;
  errorsByCode: Record<string, number>;
  /** Open loop: operations that fell due while every lane was busy and waited for one (the wait is in their latency). */
  laneWaits: number;
  elapsedS: number;
}

export interface LoadResult extends LoadCounts {
  latency: LatencyQuantiles;
  writeLatency: LatencyQuantiles;
  readLatency: LatencyQuantiles;
  /** Latency histogram: [upper bound ms, count] in log-spaced buckets. */
  histogram: Array<[number, number]>;
  timeline: TimelinePoint[];
  verify: VerifyResult;
  /** How many parts (worker threads) generated the load. */
  parts: number;
  /** The generator's own event-loop delay over the window (the worst part's): open-loop latency counts from the intended send time, so a late generator shows in it. */
  loopDelay: { p99Ms: number; maxMs: number };
}

/** One part of the load (one worker thread's): see splitLoad. */
export interface LoadPart {
  index: number;
  parts: number;
  /** Global lane numbers laneStart .. laneStart + laneCount - 1 of clients × inflight. */
  laneStart: number;
  laneCount: number;
  /** This part's connections; their global numbers (for pinning to endpoints) start at connectionStart. */
  connectionStart: number;
  connections: number;
  /** This part's shares of --total (0: run for durationS), --rate (0: closed loop) and --verify-keys. */
  totalOps: number;
  rateOpsPerS: number;
  verifyKeysMax: number;
}

/** What a part returns (structured-clonable: a worker posts it). */
export interface LoadPartResult extends LoadCounts {
  writeLatency: LatencySnapshot;
  readLatency: LatencySnapshot;
  verify: VerifyResult;
  loopDelay: { p99Ms: number; maxMs: number };
}

/** One timeline interval of one part (its index counts intervals from the start of measuring). */
export interface IntervalReport {
  index: number;
  tS: number;
  opsPerSec: number;
  latency: LatencySnapshot;
}

export interface LoadHooks {
  onMeasure?: (edge: 'start' | 'end') => void | Promise<void>;
  onProgress?: (ops: number, errors: number, elapsedS: number) => void;
  stopRequested?: () => boolean;
}

export interface LoadPartHooks extends LoadHooks {
  onInterval?: (r: IntervalReport) => void;
}

const now = () => performance.now();

export function keyOf(index: number, keyBytes: number): Uint8Array {
  const text = `k${index.toString().padStart(keyBytes - 1, '0')}`;
  return new TextEncoder().encode(text.slice(-keyBytes)); // an index wider than keyBytes keeps its low digits
}

/**
 * keyOf(index, out.length), written into `out` (returned). The generator's operations use one such
 * buffer per thread instead of a table of key objects: a random key of 100,000 was a cache miss
 * or two on its object before its bytes were even copied (~15% of the load worker's CPU).
 */
export function writeKey(index: number, out: Uint8Array): Uint8Array {
  let n = index;
  let j = out.length - 1;
  for (; j >= 1 && n > 0; j--) {
    out[j] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  if (j >= 1) out.fill(0x30, 1, j + 1); // zero padding
  // 'k' when the digits fit; else the next digit of a wider index (for a 1-byte key, index 0's
  // own digit: keyOf's '0', which the loop above never writes).
  if (out.length > 1) out[0] = n === 0 ? 0x6b : 0x30 + (n % 10);
  else if (out.length === 1) out[0] = 0x30 + (n % 10);
  return out;
}

/**
 * Worker threads for the load: --load-workers, or by default 2 for local reads (the replicas
 * answer them for ~1 µs of CPU each, so one generator thread is the limit) and 1 otherwise (a
 * write costs the replicas several times what it costs the generator). 1 for --inproc --via direct
 * (the load calls the leader in this thread). Never more than the lanes, or than --total.
 */
export function loadWorkersOf(p: BenchParams): number {
  if (p.mode === 'inproc' && p.via === 'direct') return 1;
  const wanted = p.loadWorkers > 0 ? p.loadWorkers : p.readRatio > 0 && p.consistency === 'local' ? 2 : 1;
  return Math.max(1, Math.min(wanted, p.clients * p.inflight, p.totalOps > 0 ? p.totalOps : Infinity));
}

/** `total` split into `n` integer shares that add up to it (the first ones get the remainder last). */
const share = (total: number, n: number, i: number) => Math.floor((total * (i + 1)) / n) - Math.floor((total * i) / n);

/**
 * The load split into `n` parts: contiguous lane ranges; connections, --total and --verify-keys
 * split in integer shares that add up (each part has at least one connection, so with fewer
 * connections than parts there are `n` in all); --rate in proportion to the lanes.
 */
export function splitLoad(p: BenchParams, n: number): LoadPart[] {
  const lanes = p.clients * p.inflight;
  const parts: LoadPart[] = [];
  let laneStart = 0;
  let connectionStart = 0;
  for (let i = 0; i < n; i++) {
    const laneCount = share(lanes, n, i);
    const connections = Math.max(1, share(p.connections, n, i));
    parts.push({
      index: i,
      parts: n,
      laneStart,
      laneCount,
      connectionStart,
      connections,
      totalOps: share(p.totalOps, n, i),
      rateOpsPerS: (p.rateOpsPerS * laneCount) / lanes,
      verifyKeysMax: share(p.verifyKeysMax, n, i),
    });
    laneStart += laneCount;
    connectionStart += connections;
  }
  return parts;
}

/** The whole load in this thread (--inproc --via direct, tests): one part, merged. */
export async function runLoad(p: BenchParams, target: Target, hooks: LoadHooks = {}): Promise<LoadResult> {
  const timeline = new TimelineMerger(1);
  const part = await runLoadPart(p, target, splitLoad(p, 1)[0]!, { ...hooks, onInterval: (r) => timeline.add(0, r) });
  return mergeLoad([part], timeline.points());
}

/** A lane: its handlers are bound once, so an operation allocates no closure of the generator's. */
interface Lane {
  /** Index within this part (what the Target is given) and the global lane number (which keys it writes). */
  readonly local: number;
  readonly global: number;
  /** How many keys ≡ global (mod lanes) the key space has. */
  readonly ownKeys: number;
  startMs: number;
  key: number;
  writeId: number;
  readonly onRead: GetDone;
  readonly onWrite: PutDone;
}

export async function runLoadPart(p: BenchParams, target: Target, part: LoadPart, hooks: LoadPartHooks = {}): Promise<LoadPartResult> {
  const lanes = p.clients * p.inflight;
  // Key width: enough digits for the key space, or the checks would alias keys.
  if (String(p.keySpace - 1).length + 1 > p.keyBytes) throw new RangeError(`keyBytes ${p.keyBytes} cannot name ${p.keySpace} keys`);
  // Operations write their key into one buffer (a Target copies it before put()/get() returns).
  const keyScratch = new Uint8Array(p.keyBytes);
  const key = (i: number) => writeKey(i, keyScratch);
  /** Writes to a key come from one lane only (so its last acknowledged value is defined). */
  const ownKeys = p.keySpace >= lanes;
  /** Last acknowledged write id per key: -1 none, -2 uncertain (a failed write). */
  const lastWrite = new Float64Array(p.keySpace).fill(-1);
  // Kept only for the verification: a store at a random key's index is a cache miss per write.
  const trackWrites = ownKeys && p.verify;
  // One value buffer for every write: a Target copies it before put() returns (its contract), so
  // the generator allocates nothing per write for values. The write id in the first 8 bytes lets
  // the verification tell which write a key holds; parts number their writes i+1, i+1+n, ...
  const scratch = new Uint8Array(p.valueBytes).fill(0x61);
  const scratchId = new DataView(scratch.buffer);
  let nextWriteId = part.index + 1;
  const readRatio = p.readRatio;
  const keySpace = p.keySpace;
  const consistency = p.consistency;
  const totalOps = part.totalOps;

  // Per operation: its kind's latency counts and the interval's (both a few ns: ./latency.ts).
  const writesL = new LatencyCounts();
  const readsL = new LatencyCounts();
  const interval = new LatencyCounts();
  const errorsByCode: Record<string, number> = {};
  let ops = 0;
  let writes = 0;
  let reads = 0;
  let readsFound = 0;
  let errors = 0;
  let laneWaits = 0;
  let intervalOps = 0;
  let intervalIndex = 0;
  let measuring = false;
  let stopping = false;
  let measureStart = now();
  let measureEnd = 0;
  let intervalStart = measureStart;

  const recordOk = (lane: Lane, t: number, isRead: boolean) => {
    if (!measuring) return;
    let us = Math.round((t - lane.startMs) * 1000);
    if (us < 1) us = 1;
    else if (us > LATENCY_US_MAX) us = LATENCY_US_MAX;
    interval.record(us);
    if (isRead) {
      readsL.record(us);
      reads++;
    } else {
      writesL.record(us);
      writes++;
    }
    ops++;
    intervalOps++;
    if (totalOps > 0 && ops + errors >= totalOps) stopping = true;
  };
  const recordError = (error: unknown) => {
    if (!measuring) return;
    errors++;
    // --total counts requests answered, errors too: a target that only fails (a cluster down, a
    // wrong endpoint) ended the run only at durationS + 10 minutes.
    if (totalOps > 0 && ops + errors >= totalOps) stopping = true;
    const code = errorCode(error);
    errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
  };

  // Closed loop: a lane's next operation starts when its previous one is recorded; open loop: the
  // lane takes the oldest operation waiting for one (sent now, timed from when it was due), or
  // goes back to the free list.
  const closedLoop = part.rateOpsPerS === 0;
  const free: Lane[] = [];
  // Open loop: operation k is due at tStart + k / rate and they are sent in order, so the ones
  // waiting for a lane are the numbers sent .. due - 1: two counters, no queue (one that grew by
  // the excess rate for the whole run when the rate was above what the system answers).
  let due = 0;
  let sent = 0;
  const intendedOf = (k: number) => tStart + (k * 1000) / part.rateOpsPerS;
  /** The caller's stop (SIGINT): the operations still waiting are not sent. */
  let aborted = false;
  let running = 0;
  let allDone: () => void = () => {};
  // Closed loop: a target may answer in a microtask (the engine's local reads, a failed leader's
  // refusals); a lane that re-issued on such an answer at once chained microtasks forever, so the
  // event loop never turned (no stop timer, no SIGINT: 100% CPU until killed). Completions are
  // counted per event-loop turn (one setImmediate per turn, not per operation); past a bound that
  // normal answers never reach (every lane twice), lanes wait for the next turn.
  const turnOpsMax = 2 * part.laneCount + 64;
  let turnOps = 0;
  const parked: Lane[] = [];
  const nextTurn = () => {
    turnOps = 0;
    if (parked.length === 0) return;
    const lanes = parked.splice(0);
    const t = now();
    for (const lane of lanes) {
      running--;
      if (!stopping) issue(lane, t);
    }
    if (running === 0 && stopping) allDone();
  };
  const done = (lane: Lane, t: number) => {
    running--;
    if (closedLoop && !stopping) {
      if (turnOps++ === 0) setImmediate(nextTurn);
      if (turnOps <= turnOpsMax && parked.length === 0) return issue(lane, t);
      running++; // still this lane's turn to come: the run does not end before it
      parked.push(lane);
      return;
    }
    if (!closedLoop) {
      // Even after the window's end: an operation that fell due in it is sent and timed from when
      // it was due. Dropping the backlog left out the slowest operations of an overloaded window
      // (most of them at twice the rate the system answers) while laneWaits still counted them.
      if (sent < due && !aborted) return issue(lane, intendedOf(sent++));
      free.push(lane);
    }
    if (running === 0 && stopping) allDone();
  };

  const issue = (lane: Lane, startMs: number) => {
    running++;
    lane.startMs = startMs;
    if (readRatio > 0 && (readRatio >= 1 || Math.random() < readRatio)) {
      target.get(lane.local, key(Math.floor(Math.random() * keySpace)), consistency, lane.onRead);
      return;
    }
    const k = ownKeys ? lane.global + lanes * Math.floor(Math.random() * lane.ownKeys) : Math.floor(Math.random() * keySpace);
    const id = nextWriteId;
    nextWriteId += part.parts;
    lane.key = k;
    lane.writeId = id;
    scratchId.setFloat64(0, id);
    target.put(lane.local, key(k), scratch, lane.onWrite);
  };

  const newLane = (local: number): Lane => {
    const global = part.laneStart + local;
    const lane: Lane = {
      local,
      global,
      ownKeys: Math.floor((keySpace - 1 - global) / lanes) + 1,
      startMs: 0,
      key: 0,
      writeId: 0,
      onRead: (e, v) => {
        const t = now();
        if (e !== null) recordError(e);
        else {
          if (v !== null && measuring) readsFound++;
          recordOk(lane, t, true);
        }
        done(lane, t);
      },
      onWrite: (e) => {
        const t = now();
        if (e !== null) {
          if (trackWrites) lastWrite[lane.key] = -2;
          recordError(e);
        } else {
          if (trackWrites) lastWrite[lane.key] = lane.writeId;
          recordOk(lane, t, false);
        }
        done(lane, t);
      },
    };
    return lane;
  };
  const laneList = Array.from({ length: part.laneCount }, (_, i) => newLane(i));

  const timers: NodeJS.Timeout[] = [];
  const tick = () => {
    const t = now();
    if (!measuring || stopping) return;
    hooks.onInterval?.({ index: intervalIndex++, tS: (t - measureStart) / 1000, opsPerSec: (intervalOps * 1000) / (t - intervalStart), latency: interval.snapshot() });
    interval.clear();
    intervalOps = 0;
    intervalStart = t;
  };
  timers.push(
    setInterval(() => {
      if (hooks.stopRequested?.()) stopping = aborted = true;
      hooks.onProgress?.(ops, errors, measuring ? (now() - measureStart) / 1000 : 0);
    }, PROGRESS_INTERVAL_MS),
  );
  // How late a 1 ms timer fires in this thread: the generator's own stalls (GC, CPU contention).
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const startMeasuring = async () => {
    await hooks.onMeasure?.('start');
    loop.reset();
    measuring = true;
    measureStart = now();
    intervalStart = measureStart;
    // The window's length counts from here (with several parts, from the barrier).
    timers.push(
      setInterval(tick, TIMELINE_INTERVAL_MS),
      setTimeout(() => (stopping = true), p.durationS * 1000 + (totalOps > 0 ? 600_000 : 0)),
    );
  };
  if (p.warmupS === 0) await startMeasuring();
  else
    timers.push(
      setTimeout(() => {
        void startMeasuring();
      }, p.warmupS * 1000),
    );

  const tStart = now();
  try {
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    if (closedLoop) {
      if (laneList.length === 0) allDone();
      for (const lane of laneList) issue(lane, now());
    } else {
      // Open loop: a lane is taken from the free list per operation; the schedule is fixed.
      for (let i = laneList.length - 1; i >= 0; i--) free.push(laneList[i]!);
      while (!stopping) {
        const dueNow = Math.floor(((now() - tStart) / 1000) * part.rateOpsPerS);
        while (due < dueNow && !stopping) {
          due++;
          // A free lane means none is waiting (done() hands a lane the oldest waiting first).
          const lane = free.pop();
          if (lane === undefined) {
            if (measuring) laneWaits++; // sent by the next lane to finish, timed from when due
            continue;
          }
          issue(lane, intendedOf(sent++));
        }
        await new Promise((r) => setTimeout(r, OPEN_LOOP_TICK_MS));
      }
      if (running === 0) allDone();
    }
    await finished;
  } finally {
    for (const t of timers) clearTimeout(t);
  }
  measureEnd = now();
  loop.disable();
  const loopDelay = { p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 };
  await hooks.onMeasure?.('end');
  hooks.onProgress?.(ops, errors, (measureEnd - measureStart) / 1000);

  const verify = p.verify ? await verifyWrites(p, target, lanes, part.verifyKeysMax, lastWrite) : skippedVerify('--no-verify');
  return {
    ops,
    writes,
    reads,
    readsFound,
    errors,
    errorsByCode,
    laneWaits,
    elapsedS: (measureEnd - measureStart) / 1000,
    writeLatency: writesL.snapshot(),
    readLatency: readsL.snapshot(),
    verify,
    loopDelay,
  };
}

/**
 * The parts' timeline intervals merged by index (the parts start their intervals at the common
 * start of measuring): throughput added, quantiles from the added latency counts. A point is
 * made once every part has reported its interval.
 */
export class TimelineMerger {
  private readonly pending = new Map<number, { reported: number; tS: number; opsPerSec: number; latency: LatencyCounts }>();
  private readonly done: TimelinePoint[] = [];

  constructor(private readonly parts: number) {}

  add(_part: number, r: IntervalReport): void {
    let e = this.pending.get(r.index);
    if (!e) this.pending.set(r.index, (e = { reported: 0, tS: 0, opsPerSec: 0, latency: new LatencyCounts() }));
    e.reported++;
    e.tS = Math.max(e.tS, r.tS);
    e.opsPerSec += r.opsPerSec;
    e.latency.add(r.latency);
    if (e.reported < this.parts) return;
    this.pending.delete(r.index);
    const q = e.latency.quantiles();
    this.done[r.index] = { tS: e.tS, opsPerSec: e.opsPerSec, p50Ms: q.p50Ms, p99Ms: q.p99Ms };
  }

  /** The intervals every part reported, in order (a part that stopped one interval early ends it). */
  points(): TimelinePoint[] {
    const out: TimelinePoint[] = [];
    for (const x of this.done) {
      if (x === undefined) break;
      out.push(x);
    }
    return out;
  }
}

/** The parts' results as one: counts added, latency counts added (exact quantiles), verification added. */
export function mergeLoad(parts: LoadPartResult[], timeline: TimelinePoint[]): LoadResult {
  const sum = (k: 'ops' | 'writes' | 'reads' | 'readsFound' | 'errors' | 'laneWaits') => parts.reduce((s, x) => s + x[k], 0);
  const errorsByCode: Record<string, number> = {};
  for (const x of parts) for (const [code, n] of Object.entries(x.errorsByCode)) errorsByCode[code] = (errorsByCode[code] ?? 0) + n;
  const writesL = LatencyCounts.sum(parts.map((x) => x.writeLatency));
  const readsL = LatencyCounts.sum(parts.map((x) => x.readLatency));
  const all = LatencyCounts.sum(parts.flatMap((x) => [x.writeLatency, x.readLatency]));
  const v = parts.map((x) => x.verify);
  const vsum = (k: 'keysChecked' | 'ok' | 'missing' | 'wrong' | 'errors' | 'uncertain') => v.reduce((s, x) => s + x[k], 0);
  return {
    ops: sum('ops'),
    writes: sum('writes'),
    reads: sum('reads'),
    readsFound: sum('readsFound'),
    errors: sum('errors'),
    errorsByCode,
    laneWaits: sum('laneWaits'),
    // The parts measure the same window (to a message's latency): the longest is the window.
    elapsedS: Math.max(0, ...parts.map((x) => x.elapsedS)),
    latency: all.quantiles(),
    writeLatency: writesL.quantiles(),
    readLatency: readsL.quantiles(),
    histogram: all.logBuckets(BUCKETS_PER_OCTAVE),
    timeline,
    verify: { keysChecked: vsum('keysChecked'), ok: vsum('ok'), missing: vsum('missing'), wrong: vsum('wrong'), errors: vsum('errors'), uncertain: vsum('uncertain'), skipped: v.find((x) => x.skipped !== null)?.skipped ?? null },
    parts: parts.length,
    loopDelay: { p99Ms: Math.max(0, ...parts.map((x) => x.loopDelay.p99Ms)), maxMs: Math.max(0, ...parts.map((x) => x.loopDelay.maxMs)) },
  };
}

function skippedVerify(why: string): VerifyResult {
  return { keysChecked: 0, ok: 0, missing: 0, wrong: 0, errors: 0, uncertain: 0, skipped: why };
}

/** Reads back (linearizably) the last acknowledged value of up to verifyKeysMax written keys (this part's). */
async function verifyWrites(p: BenchParams, target: Target, lanes: number, verifyKeysMax: number, lastWrite: Float64Array): Promise<VerifyResult> {
  if (p.keySpace < lanes) return skippedVerify(`keySpace ${p.keySpace} < lanes ${lanes}: concurrent writes to one key have no single last value`);
  const written: number[] = [];
  let uncertain = 0;
  for (let k = 0; k < lastWrite.length; k++) {
    if (lastWrite[k]! >= 1) written.push(k);
    else if (lastWrite[k] === -2) uncertain++;
  }
  // A uniform sample when there are more written keys than the limit.
  for (let i = written.length - 1; i > 0 && written.length > verifyKeysMax; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [written[i], written[j]] = [written[j]!, written[i]!];
  }
  const check = written.slice(0, verifyKeysMax);
  const r: VerifyResult = { keysChecked: check.length, ok: 0, missing: 0, wrong: 0, errors: 0, uncertain, skipped: null };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(VERIFY_CONCURRENCY, check.length) }, async (_, lane) => {
      while (next < check.length) {
        const k = check[next++]!;
        try {
          const v = await getAsync(target, lane, keyOf(k, p.keyBytes), 'linearizable');
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
