// Hand-written histories with known verdicts: "paper" tests, one rule each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory, checkKey, type CheckResult, type KeyBudget } from '../../src/check/linearizability.js';
import { explainResult } from '../../src/check/explain.js';
import { HistoryError, type OpRecord } from '../../src/check/history.js';
import { HistoryBuilder, bruteForceLinearizable } from './helpers.js';

function linearizable(ops: readonly OpRecord[], message = ''): CheckResult {
  const result = checkHistory(ops);
  assert.equal(result.verdict, 'linearizable', `${message}\n${explainResult(result)}`);
  assert.equal(result.ok, true);
  assert.equal(bruteForceLinearizable(ops), true, 'the reference checker agrees');
  return result;
}

function violation(ops: readonly OpRecord[], message = ''): CheckResult {
  const result = checkHistory(ops);
  assert.equal(result.verdict, 'not-linearizable', `${message}\n${explainResult(result)}`);
  assert.equal(result.ok, false);
  assert.ok(result.counterexample !== undefined, 'a violation comes with a counterexample');
  assert.equal(bruteForceLinearizable(ops), false, 'the reference checker agrees');
  return result;
}

// ---------------------------------------------------------------- sequential

test('sequential: empty history and a history of only failed ops are linearizable', () => {
  linearizable([]);
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 1, 'fail').get(1, 'x', 'a', 2, 3, 'fail').ops);
});

test('sequential: put, get, delete, get absent (404), cas from absent', () => {
  const h = new HistoryBuilder()
    .get(1, 'x', null, 0, 1)
    .put(1, 'x', 'a', 2, 3)
    .get(1, 'x', 'a', 4, 5)
    .del(1, 'x', 6, 7)
    .get(1, 'x', null, 8, 9)
    .cas(1, 'x', null, 'b', 10, 11, true)
    .get(1, 'x', 'b', 12, 13)
    .cas(1, 'x', 'b', 'c', 14, 15, true)
    .get(1, 'x', 'c', 16, 17);
  const result = linearizable(h.ops);
  assert.equal(result.stats.ops, 9);
  assert.equal(result.stats.keys, 1);
});

test('sequential: a stale read is caught even on one client', () => {
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 1).put(1, 'x', 'b', 2, 3).get(1, 'x', 'a', 4, 5).ops);
});

test('sequential: keys are independent registers', () => {
  const h = new HistoryBuilder().put(1, 'x', 'a', 0, 1).put(1, 'y', 'b', 2, 3).get(1, 'x', 'a', 4, 5).get(1, 'y', 'b', 6, 7);
  const result = linearizable(h.ops);
  assert.deepEqual(
    result.perKey.map((r) => [r.key, r.verdict, r.okOps]),
    [
      ['x', 'linearizable', 2],
      ['y', 'linearizable', 2],
    ],
  );
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 1).get(1, 'y', 'a', 2, 3).ops, 'a value of x is not seen on y');
});

test('initial values: keys listed in options.initial start present', () => {
  const h = new HistoryBuilder().get(1, 'x', 'seed', 0, 1).get(1, 'y', null, 0, 1);
  assert.equal(checkHistory(h.ops, { initial: { x: 'seed' } }).verdict, 'linearizable');
  assert.equal(checkHistory(h.ops).verdict, 'not-linearizable');
});

// ---------------------------------------------------------------- concurrent, linearizable

test('concurrent: a read overlapping a write may see either value', () => {
  const h = new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 40).get(3, 'x', 'a', 25, 30).get(4, 'x', 'b', 26, 35);
  linearizable(h.ops);
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 40).get(3, 'x', 'b', 25, 30).ops);
});

test('concurrent: overlapping writes may be ordered either way, reads decide', () => {
  const h = new HistoryBuilder()
    .put(1, 'x', 'a', 0, 50)
    .put(2, 'x', 'b', 0, 50)
    .get(3, 'x', 'b', 10, 20) // b first ...
    .get(3, 'x', 'a', 30, 40) // ... then a
    .get(3, 'x', 'a', 60, 70);
  linearizable(h.ops);
});

test('concurrent: touching intervals (complete == invoke) count as concurrent', () => {
  // Millisecond clocks are coarse: the read may have been applied before the write's response.
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 10, 20).get(3, 'x', 'a', 20, 30).ops);
});

test('concurrent: cas chain with racing clients, losers see 409', () => {
  const h = new HistoryBuilder()
    .put(0, 'x', '0', 0, 1)
    .cas(1, 'x', '0', '1', 2, 20, true)
    .cas(2, 'x', '0', '2', 3, 21, false, '1')
    .cas(3, 'x', '1', '3', 4, 22, true)
    .get(4, 'x', '3', 30, 31);
  linearizable(h.ops);
});

// ---------------------------------------------------------------- classic violations

test('violation: stale read after a completed write', () => {
  const result = violation(new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 30).get(3, 'x', 'a', 40, 50).ops);
  const c = result.counterexample!;
  assert.equal(c.key, 'x');
  assert.equal(c.blocked.id, 2, 'the stale read is the op that could not be placed');
  assert.deepEqual(
    c.prefix.map((s) => [s.op.id, s.stateAfter]),
    [
      [0, 'a'],
      [1, 'b'],
    ],
  );
  assert.equal(c.stateAfterPrefix, 'b');
  assert.deepEqual(
    c.ops.map((op) => op.id),
    [0, 1, 2],
  );
  const text = explainResult(result);
  assert.match(text, /not-linearizable \(FAIL\)/);
  assert.match(text, /could not place: #2 p3 get\("x"\) ok -> "a" \[40\.\.50\]/);
  assert.match(text, /value after the prefix: "b"/);
});

test('violation: a stale read of absence after a completed write', () => {
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 10).get(2, 'x', null, 20, 30).ops);
});

test('violation: a read sees the new value, a later read the older one', () => {
  const h = new HistoryBuilder()
    .put(1, 'x', 'a', 0, 10)
    .put(2, 'x', 'b', 5, 100) // long write, concurrent with both reads
    .get(3, 'x', 'b', 20, 25)
    .get(4, 'x', 'a', 30, 35);
  violation(h.ops);
  // Either read alone is fine: it is their order that breaks it.
  linearizable(h.ops.filter((op) => op.id !== 2));
  linearizable(h.ops.filter((op) => op.id !== 3));
});

test('violation: two cas succeed from the same expected value', () => {
  const h = new HistoryBuilder().put(0, 'x', '0', 0, 1).cas(1, 'x', '0', '1', 2, 20, true).cas(2, 'x', '0', '2', 3, 21, true);
  const result = violation(h.ops);
  assert.ok([1, 2].includes(result.counterexample!.blocked.id));
});

test('violation: a lost acknowledged write', () => {
  const h = new HistoryBuilder()
    .put(1, 'x', 'a', 0, 10)
    .put(2, 'x', 'b', 20, 30) // acknowledged ...
    .get(3, 'x', 'a', 40, 50) // ... yet gone
    .get(3, 'x', 'a', 60, 70);
  violation(h.ops);
  // Lost into absence: a write acknowledged, then the key reads as never written.
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 10).get(2, 'x', null, 20, 30).get(2, 'x', null, 40, 50).ops);
});

test('violation: reading a value nobody wrote', () => {
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 10).get(2, 'x', 'zzz', 5, 15).ops);
});

test('violation: a failure on one key fails the whole history, other keys still reported', () => {
  const h = new HistoryBuilder().put(1, 'x', 'a', 0, 10).get(1, 'y', 'a', 20, 30).put(1, 'z', 'c', 0, 10);
  const result = violation(h.ops);
  assert.deepEqual(
    result.perKey.map((r) => [r.key, r.verdict]),
    [
      ['x', 'linearizable'],
      ['y', 'not-linearizable'],
      ['z', 'linearizable'],
    ],
  );
  assert.equal(result.counterexample!.key, 'y');
});

// ---------------------------------------------------------------- indeterminate ops

test('info: a read observing an info write forces it to be taken', () => {
  const h = new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 30, 'info').get(3, 'x', 'b', 40, 50);
  const result = linearizable(h.ops);
  assert.equal(result.perKey[0]!.infoOps, 1);
  // The same read with the write failed (503) is a violation: failed ops never happen.
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 30, 'fail').get(3, 'x', 'b', 40, 50).ops);
});

test('info: an info write that nobody observed may be dropped', () => {
  const h = new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(2, 'x', 'b', 20, 30, 'info').get(3, 'x', 'a', 40, 50).get(3, 'x', 'a', 60, 70);
  linearizable(h.ops);
});

test('info: may take effect long after its timeout, but never before its invocation', () => {
  // The client gave up at 5 (504); the write committed later, between the two reads.
  const late = new HistoryBuilder().put(1, 'x', 'b', 0, 5, 'info').put(2, 'x', 'a', 10, 20).get(3, 'x', 'a', 30, 40).get(3, 'x', 'b', 50, 60);
  linearizable(late.ops);
  // No completion at all (the connection dropped) behaves the same.
  const dropped = new HistoryBuilder().put(1, 'x', 'b', 0, null, 'info').put(2, 'x', 'a', 10, 20).get(3, 'x', 'a', 30, 40).get(3, 'x', 'b', 50, 60);
  linearizable(dropped.ops);
  // Seen before it was invoked: impossible.
  violation(new HistoryBuilder().get(3, 'x', 'b', 0, 5).put(1, 'x', 'b', 10, null, 'info').ops);
});

test('info: taken at most once', () => {
  const h = new HistoryBuilder()
    .put(1, 'x', 'b', 0, null, 'info')
    .get(3, 'x', 'b', 10, 20)
    .put(2, 'x', 'a', 30, 40)
    .get(3, 'x', 'b', 50, 60); // b would need to be written a second time
  violation(h.ops);
});

test('info: an info cas swaps only from its expected value', () => {
  const base = () => new HistoryBuilder().put(1, 'x', 'a', 0, 10).cas(2, 'x', 'a', 'b', 20, 30, 'info');
  linearizable(base().get(3, 'x', 'b', 40, 50).ops, 'the cas took effect');
  linearizable(base().get(3, 'x', 'a', 40, 50).ops, 'the cas did not take effect');
  const wrongExpected = new HistoryBuilder().put(1, 'x', 'a', 0, 10).cas(2, 'x', 'z', 'b', 20, 30, 'info').get(3, 'x', 'b', 40, 50);
  violation(wrongExpected.ops, 'the cas could not have swapped');
});

test('info: an info get constrains nothing; an info delete may or may not have happened', () => {
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 10).get(2, 'x', 'zzz', 20, 30, 'info').ops);
  const h = () => new HistoryBuilder().put(1, 'x', 'a', 0, 10).del(2, 'x', 20, 30, 'info');
  linearizable(h().get(3, 'x', null, 40, 50).ops);
  linearizable(h().get(3, 'x', 'a', 40, 50).ops);
  violation(h().get(3, 'x', null, 40, 50).get(3, 'x', 'a', 60, 70).ops);
});

test('info: many pending info writes do not blow up the search for a violation', () => {
  // 30 info writes of distinct values, never observed, then a stale read: the search must
  // rule out every subset of them; inclusion pruning keeps that linear rather than 2^30.
  const h = new HistoryBuilder().put(0, 'x', 'a', 0, 1);
  for (let i = 0; i < 30; i++) h.put(i + 1, 'x', `w${i}`, 2 + i, null, 'info');
  for (let i = 0; i < 40; i++) h.get(100, 'x', 'a', 100 + 2 * i, 101 + 2 * i);
  h.put(0, 'x', 'c', 200, 201).get(100, 'x', 'a', 300, 301);
  const result = checkHistory(h.ops, { budgetMsPerKey: 5_000 });
  assert.equal(result.verdict, 'not-linearizable', explainResult(result));
  assert.ok(result.stats.exploredStates < 100_000, `explored ${result.stats.exploredStates}`);
});

// ---------------------------------------------------------------- 404 reads, 409 cas, fail ops

test('404: a GET of a missing key is a successful read of absence', () => {
  linearizable(new HistoryBuilder().get(1, 'x', null, 0, 1).ops);
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 1).del(1, 'x', 2, 3).put(1, 'x', 'b', 4, 5).get(2, 'x', null, 6, 7).ops);
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 1).del(1, 'x', 2, 3).get(2, 'x', null, 4, 5).ops);
});

test('delete: a reported "existed" flag is checked', () => {
  linearizable(new HistoryBuilder().put(1, 'x', 'a', 0, 1).del(1, 'x', 2, 3, 'ok', true).del(1, 'x', 4, 5, 'ok', false).ops);
  violation(new HistoryBuilder().del(1, 'x', 0, 1, 'ok', true).ops);
  violation(new HistoryBuilder().put(1, 'x', 'a', 0, 1).del(1, 'x', 2, 3, 'ok', false).ops);
});

test('409: a cas that did not swap must have seen a value other than expected', () => {
  const h = () => new HistoryBuilder().put(1, 'x', 'a', 0, 10);
  linearizable(h().cas(2, 'x', 'z', 'b', 20, 30, false).get(3, 'x', 'a', 40, 50).ops);
  violation(h().cas(2, 'x', 'a', 'b', 20, 30, false).ops, 'the value was the expected one: it should have swapped');
  linearizable(h().cas(2, 'x', null, 'b', 20, 30, false).ops, '409 on cas-from-absent: the key exists');
  violation(new HistoryBuilder().cas(2, 'x', null, 'b', 20, 30, false).ops, 'the key was absent: it should have swapped');
});

test('409: the value a 409 reports must be the current value', () => {
  const h = () => new HistoryBuilder().put(1, 'x', 'a', 0, 10);
  linearizable(h().cas(2, 'x', 'z', 'b', 20, 30, false, 'a').ops);
  violation(h().cas(2, 'x', 'z', 'b', 20, 30, false, 'q').ops, 'it reports a value never written');
  violation(h().cas(2, 'x', 'z', 'b', 20, 30, false, null).ops, 'it reports absence, but a was written');
  linearizable(new HistoryBuilder().cas(2, 'x', 'z', 'b', 0, 1, false, null).ops, 'absent really');
  // Concurrent with a write: the 409 may report either side.
  const racing = new HistoryBuilder().put(1, 'x', 'a', 0, 10).put(1, 'x', 'b', 20, 40).cas(2, 'x', 'z', 'c', 25, 30, false, 'a');
  linearizable(racing.ops);
});

test('fail: failed ops are dropped whatever they claim', () => {
  const h = new HistoryBuilder()
    .put(1, 'x', 'a', 0, 10)
    .put(2, 'x', 'b', 20, 30, 'fail')
    .cas(2, 'x', 'a', 'c', 20, 30, 'fail')
    .del(2, 'x', 20, 30, 'fail')
    .get(3, 'x', 'a', 40, 50);
  const result = linearizable(h.ops);
  assert.equal(result.perKey[0]!.droppedOps, 3);
  assert.equal(result.perKey[0]!.okOps, 2);
});

// ---------------------------------------------------------------- checkKey (public, for callers that shard by key)

test('checkKey: records of another key are refused, not merged into one register', () => {
  // A sharding mistake: x's sub-history (a read of a value nobody wrote to x) plus a write to y.
  // Taken as one register, the write to y "explains" the read.
  const budget: KeyBudget = { ms: 10_000, steps: 1_000_000, cacheBytes: 1 << 20, nowMs: () => performance.now() };
  const ops = new HistoryBuilder().put(1, 'y', 'a', 0, 10).get(2, 'x', 'a', 20, 30).ops;
  assert.throws(() => checkKey('x', ops, null, budget), (e: unknown) => {
    assert.ok(e instanceof HistoryError, String(e));
    assert.equal(e.code, 'SYNOD_HISTORY_BAD_RECORD');
    assert.equal(e.opId, 0);
    assert.match(e.message, /key "y" passed to checkKey\("x"\)/);
    return true;
  });
  assert.equal(checkKey('x', ops.slice(1), null, budget).verdict, 'not-linearizable');
});

test('checkKey: a malformed record is a HistoryError, as with checkHistory', () => {
  const budget: KeyBudget = { ms: 10_000, steps: 1_000_000, cacheBytes: 1 << 20, nowMs: () => performance.now() };
  const noResult = { id: 7, process: 1, op: { f: 'get', key: 'x' }, invokeMs: 0, completeMs: 1, outcome: 'ok' } as OpRecord;
  assert.throws(() => checkKey('x', [noResult], null, budget), { name: 'HistoryError', code: 'SYNOD_HISTORY_BAD_RECORD', message: /ok get has no result.value \(op 7\)/ });
});
