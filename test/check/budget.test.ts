// Budgets (unknown is a failure, never a pass) and a performance run on a generated history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory } from '../../src/check/linearizability.js';
import { explainResult } from '../../src/check/explain.js';
import type { OpRecord } from '../../src/check/history.js';
import { HistoryBuilder, concurrentHistory } from './helpers.js';

/**
 * Pathological for the search: n writes of distinct values and n reads of them, all
 * concurrent, then a read of a value nobody wrote. Proving that no order works means
 * exploring every interleaving of writes and reads up to the last read: about 3^n
 * configurations even with memoization (n = 12: 4 million, several seconds).
 */
function pathological(n = 12): OpRecord[] {
  const h = new HistoryBuilder();
  for (let i = 0; i < n; i++) h.put(i, 'x', `w${i}`, 0, 1000);
  for (let i = 0; i < n; i++) h.get(100 + i, 'x', `w${i}`, 10 + i, 900);
  h.get(200, 'x', 'never', 950, 960);
  return h.ops;
}

test('budget: a tiny step budget yields unknown, and unknown is not ok', () => {
  const result = checkHistory(pathological(), { budgetStepsPerKey: 200 });
  assert.equal(result.verdict, 'unknown');
  assert.equal(result.ok, false);
  assert.equal(result.perKey[0]!.unknownReason, 'steps');
  assert.equal(result.counterexample, undefined, 'no counterexample without a proof');
  assert.match(explainResult(result), /unknown \(FAIL\)[\s\S]*steps budget ran out[\s\S]*counts as a failure/);
});

test('budget: the time budget, read from the injected clock', () => {
  let now = 0;
  const nowMs = () => (now += 1); // every read of the clock advances it by 1 ms
  const result = checkHistory(pathological(), { budgetMsPerKey: 2, nowMs });
  assert.equal(result.verdict, 'unknown');
  assert.equal(result.ok, false);
  assert.equal(result.perKey[0]!.unknownReason, 'time');
});

test('budget: the memory budget of the cache', () => {
  const result = checkHistory(pathological(), { cacheBytesMaxPerKey: 1024 });
  assert.equal(result.verdict, 'unknown');
  assert.equal(result.perKey[0]!.unknownReason, 'memory');
});

test('budget: with enough budget the pathological history is decided', () => {
  const history = pathological(7);
  const result = checkHistory(history);
  assert.equal(result.verdict, 'not-linearizable', explainResult(result));
  assert.equal(result.counterexample!.blocked.id, history.length - 1, 'the read of a value nobody wrote');
  assert.equal(result.counterexample!.prefix.length, 14, 'every write and read fits before it');
});

test('budget: a violation on one key outranks unknown on another', () => {
  const h = [...pathological()];
  h.push({ id: 1000, process: 9, op: { f: 'get', key: 'y' }, invokeMs: 0, completeMs: 1, outcome: 'ok', result: { value: 'q' } });
  const result = checkHistory(h, { budgetStepsPerKey: 200 });
  assert.equal(result.verdict, 'not-linearizable');
  assert.deepEqual(
    result.perKey.map((r) => r.verdict),
    ['unknown', 'not-linearizable'],
  );
  assert.equal(result.counterexample!.key, 'y');
});

test('performance: a 10k-op history, 10 keys, 10 clients, with timeouts and failures', () => {
  const history = concurrentHistory({ seed: 20240, ops: 10_000, keys: 10, clients: 10, values: 5, infoRate: 0.02, failRate: 0.02 });
  const result = checkHistory(history);
  assert.equal(result.verdict, 'linearizable', explainResult(result));
  assert.equal(result.stats.ops, 10_000);
  assert.equal(result.stats.keys, 10);
  console.log(
    `# checker: ${result.stats.ops} ops, ${result.stats.keys} keys: linearizable in ${result.stats.ms.toFixed(0)} ms, ` +
      `${result.stats.exploredStates} states, ${result.stats.steps} steps`,
  );

  // The same history with one read changed to a value nobody wrote: found, and explained.
  const reads = history.filter((r) => r.outcome === 'ok' && r.op.f === 'get');
  const victim = reads[Math.floor(reads.length / 2)]!;
  const mutated = history.map((r) => (r === victim ? { ...r, result: { value: 'never-written' } } : r));
  const broken = checkHistory(mutated);
  assert.equal(broken.verdict, 'not-linearizable', explainResult(broken));
  assert.equal(broken.counterexample!.key, victim.op.key);
  console.log(`# checker: the mutated history is not linearizable, found in ${broken.stats.ms.toFixed(0)} ms`);
  assert.ok(result.stats.ms < 30_000, 'generous bound: only catches a pathological slowdown');
});
