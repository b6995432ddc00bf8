import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from './helpers.js';
import type { SimOptions } from '../../src/sim/options.js';

// SAFETY.md: lease reads rest on bounded clock drift. Push drift past ε and they must break;
// read-index reads must not. A slow-clocked replica leads first (its lease lasts longer in real
// time than its followers' promise to wait), and partitions isolate it now and then. Leases are
// made long beside the election so that the stale window is wide enough to be hit often.
const rates = [0.45, 1.55, 1.55, 1.55, 1.55];
const scenario = (readMode: SimOptions['readMode']): Partial<SimOptions> => ({
  readMode,
  clockRates: rates,
  initialLeader: 1,
  // Partitions and message faults only: crashes and pauses would mostly depose the slow leader.
  faults: { crashes: false, pauses: false, slowDisk: false } as SimOptions['faults'],
  core: { leaseMs: 1000, electionTimeoutMinMs: 1000, electionTimeoutMaxMs: 1200 } as SimOptions['core'],
});
const SEEDS = 40;

test('drift beyond ε: lease reads return stale data, read-index reads stay linearizable', () => {
  let stale: number | null = null;
  for (let seed = 1; seed <= SEEDS && stale === null; seed++) {
    const r = simulate(seed, scenario('lease'));
    if (!r.ok) {
      assert.equal(r.violation!.property, 'linearizable-read', r.violation!.message);
      stale = seed;
    }
  }
  assert.notEqual(stale, null, `lease reads never went stale in ${SEEDS} seeds with drift past ε`);
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = simulate(seed, scenario('linearizable'));
    assert.ok(r.ok, `seed ${seed}: ${r.violation?.message}`);
    assert.ok(r.reads > 0, 'no reads were checked');
  }
});

test('drift within ε: lease reads stay linearizable', () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = simulate(seed, { ...scenario('lease'), clockRates: undefined, initialLeader: 1 });
    assert.ok(r.ok, `seed ${seed}: ${r.violation?.message}`);
  }
});

test('a seed replays exactly', () => {
  const a = simulate(42);
  const b = simulate(42);
  assert.equal(a.steps, b.steps);
  assert.equal(a.ackedWrites, b.ackedWrites);
  assert.deepEqual(a.trace, b.trace);
});
