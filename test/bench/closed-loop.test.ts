// The closed loop against a target that answers in a microtask (the in-process engine's local
// reads, or any refusal of a failed leader): a lane's next operation must not chain on its answer
// forever, or the event loop never turns again: the window's timer never fires, SIGINT and
// SIGTERM are never handled, and the run spins at 100% CPU until killed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_DEFAULTS, validateBenchParams } from '../../src/bench/params.js';
import { runLoadPart, splitLoad } from '../../src/bench/load.js';
import type { GetDone, PutDone, Target } from '../../src/bench/targets.js';

/** Answers in a microtask; counts the longest run of answers with no event-loop turn between them. */
class MicrotaskTarget implements Target {
  maxChain = 0;
  private chain = 0;
  private turnScheduled = false;

  constructor(private readonly fail: boolean) {}

  private answer(done: () => void): void {
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(() => {
        this.turnScheduled = false;
        this.chain = 0;
      });
    }
    if (++this.chain > this.maxChain) this.maxChain = this.chain;
    // Past 100,000 the test breaks the chain itself, so that the old code fails instead of hanging.
    if (this.chain > 100_000) setImmediate(done);
    else queueMicrotask(done);
  }

  put(_lane: number, _key: Uint8Array, _value: Uint8Array, done: PutDone): void {
    this.answer(() => done(this.fail ? Object.assign(new Error('refused'), { code: 'SYNOD_SHUTTING_DOWN' }) : null));
  }

  get(_lane: number, _key: Uint8Array, _c: string, done: GetDone): void {
    this.answer(() => (this.fail ? done(new Error('refused'), null) : done(null, null)));
  }

  close(): void {}
}

for (const [what, readRatio, fail] of [
  ['reads answered at once', 1, false],
  ['writes refused at once (a failed leader)', 0, true],
] as const) {
  test(`closed loop, ${what}: the event loop still turns and the window ends on time`, async () => {
    const p = validateBenchParams({ ...BENCH_DEFAULTS, mode: 'inproc', storage: 'memory', clients: 2, inflight: 2, connections: 1, durationS: 0.3, warmupS: 0, readRatio, verify: false, keySpace: 1000 });
    const target = new MicrotaskTarget(fail);
    const start = performance.now();
    const r = await runLoadPart(p, target, splitLoad(p, 1)[0]!);
    const elapsedMs = performance.now() - start;
    assert.ok(target.maxChain <= 1000, `the generator yields to the event loop: longest run of answers without a turn ${target.maxChain}`);
    assert.ok(elapsedMs < 2000, `the 0.3 s window ended on time: ${elapsedMs.toFixed(0)} ms`);
    assert.ok(fail ? r.errors > 0 && r.ops === 0 : r.reads > 0 && r.errors === 0, `counted: ${r.ops} ops, ${r.errors} errors`);
  });
}

test('--total counts failed requests too: a target that only fails ends the run after that many, not at durationS + 10 minutes', { timeout: 15_000 }, async () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, mode: 'inproc', storage: 'memory', clients: 2, inflight: 2, connections: 1, totalOps: 500, durationS: 60, warmupS: 0, readRatio: 0, verify: false, keySpace: 1000 });
  const start = performance.now();
  const r = await runLoadPart(p, new MicrotaskTarget(true), splitLoad(p, 1)[0]!);
  const elapsedMs = performance.now() - start;
  assert.ok(elapsedMs < 5_000, `ended after its 500 requests: ${elapsedMs.toFixed(0)} ms`);
  assert.ok(r.errors >= 500 && r.ops === 0, `counted: ${r.ops} ops, ${r.errors} errors`);
});
