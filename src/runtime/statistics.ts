// Interval statistics of one replica (RSL's GetStatisticsSnapshot): what happened since the
// previous snapshot, with latency summaries. Cheap when nobody asks: a few counters, and latency
// samples kept in a bounded array per interval (beyond the bound, every other sample is dropped,
// so a long interval keeps an even spread of at most SAMPLES_MAX values).

import { ballotReplica } from '../core/ballot.js';
import type { Ready, ReplicaId, Slot } from '../core/types.js';

const SAMPLES_MAX = 4096;
/** Proposed slots whose voting time is still open, at most (a leader has at most W in flight). */
const OPEN_SLOTS_MAX = 4096;

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ReplicaStatistics {
  /** Length of the interval this snapshot covers (since the previous statistics() call, or start). */
  intervalMs: number;
  slotsExecuted: number;
  commandsExecuted: number;
  proposals: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /**
   * Log writes in the interval. Synod reads its log only at start (recovery) and in offline replay:
   * catch-up is served from memory, so there are no run-time log reads to count.
   */
  log: { appends: number; commits: number; syncs: number; bytesWritten: number; commitLatency: LatencySummary };
  /** Leader only: from a slot's proposal (its 2a) to it being known chosen (RSL's voting time). */
  votingTime: LatencySummary;
}

class Samples {
  private values: number[] = [];
  private stride = 1;
  private skipped = 0;

  add(ms: number): void {
    if (++this.skipped < this.stride) return;
    this.skipped = 0;
    this.values.push(ms);
    if (this.values.length >= SAMPLES_MAX) {
      this.values = this.values.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
    }
  }

  /** The summary of the interval, and a fresh one begins. */
  take(): LatencySummary {
    const v = this.values.sort((a, b) => a - b);
    this.values = [];
    this.stride = 1;
    this.skipped = 0;
    if (v.length === 0) return { count: 0, meanMs: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
    const at = (q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))]!;
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return { count: v.length, meanMs: round(v.reduce((a, b) => a + b, 0) / v.length), p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(v[v.length - 1]!) };
  }
}

/** Upper bounds of the cumulative latency histograms' buckets: 0.1 ms doubling to ~6.5 s (17 buckets, then +Inf). */
export const LATENCY_BUCKET_BOUNDS_MS: readonly number[] = Array.from({ length: 17 }, (_, k) => Math.round(0.1 * 2 ** k * 1000) / 1000);

/**
 * A latency histogram since start, for scraping (Prometheus's histogram): `counts[i]` is the
 * observations in (boundsMs[i-1], boundsMs[i]]; the last count is those above the last bound.
 */
export interface LatencyHistogram {
  boundsMs: readonly number[];
  counts: number[];
  count: number;
  sumMs: number;
}

/** Cumulative since start, unlike Samples: a scraper computes rates and quantiles over its own windows. */
class Histogram {
  private readonly counts = new Float64Array(LATENCY_BUCKET_BOUNDS_MS.length + 1);
  private count = 0;
  private sumMs = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKET_BOUNDS_MS.length && ms > LATENCY_BUCKET_BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += ms;
  }

  snapshot(): LatencyHistogram {
    return { boundsMs: LATENCY_BUCKET_BOUNDS_MS, counts: Array.from(this.counts), count: this.count, sumMs: this.sumMs };
  }
}

export class StatisticsRecorder {
  private readonly commitLatency = new Samples();
  private readonly votingTime = new Samples();
  private readonly commitHistogram = new Histogram();
  private readonly votingHistogram = new Histogram();
  /** Slot -> when this replica, leading, proposed it. */
  private readonly proposedAt = new Map<Slot, number>();
  private intervalStartMs: number;
  private base: { slots: number; commands: number; proposals: number; snapshotsTaken: number; snapshotsInstalled: number; appends: number; commits: number; syncs: number; bytesWritten: number };

  constructor(nowMs: number) {
    this.intervalStartMs = nowMs;
    this.base = { slots: 0, commands: 0, proposals: 0, snapshotsTaken: 0, snapshotsInstalled: 0, appends: 0, commits: 0, syncs: 0, bytesWritten: 0 };
  }

  /** One group commit of the log took this long (from commit() to durable). */
  logCommitted(ms: number): void {
    this.commitLatency.add(ms);
    this.commitHistogram.observe(ms);
  }

  /** Group-commit latency and (leading) voting time since start, as cumulative histograms. */
  histograms(): { logCommit: LatencyHistogram; voting: LatencyHistogram } {
    return { logCommit: this.commitHistogram.snapshot(), voting: this.votingHistogram.snapshot() };
  }

  /** Every Ready batch: a leader's new proposals start a voting time, chosen slots end it. */
  onReady(ready: Ready, selfId: ReplicaId, leading: boolean, nowMs: number): void {
    if (leading) {
      // A leader writes entries at its own ballot only when it proposes them.
      for (const op of ready.persist) {
        for (const e of op.entries) {
          if (ballotReplica(e.ballot) === selfId && e.chosen !== true && !this.proposedAt.has(e.slot) && this.proposedAt.size < OPEN_SLOTS_MAX) {
            this.proposedAt.set(e.slot, nowMs);
          }
        }
      }
    }
    if (this.proposedAt.size === 0) return;
    for (const c of ready.committed) {
      const t = this.proposedAt.get(c.slot);
      if (t === undefined) continue;
      this.proposedAt.delete(c.slot);
      this.votingTime.add(nowMs - t);
      this.votingHistogram.observe(nowMs - t);
    }
    if (!leading) this.proposedAt.clear(); // deposed: those slots end elsewhere
  }

  /** The interval's statistics from cumulative counters; starts the next interval. */
  take(
    nowMs: number,
    totals: { slotsApplied: number; commandsApplied: number; proposals: number; snapshotsTaken: number; snapshotsInstalled: number },
    log: { appends: number; commits: number; syncs: number; bytesWritten: number },
  ): ReplicaStatistics {
    const b = this.base;
    const out: ReplicaStatistics = {
      intervalMs: Math.round(nowMs - this.intervalStartMs),
      slotsExecuted: totals.slotsApplied - b.slots,
      commandsExecuted: totals.commandsApplied - b.commands,
      proposals: totals.proposals - b.proposals,
      snapshotsTaken: totals.snapshotsTaken - b.snapshotsTaken,
      snapshotsInstalled: totals.snapshotsInstalled - b.snapshotsInstalled,
      log: {
        appends: log.appends - b.appends,
        commits: log.commits - b.commits,
        syncs: log.syncs - b.syncs,
        bytesWritten: log.bytesWritten - b.bytesWritten,
        commitLatency: this.commitLatency.take(),
      },
      votingTime: this.votingTime.take(),
    };
    this.base = {
      slots: totals.slotsApplied,
      commands: totals.commandsApplied,
      proposals: totals.proposals,
      snapshotsTaken: totals.snapshotsTaken,
      snapshotsInstalled: totals.snapshotsInstalled,
      appends: log.appends,
      commits: log.commits,
      syncs: log.syncs,
      bytesWritten: log.bytesWritten,
    };
    this.intervalStartMs = nowMs;
    return out;
  }
}
