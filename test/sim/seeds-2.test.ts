import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertSeedsClean } from './helpers.js';

// Part 2 of the 300 seeds that npm test runs with every fault on (loss, duplication, reordering,
// delay spikes, partitions, crash-restart, slow disks, pauses, clock drift, membership changes,
// snapshots) and the codec on the wire: three files so the runner spreads them over both cores.
test('simulator seeds 101..200: every safety and liveness check holds', () => {
  const { acked, slots } = assertSeedsClean(101, 100);
  // The seeds must do real work, or a clean run proves nothing.
  assert.ok(acked > 1000, `only ${acked} acknowledged writes over 100 seeds`);
  assert.ok(slots > 1000, `only ${slots} committed slots over 100 seeds`);
});
