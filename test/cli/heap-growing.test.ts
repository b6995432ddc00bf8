// `synod start` sets V8's heap growing factor for itself (--heap-growing-percent, default 50),
// unless node was given its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeapGrowingPercent, HEAP_GROWING_PERCENT_DEFAULT, resolveStartSettings } from '../../src/cli/start.js';
import { UsageError } from '../../src/cli/config.js';

const base = { id: '1', initialCluster: '1=127.0.0.1:7001', http: '127.0.0.1:8001', data: '/tmp/unused' };

test('--heap-growing-percent: default, flag, environment, validation', () => {
  assert.equal(resolveStartSettings(base, {}).heapGrowingPercent, HEAP_GROWING_PERCENT_DEFAULT);
  assert.equal(resolveStartSettings({ ...base, heapGrowingPercent: '0' }, {}).heapGrowingPercent, 0);
  assert.equal(resolveStartSettings(base, { SYNOD_HEAP_GROWING_PERCENT: '80' }).heapGrowingPercent, 80);
  for (const bad of ['-1', '1.5', 'lots', '5000']) assert.throws(() => resolveStartSettings({ ...base, heapGrowingPercent: bad }, {}), UsageError);
});

test('the factor is set unless 0, or node was given its own', () => {
  assert.equal(applyHeapGrowingPercent(0, [], ''), false);
  assert.equal(applyHeapGrowingPercent(50, ['--heap-growing-percent=30'], ''), false);
  assert.equal(applyHeapGrowingPercent(50, [], '--max-old-space-size=512 --heap_growing_percent=30'), false);
  assert.equal(applyHeapGrowingPercent(50, ['--expose-gc'], '--max-old-space-size=512'), true);
});
