import type { PlantedBug } from '../../src/core/options.js';
import { randomSimOptions, type SimOptions } from '../../src/sim/options.js';
import { runSeed, type SimResult } from '../../src/sim/simulation.js';
import { codecWire } from '../../src/sim/wire.js';

export function simulate(seed: number, overrides: Partial<SimOptions> = {}): SimResult {
  return runSeed(randomSimOptions(seed, { wireCodec: true, ...overrides }), false, codecWire);
}

/** Runs seeds until one reports a violation; returns it (or null after `seeds` clean ones). */
export function firstViolation(seeds: number, overrides: Partial<SimOptions>): SimResult | null {
  for (let seed = 1; seed <= seeds; seed++) {
    const result = simulate(seed, overrides);
    if (!result.ok) return result;
  }
  return null;
}

export function plant(bug: PlantedBug, contracts: boolean): Partial<SimOptions> {
  return { plantedBug: bug, contracts };
}

/** Runs seeds [first, first + count) and returns totals; fails on the first violation with its replay command. */
export function assertSeedsClean(first: number, count: number): { acked: number; slots: number } {
  let acked = 0;
  let slots = 0;
  for (let seed = first; seed < first + count; seed++) {
    const result = simulate(seed);
    if (!result.ok) throw new Error(`seed ${seed}: ${result.violation?.message}\n  replay: npm run sim -- --seed ${seed} --trace`);
    acked += result.ackedWrites;
    slots += result.committedSlots;
  }
  return { acked, slots };
}
