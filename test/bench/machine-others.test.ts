import { test } from 'node:test';
import assert from 'node:assert/strict';
import { othersBetween, othersText, sampleMachine, type MachineSample } from '../../src/bench/machine-others.js';

const sample = (tMs: number, irqTicks: number, stealTicks: number, tasks: Array<[number, string, number]>): MachineSample => ({
  tMs, irqTicks, stealTicks, tasks: new Map(tasks.map(([pid, name, ticks]) => [pid, { name, ticks }])),
});

test('othersBetween counts every task but the bench\'s own, a new one from zero, and ranks the busiest', () => {
  const a = sample(0, 10, 0, [[1, 'init', 5], [83, 'kdamond.0', 100], [500, 'bench', 1_000], [501, 'replica', 2_000], [77, 'kworker/0:1H', 40]]);
  const b = sample(10_000, 30, 5, [[1, 'init', 5], [83, 'kdamond.0', 168], [500, 'bench', 1_900], [501, 'replica', 2_800], [77, 'kworker/0:1H', 50], [900, 'cron', 3]]);
  const o = othersBetween(a, b, new Set([500, 501]));
  // kdamond 68 ticks, kworker 10, cron 3 (started in the window): 81 ticks of 10 ms over 10 s.
  assert.equal(o.cores, 0.081);
  assert.equal(o.irqCores, 0.02);
  assert.equal(o.stealCores, 0.005);
  assert.deepEqual(o.top, [
    { name: 'kdamond.0', pid: 83, cpuMsPerS: 68 },
    { name: 'kworker/0:1H', pid: 77, cpuMsPerS: 10 },
    { name: 'cron', pid: 900, cpuMsPerS: 3 },
  ]);
  assert.match(othersText(o), /^0\.08 cores \(kdamond\.0 68 ms\/s, kworker\/0:1H 10 ms\/s, cron 3 ms\/s\); interrupts 0\.02, steal 0\.01/);
  // A busy kdamond (68 ms/s) points at the operations doc when DAMON is on.
  assert.match(othersText({ ...o, damon: 'on' }), /DAMON on \(its memory sampling stalls every process in bursts: docs\/operations\.md, "The host"\)$/);
  assert.doesNotMatch(othersText({ ...o, damon: 'on', top: o.top.slice(1) }), /memory sampling/);
});

test('sampleMachine reads this process among the tasks (Linux)', { skip: process.platform !== 'linux' }, () => {
  const s = sampleMachine();
  assert.ok(s !== null);
  const self = s.tasks.get(process.pid);
  assert.ok(self, 'this process is listed');
  assert.equal(self.name, 'node');
  assert.ok(self.ticks >= 0);
});
