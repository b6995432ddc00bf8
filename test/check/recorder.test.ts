// Recorder, HTTP/error outcome mapping, JSON files and history validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recorder } from '../../src/check/recorder.js';
import {
  HISTORY_FORMAT_VERSION,
  HistoryError,
  type HistoryErrorCode,
  type OpRecord,
  classifyError,
  classifyHttp,
  historyFromJSON,
  historyToJSON,
  validateHistory,
} from '../../src/check/history.js';
import { checkHistory } from '../../src/check/linearizability.js';
import { explainResult } from '../../src/check/explain.js';
import { concurrentHistory } from './helpers.js';

function assertHistoryError(fn: () => unknown, code: HistoryErrorCode): void {
  assert.throws(fn, (error: unknown) => error instanceof HistoryError && error.code === code);
}

/** A clock the test moves by hand. */
function manualClock(): { nowMs: () => number; set: (ms: number) => void } {
  let now = 0;
  return { nowMs: () => now, set: (ms) => (now = ms) };
}

test('recorder: invoke and settle build the records, with ids in invocation order', () => {
  const clock = manualClock();
  const recorder = new Recorder({ nowMs: clock.nowMs });
  const put = recorder.invoke('c1', { f: 'put', key: 'x', value: 'a' });
  clock.set(5);
  const get = recorder.invoke('c2', { f: 'get', key: 'x' });
  const cas = recorder.invoke('c3', { f: 'cas', key: 'x', expected: 'z', value: 'b' });
  const del = recorder.invoke('c4', { f: 'delete', key: 'x' });
  clock.set(10);
  put.ok();
  get.ok('a');
  cas.ok({ swapped: false, current: 'a' });
  del.info();
  const lost = recorder.invoke('c5', { f: 'put', key: 'x', value: 'c' });
  assert.deepEqual(recorder.pending(), [lost.id]);
  const history = recorder.history();
  assert.deepEqual(
    history.map((r) => [r.id, r.process, r.invokeMs, r.completeMs, r.outcome, r.result]),
    [
      [0, 'c1', 0, 10, 'ok', undefined],
      [1, 'c2', 5, 10, 'ok', { value: 'a' }],
      [2, 'c3', 5, 10, 'ok', { swapped: false, current: 'a' }],
      [3, 'c4', 5, 10, 'info', undefined],
      [4, 'c5', 10, null, 'info', undefined], // never settled: indeterminate, no completion
    ],
  );
  assert.equal(checkHistory(history).verdict, 'linearizable');
});

test('recorder: ok shorthands (string/null for get, boolean for cas and delete)', () => {
  const recorder = new Recorder({ nowMs: () => 1 });
  recorder.invoke(1, { f: 'get', key: 'x' }).ok(null);
  recorder.invoke(1, { f: 'cas', key: 'x', expected: null, value: 'a' }).ok(true);
  recorder.invoke(1, { f: 'delete', key: 'x' }).ok(true);
  assert.deepEqual(
    recorder.history().map((r) => r.result),
    [{ value: null }, { swapped: true }, { existed: true }],
  );
});

test('recorder: settling twice is an error; a bad settlement is rejected and leaves it pending', () => {
  const recorder = new Recorder({ nowMs: () => 1 });
  const handle = recorder.invoke(1, { f: 'put', key: 'x', value: 'a' });
  handle.ok();
  assertHistoryError(() => handle.fail(), 'SYNOD_HISTORY_ALREADY_SETTLED');
  const get = recorder.invoke(1, { f: 'get', key: 'x' });
  assertHistoryError(() => get.ok(), 'SYNOD_HISTORY_BAD_RECORD'); // an ok get must say what it read
  assert.deepEqual(recorder.pending(), [get.id]);
  get.ok('a');
  assert.deepEqual(recorder.pending(), []);
  const full = new Recorder({ opsMax: 1 });
  full.invoke(1, { f: 'get', key: 'x' });
  assertHistoryError(() => full.invoke(1, { f: 'get', key: 'x' }), 'SYNOD_HISTORY_BAD_RECORD');
});

test('recorder: http() and error() settle through the outcome mapping', () => {
  const recorder = new Recorder({ nowMs: () => 1 });
  recorder.invoke(1, { f: 'get', key: 'x' }).http(404);
  recorder.invoke(1, { f: 'cas', key: 'x', expected: 'a', value: 'b' }).http(409, { current: null });
  recorder.invoke(1, { f: 'put', key: 'x', value: 'c' }).http(503);
  recorder.invoke(1, { f: 'put', key: 'x', value: 'd' }).http(504);
  recorder.invoke(1, { f: 'put', key: 'x', value: 'e' }).error(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
  recorder.invoke(1, { f: 'put', key: 'x', value: 'f' }).error(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
  assert.deepEqual(
    recorder.history().map((r) => [r.outcome, r.result]),
    [
      ['ok', { value: null }],
      ['ok', { swapped: false, current: null }],
      ['fail', undefined],
      ['info', undefined],
      ['fail', undefined],
      ['info', undefined],
    ],
  );
});

test('classifyHttp: the outcome table of docs/checker.md', () => {
  const get = { f: 'get', key: 'x' } as const;
  const put = { f: 'put', key: 'x', value: 'v' } as const;
  const del = { f: 'delete', key: 'x' } as const;
  const cas = { f: 'cas', key: 'x', expected: null, value: 'v' } as const;
  assert.deepEqual(classifyHttp(get, 200, { value: 'v' }), { outcome: 'ok', result: { value: 'v' } });
  assert.deepEqual(classifyHttp(get, 404), { outcome: 'ok', result: { value: null } });
  assert.deepEqual(classifyHttp(put, 204), { outcome: 'ok' });
  assert.deepEqual(classifyHttp(del, 200), { outcome: 'ok' });
  assert.deepEqual(classifyHttp(del, 200, { existed: false }), { outcome: 'ok', result: { existed: false } });
  assert.deepEqual(classifyHttp(del, 404), { outcome: 'info' }, 'the KV API never answers DELETE with 404');
  assert.deepEqual(classifyHttp(cas, 200), { outcome: 'ok', result: { swapped: true } });
  assert.deepEqual(classifyHttp(cas, 409), { outcome: 'ok', result: { swapped: false } });
  assert.deepEqual(classifyHttp(cas, 409, { value: 'w' }), { outcome: 'ok', result: { swapped: false, current: 'w' } });
  for (const op of [get, put, del, cas]) {
    assert.deepEqual(classifyHttp(op, 503), { outcome: 'fail' }, 'never proposed');
    for (const status of [504, 500, 502, 400, 429]) assert.deepEqual(classifyHttp(op, status), { outcome: 'info' }, `${status}`);
  }
  assert.deepEqual(classifyHttp(put, 404), { outcome: 'info' }, 'an unexpected 404 on a put proves nothing');
  assert.deepEqual(classifyHttp(put, 409), { outcome: 'info' });
  assertHistoryError(() => classifyHttp(get, 200, {}), 'SYNOD_HISTORY_BAD_RECORD');
  assert.deepEqual(classifyError(Object.assign(new Error(), { code: 'ECONNREFUSED' })), { outcome: 'fail' });
  for (const code of ['ETIMEDOUT', 'ECONNRESET', 'EPIPE', undefined]) {
    assert.deepEqual(classifyError(Object.assign(new Error(), { code })), { outcome: 'info' });
  }
  assert.deepEqual(classifyError('not an error'), { outcome: 'info' });
});

test('json: a history round-trips through a file and checks the same', () => {
  const history = concurrentHistory({ seed: 3, ops: 500, keys: 3, clients: 5, values: 4, infoRate: 0.1, failRate: 0.1 });
  const text = historyToJSON(history);
  assert.match(text, /^\{"format":"synod-kv-history","version":1,"ops":\[\n/);
  const loaded = historyFromJSON(text);
  assert.deepEqual(loaded, history);
  assert.equal(checkHistory(loaded).verdict, checkHistory(history).verdict);
  assert.deepEqual(historyFromJSON(historyToJSON([])), []);
});

test('json: wrong format, version or records are rejected with codes', () => {
  assertHistoryError(() => historyFromJSON('{"format":"other","version":1,"ops":[]}'), 'SYNOD_HISTORY_BAD_FORMAT');
  assertHistoryError(() => historyFromJSON('null'), 'SYNOD_HISTORY_BAD_FORMAT');
  assertHistoryError(
    () => historyFromJSON(`{"format":"synod-kv-history","version":${HISTORY_FORMAT_VERSION + 1},"ops":[]}`),
    'SYNOD_HISTORY_BAD_FORMAT',
  );
  assertHistoryError(() => historyFromJSON('{"format":"synod-kv-history","version":1,"ops":{}}'), 'SYNOD_HISTORY_BAD_FORMAT');
  assertHistoryError(
    () => historyFromJSON('{"format":"synod-kv-history","version":1,"ops":[{"id":0,"process":1,"op":{"f":"get"}}]}'),
    'SYNOD_HISTORY_BAD_RECORD',
  );
  assert.throws(() => historyFromJSON('{'), SyntaxError);
});

test('validation: malformed records are rejected before checking', () => {
  const good: OpRecord = { id: 0, process: 1, op: { f: 'put', key: 'x', value: 'a' }, invokeMs: 0, completeMs: 1, outcome: 'ok' };
  const cases: [Partial<OpRecord> & Record<string, unknown>, HistoryErrorCode][] = [
    [{ id: -1 }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ id: 1.5 }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ process: {} as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'incr', key: 'x' } as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'put', key: 'x', value: 3 } as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'cas', key: 'x', expected: 1, value: 'b' } as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ outcome: 'maybe' as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ invokeMs: Number.NaN }, 'SYNOD_HISTORY_BAD_TIME'],
    [{ completeMs: -1 }, 'SYNOD_HISTORY_BAD_TIME'],
    [{ completeMs: null }, 'SYNOD_HISTORY_BAD_TIME'], // an ok op was heard back from
    [{ completeMs: Number.POSITIVE_INFINITY }, 'SYNOD_HISTORY_BAD_TIME'],
    [{ outcome: 'fail', result: { value: 'a' } }, 'SYNOD_HISTORY_BAD_RECORD'], // nothing it says counts
    [{ op: { f: 'get', key: 'x' } }, 'SYNOD_HISTORY_BAD_RECORD'], // ok get without a value
    [{ op: { f: 'get', key: 'x' }, result: { value: 5 } as never }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'cas', key: 'x', expected: null, value: 'b' } }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'cas', key: 'x', expected: null, value: 'b' }, result: { swapped: true, current: 'a' } }, 'SYNOD_HISTORY_BAD_RECORD'],
    [{ op: { f: 'delete', key: 'x' }, result: { existed: 'yes' } as never }, 'SYNOD_HISTORY_BAD_RECORD'],
  ];
  for (const [patch, code] of cases) {
    assertHistoryError(() => checkHistory([{ ...good, ...patch } as OpRecord]), code);
  }
  assertHistoryError(() => validateHistory([good, good]), 'SYNOD_HISTORY_DUPLICATE_ID');
  validateHistory([good, { ...good, id: 1, outcome: 'info', completeMs: null }]);
});

test('explain: a linearizable result is one line', () => {
  const result = checkHistory([
    { id: 0, process: 1, op: { f: 'put', key: 'x', value: 'a' }, invokeMs: 0, completeMs: 1, outcome: 'ok' },
  ]);
  const text = explainResult(result);
  assert.match(text, /^linearizable: 1 ops over 1 keys/);
  assert.equal(text.split('\n').length, 1);
});
