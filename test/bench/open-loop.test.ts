// The open loop's schedule, against a fake target whose answers come in batches (a turn each, as
// socket reads do), some of which run long: operations are never sent before their time, and
// every one that falls due is sent (late, after a long turn) and answered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_DEFAULTS, validateBenchParams } from '../../src/bench/params.js';
import { runLoadPart, splitLoad } from '../../src/bench/load.js';
import type { PutDone, Target } from '../../src/bench/targets.js';

const busyWait = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

class BatchedTarget implements Target {
  readonly sentAt: number[] = [];
  /** Batches that ran long (busy for `longMs` before delivering their answers). */
  readonly longBatches: number[] = [];
  private queue: PutDone[] = [];
  private scheduled = false;
  private batches = 0;

  constructor(
    private readonly longEvery: number,
    private readonly longMs: number,
  ) {}

  put(_lane: number, _key: Uint8Array, _value: Uint8Array, done: PutDone): void {
    this.sentAt.push(performance.now());
    this.queue.push(done);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.deliver);
    }
  }

  get(): void {
    throw new Error('no reads in this test');
  }

  close(): void {}

  private readonly deliver = () => {
    this.scheduled = false;
    const batch = this.batches++;
    const answers = this.queue;
    this.queue = [];
    if (batch > 0 && batch % this.longEvery === 0) {
      this.longBatches.push(batch);
      busyWait(this.longMs);
    }
    for (const done of answers) done(null);
  };
}

test('open loop: nothing is sent before its time, and everything due is sent and answered, long turns of answers included', async () => {
  const rate = 4000;
  const p = validateBenchParams({ ...BENCH_DEFAULTS, mode: 'inproc', storage: 'memory', clients: 4, inflight: 256, connections: 4, durationS: 1.5, warmupS: 0, rateOpsPerS: rate, verify: false, keySpace: 1000 });
  const part = splitLoad(p, 1)[0]!;
  const target = new BatchedTarget(40, 8);
  // The measured window starts (warm-up 0) just before the schedule's time 0: a tight lower bound.
  let t0 = Infinity;
  const start = performance.now();
  const r = await runLoadPart(p, target, part, { onMeasure: (edge) => void (edge === 'start' && (t0 = performance.now())) });
  const elapsedMs = performance.now() - start;

  assert.equal(r.errors, 0);
  assert.equal(r.laneWaits, 0, 'enough lanes (1,024, for a quarter-second stall of a busy machine): none waited for one');
  assert.equal(r.ops, target.sentAt.length, 'every operation sent was answered and counted');
  // The schedule: operation k is due at time 0 + k / rate, and time 0 >= t0.
  target.sentAt.forEach((t, k) => assert.ok(t >= t0 + (k * 1000) / rate - 0.001, `operation ${k} sent ${(t0 + (k * 1000) / rate - t).toFixed(3)} ms early`));
  const expected = (rate * elapsedMs) / 1000;
  assert.ok(target.sentAt.length >= 0.8 * rate * p.durationS && target.sentAt.length <= expected + 1, `sent ${target.sentAt.length} (due by the end: ~${expected.toFixed(0)})`);
  // An 8 ms turn puts the schedule ~32 operations behind: they are sent afterwards, none lost
  // (the count above), none skipped (every lane was free again).
  assert.ok(target.longBatches.length >= 3, `long turns: ${target.longBatches.length}`);
});

/** Answers each put `delayMs` after it was sent, and records when each was sent. */
class SlowTarget implements Target {
  readonly sentAt: number[] = [];
  constructor(private readonly delayMs: number) {}
  put(_lane: number, _key: Uint8Array, _value: Uint8Array, done: PutDone): void {
    this.sentAt.push(performance.now());
    setTimeout(() => done(null), this.delayMs);
  }
  get(): void {
    throw new Error('no reads in this test');
  }
  close(): void {}
}

test('open loop, every lane busy: a due operation waits for the next free lane, in order, and its wait counts in its latency (none is dropped)', async () => {
  // 4 lanes answered after 20 ms: ~200 operations/s, against 1,000/s requested for 0.6 s.
  const rate = 1000;
  const p = validateBenchParams({ ...BENCH_DEFAULTS, mode: 'inproc', storage: 'memory', clients: 1, inflight: 4, connections: 1, durationS: 0.6, warmupS: 0, rateOpsPerS: rate, verify: false, keySpace: 1000 });
  const part = splitLoad(p, 1)[0]!;
  const target = new SlowTarget(20);
  let t0 = Infinity;
  const r = await runLoadPart(p, target, part, { onMeasure: (edge) => void (edge === 'start' && (t0 = performance.now())) });

  assert.equal(r.errors, 0);
  assert.ok(r.laneWaits > 200, `most operations waited for a lane: ${r.laneWaits}`);
  assert.equal(r.ops, target.sentAt.length, 'every operation sent was answered and counted');
  // Sent in their order, none before its time: the k-th sent is the k-th due.
  target.sentAt.forEach((t, k) => assert.ok(t >= t0 + (k * 1000) / rate - 0.001, `operation ${k} sent ${(t0 + (k * 1000) / rate - t).toFixed(3)} ms early`));
  // The last ones sent waited in line for a lane: ~0.4 s behind their time by the end. Dropping
  // them instead (as before) left every latency at ~20 ms.
  const maxMs = r.writeLatency.maxUs / 1000;
  assert.ok(maxMs >= 200, `the wait for a lane is in the latency: max ${maxMs.toFixed(1)} ms`);
});

test('open loop, every lane busy at the end of the window: the operations still waiting are sent and timed, not dropped', async () => {
  // 2 lanes answered after 20 ms: ~100 operations/s, against 500/s requested for 0.4 s: ~200 fall
  // due in the window, ~40 are sent in it, the rest wait for a lane when the window ends.
  const rate = 500;
  const p = validateBenchParams({ ...BENCH_DEFAULTS, mode: 'inproc', storage: 'memory', clients: 1, inflight: 2, connections: 1, durationS: 0.4, warmupS: 0, rateOpsPerS: rate, verify: false, keySpace: 1000 });
  const part = splitLoad(p, 1)[0]!;
  const target = new SlowTarget(20);
  const r = await runLoadPart(p, target, part);

  assert.equal(r.errors, 0);
  const due = rate * p.durationS;
  assert.ok(target.sentAt.length >= due - 2 && target.sentAt.length <= due + 2, `every operation due in the window was sent: ${target.sentAt.length} of ~${due} (${r.laneWaits} waited for a lane)`);
  assert.equal(r.ops, target.sentAt.length, 'and answered and counted');
  assert.ok(r.laneWaits <= r.ops, `laneWaits counts operations that were sent after waiting: ${r.laneWaits} of ${r.ops}`);
  // The last one was due at ~0.4 s and sent after ~200 × 10 ms of answers: ~1.6 s late.
  const maxMs = r.writeLatency.maxUs / 1000;
  assert.ok(maxMs >= 1000, `the backlog's wait is in the latency: max ${maxMs.toFixed(1)} ms`);
});
