import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from './helpers.js';

// Part 2 of the 300 seeds that npm test runs with every fault on (loss, duplication,
// reordering, delay spikes, partitions, crash-restart, slow disks, clock drift) and the codec on
// the wire. Three files so that the test runner spreads them over both cores.
test('simulator seeds 101..200: every safety and liveness check holds', () => {
  let acked = 0;
  let slots = 0;
  for (let seed = 101; seed < 201; seed++) {
    const result = simulate(seed);
    assert.ok(result.ok, `seed ${seed}: ${result.violation?.message}\n  replay: npm run sim -- --seed ${seed} --trace`);
    acked += result.ackedWrites;
    slots += result.committedSlots;
  }
  // The seeds must do real work, or a clean run proves nothing.
  assert.ok(acked > 1000, `only ${acked} acknowledged writes over 100 seeds`);
  assert.ok(slots > 1000, `only ${slots} committed slots over 100 seeds`);
});
