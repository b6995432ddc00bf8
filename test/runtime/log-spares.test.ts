import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logSpareSegmentsFor } from '../../src/runtime/replica.js';
import { DEFAULT_SPARE_SEGMENTS_MAX } from '../../src/storage/log.js';

const MiB = 1024 * 1024;

test('the file log keeps as many spare segments as a leader\'s snapshot frees at once', () => {
  // Defaults: a leader snapshots every 4 x 64 MiB of log, 4 segments of 64 MiB (+3 around it): the log's default covers it.
  assert.equal(logSpareSegmentsFor({}, 0), DEFAULT_SPARE_SEGMENTS_MAX);
  assert.ok(DEFAULT_SPARE_SEGMENTS_MAX >= 4 + 3);
  // A longer interval: 4 x 256 MiB = 16 segments.
  assert.equal(logSpareSegmentsFor({ snapshotIntervalBytes: 256 * MiB }, 0), 16 + 3);
  assert.equal(logSpareSegmentsFor({ snapshotIntervalBytes: 256 * MiB, leaderSnapshotIntervalFactor: 2 }, 0), 8 + 3);
  // A large state: the interval is at least twice the snapshot (200 MiB -> 400 MiB, x4 = 25 segments).
  assert.equal(logSpareSegmentsFor({}, 200 * MiB), 25 + 3);
  // Never fewer than the default.
  assert.equal(logSpareSegmentsFor({ leaderSnapshotIntervalFactor: 1 }, 0), DEFAULT_SPARE_SEGMENTS_MAX);
});
