import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abRunOf, median, pairOrder, summarizeAb, type AbRun } from '../../src/bench/ab.js';

const run = (opsPerSec: number, p99Ms: number, cpu: number[]): AbRun =>
  abRunOf({ opsPerSec, p50Ms: p99Ms / 4, p99Ms, maxMs: p99Ms * 2, processes: cpu.map((cpuUsPerOp) => ({ cpuUsPerOp })) });

test('median of odd and even counts, unsorted input left alone', () => {
  const values = [5, 1, 3];
  assert.equal(median(values), 3);
  assert.deepEqual(values, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('pairs alternate which build runs first', () => {
  assert.deepEqual([0, 1, 2, 3].map(pairOrder), [['a', 'b'], ['b', 'a'], ['a', 'b'], ['b', 'a']]);
});

test('abRunOf sums the CPU of every process and refuses a report without the fields', () => {
  assert.equal(run(100, 10, [1.5, 2, 0.25]).cpuUsPerOp, 3.75);
  assert.throws(() => abRunOf({ opsPerSec: 1, p50Ms: 1, p99Ms: 1, maxMs: 1, processes: [] }), /processes/);
  assert.throws(() => abRunOf({ opsPerSec: 'x', p50Ms: 1, p99Ms: 1, maxMs: 1, processes: [{ cpuUsPerOp: 1 }] }), /opsPerSec/);
  assert.throws(() => abRunOf({ opsPerSec: 1, p50Ms: 1, p99Ms: 1, maxMs: 1, processes: [{}] }), /cpuUsPerOp/);
});

test('the summary is the medians of each side and the median of the per-pair ratios', () => {
  // The machine speeds up pair by pair; B is 10% faster than A within every pair.
  const pairs: Array<[AbRun, AbRun]> = [
    [run(100, 20, [4]), run(110, 18, [3.6])],
    [run(200, 10, [2]), run(220, 9, [1.8])],
    [run(150, 40, [3]), run(165, 36, [2.7])],
  ];
  const s = summarizeAb(pairs);
  assert.equal(s.pairs, 3);
  assert.deepEqual(s.metrics.opsPerSec, { a: 150, b: 165, ratio: 1.1 });
  assert.equal(s.metrics.p99Ms.a, 20);
  assert.equal(s.metrics.p99Ms.b, 18);
  assert.ok(Math.abs(s.metrics.p99Ms.ratio - 0.9) < 1e-12);
  assert.ok(Math.abs(s.metrics.cpuUsPerOp.ratio - 0.9) < 1e-12);
  assert.throws(() => summarizeAb([]), /no pairs/);
});
