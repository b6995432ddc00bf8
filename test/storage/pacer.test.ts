// The bulk-write pacer: a rest as long as each step, capped, and none once someone waits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulkPacer, type PacerClock } from '../../src/storage/pacer.js';

/** A clock that only moves when told: a step "takes" what its work advances it by. */
function fakeClock() {
  let t = 0;
  const rests: number[] = [];
  const clock: PacerClock = { now: () => t, sleep: async (ms) => void rests.push(ms) };
  return { clock, rests, advance: (ms: number) => void (t += ms) };
}

test('each step is followed by a rest as long as it took, at most 20 ms; an instant step does not rest', async () => {
  const { clock, rests, advance } = fakeClock();
  const pacer = new BulkPacer(() => false, clock);
  for (const ms of [3, 0.5, 50, 0]) assert.equal(await pacer.step(async () => (advance(ms), ms)), ms, 'step() returns what its work returned');
  assert.deepEqual(rests, [3, 0.5, 20]);
});

test('no rest while urgent() says someone waits for the whole write', async () => {
  const { clock, rests, advance } = fakeClock();
  let urgent = false;
  const pacer = new BulkPacer(() => urgent, clock);
  await pacer.step(async () => advance(5));
  urgent = true;
  await pacer.step(async () => advance(5));
  await pacer.step(async () => advance(5));
  urgent = false;
  await pacer.step(async () => advance(2));
  assert.deepEqual(rests, [5, 2]);
});

test('a failing step fails the write and does not rest', async () => {
  const { clock, rests, advance } = fakeClock();
  const pacer = new BulkPacer(() => false, clock);
  await assert.rejects(pacer.step(async () => (advance(4), Promise.reject(new Error('EIO')))), /EIO/);
  assert.deepEqual(rests, []);
});
