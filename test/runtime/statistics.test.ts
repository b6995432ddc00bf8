import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKET_BOUNDS_MS, StatisticsRecorder } from '../../src/runtime/statistics.js';

test('latency histograms: a value goes to the first bucket whose bound it does not exceed, and they accumulate across statistics() intervals', () => {
  assert.equal(LATENCY_BUCKET_BOUNDS_MS[0], 0.1);
  assert.equal(LATENCY_BUCKET_BOUNDS_MS.at(-1), 6553.6);
  const r = new StatisticsRecorder(0);
  for (const ms of [0.05, 0.1, 0.15, 1, 6553.6, 7000]) r.logCommitted(ms);
  const totals = { slotsApplied: 0, commandsApplied: 0, proposals: 0, snapshotsTaken: 0, snapshotsInstalled: 0 };
  const log = { appends: 0, commits: 0, syncs: 0, bytesWritten: 0 };
  assert.equal(r.take(1, totals, log).log.commitLatency.count, 6);
  r.logCommitted(0.3);
  const h = r.histograms().logCommit;
  const expected = new Array(LATENCY_BUCKET_BOUNDS_MS.length + 1).fill(0);
  expected[0] = 2; // 0.05, 0.1 (a bound is inclusive)
  expected[1] = 1; // 0.15 in (0.1, 0.2]
  expected[2] = 1; // 0.3 in (0.2, 0.4]
  expected[4] = 1; // 1 in (0.8, 1.6]
  expected[16] = 1; // 6553.6, the last bound
  expected[17] = 1; // 7000, above every bound
  assert.deepEqual(h.counts, expected);
  assert.equal(h.count, 7, 'the histogram is not reset by statistics()');
  assert.ok(Math.abs(h.sumMs - (0.05 + 0.1 + 0.15 + 1 + 6553.6 + 7000 + 0.3)) < 1e-9);
  assert.equal(r.histograms().voting.count, 0);
});
