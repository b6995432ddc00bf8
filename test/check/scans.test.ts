// Scans projected into per-key reads (src/check/scans.ts): what each scan covers, and that the
// checker then catches a stale, phantom or missing answer and passes a correct one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory } from '../../src/check/linearizability.js';
import { explainResult } from '../../src/check/explain.js';
import type { OpRecord } from '../../src/check/history.js';
import { readsOfScans, type ScanObservation } from '../../src/check/scans.js';
import { HistoryBuilder } from './helpers.js';

const scan = (o: Partial<ScanObservation> & Pick<ScanObservation, 'invokeMs' | 'completeMs' | 'entries'>): ScanObservation => ({
  process: 's', prefix: 'k', after: null, limit: 100, more: false, ...o,
});

/** The writes: k1 = a (done by 2), k2 = b (done by 4), k3 never written; m1 = z (another prefix). */
const writes = (): OpRecord[] => new HistoryBuilder().put(1, 'k1', 'a', 0, 2).put(1, 'k2', 'b', 3, 4).get(1, 'k3', null, 0, 1).put(1, 'm1', 'z', 0, 1).ops;

function checked(scans: ScanObservation[]): { verdict: string; reads: OpRecord[]; malformed: string[]; explanation: string } {
  const history = writes();
  const keys = history.map((r) => r.op.key);
  const { reads, malformed } = readsOfScans(scans, keys, 100);
  const result = checkHistory([...history, ...reads]);
  return { verdict: result.verdict, reads, malformed, explanation: explainResult(result) };
}

const readsAsText = (reads: OpRecord[]) => reads.map((r) => `${r.op.key}=${(r.result as { value: string | null }).value}`).sort();

test('a complete scan reads every key of the history under its prefix: returned values, and absence for the rest', () => {
  const c = checked([scan({ invokeMs: 5, completeMs: 6, entries: [['k1', 'a'], ['k2', 'b']] })]);
  assert.deepEqual(readsAsText(c.reads), ['k1=a', 'k2=b', 'k3=null'], 'm1 is outside the prefix');
  assert.equal(c.verdict, 'linearizable', c.explanation);
  assert.deepEqual(c.malformed, []);
});

test('with more, keys past the last one returned are not read; after skips the keys up to it', () => {
  const page1 = checked([scan({ invokeMs: 5, completeMs: 6, entries: [['k1', 'a']], more: true, limit: 1 })]);
  assert.deepEqual(readsAsText(page1.reads), ['k1=a']);
  const page2 = checked([scan({ invokeMs: 5, completeMs: 6, after: 'k1', entries: [['k2', 'b']], more: true, limit: 1 })]);
  assert.deepEqual(readsAsText(page2.reads), ['k2=b']);
  const empty = checked([scan({ invokeMs: 5, completeMs: 6, entries: [], more: true })]);
  assert.deepEqual(empty.reads, [], 'an empty page with more covers nothing');
});

test('the checker bites: a stale value, a phantom value, a missing key, each from a scan', () => {
  // k2 = b was done at 4; a scan from 5 to 6 that does not return it missed a present key.
  const missing = checked([scan({ invokeMs: 5, completeMs: 6, entries: [['k1', 'a']] })]);
  assert.equal(missing.verdict, 'not-linearizable', 'a scan missed k2, written before it began');
  // A scan overlapping k2's write may miss it.
  assert.equal(checked([scan({ invokeMs: 3.5, completeMs: 6, entries: [['k1', 'a']] })]).verdict, 'linearizable');
  const stale = checked([scan({ invokeMs: 5, completeMs: 6, entries: [['k1', 'a'], ['k2', 'old']] })]);
  assert.equal(stale.verdict, 'not-linearizable', 'a value never written to k2');
  const phantom = checked([scan({ invokeMs: 5, completeMs: 6, entries: [['k1', 'a'], ['k2', 'b'], ['k9', 'q']] })]);
  assert.equal(phantom.verdict, 'not-linearizable', 'a key no op wrote');
  assert.ok(phantom.reads.some((r) => r.op.key === 'k9'));
});

test('an answer that breaks its own shape is reported', () => {
  const c = checked([
    scan({ invokeMs: 5, completeMs: 6, entries: [['k2', 'b'], ['k1', 'a']] }),
    scan({ invokeMs: 5, completeMs: 6, entries: [['m1', 'z']] }),
    scan({ invokeMs: 5, completeMs: 6, after: 'k2', entries: [['k1', 'a']] }),
    scan({ invokeMs: 5, completeMs: 6, limit: 1, entries: [['k1', 'a'], ['k2', 'b']] }),
  ]);
  assert.equal(c.malformed.length, 4, c.malformed.join('\n'));
  assert.match(c.malformed[0]!, /not in ascending order/);
  assert.match(c.malformed[1]!, /outside its prefix/);
  assert.match(c.malformed[2]!, /not after "k2"/);
  assert.match(c.malformed[3]!, /over its limit of 1/);
});
