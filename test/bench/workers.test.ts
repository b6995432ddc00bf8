// The load generator split over worker threads (--load-workers): the split covers every lane once
// and adds up, latency counts merge exactly (the same buckets as an HDR histogram), and whole runs
// with two workers count every operation once and verify every acknowledged write.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { startInproc } from '../../src/bench/cluster.js';
import { bucketIndex, LATENCY_US_MAX, LatencyCounts } from '../../src/bench/latency.js';
import { loadWorkersOf, mergeLoad, splitLoad, TimelineMerger, type LoadPartResult } from '../../src/bench/load.js';
import { BENCH_CI, BENCH_DEFAULTS, validateBenchParams, type BenchParams } from '../../src/bench/params.js';
import { runBench, type BenchResult } from '../../src/bench/run.js';
import { encodeGetFrame, encodePutFrame, KvBadRequestError, KvClient } from '../../src/kv/client.js';
import { encodeCommand, encodeQuery } from '../../src/kv/codec.js';
import { encodeRequest, KIND_READ, KIND_WRITE } from '../../src/kv/protocol.js';

const MAIN_JS = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('splitLoad: disjoint contiguous lanes, shares that add up, at least one connection each', () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, clients: 5, inflight: 7, connections: 3, totalOps: 1001, verifyKeysMax: 999, rateOpsPerS: 350 });
  for (const n of [1, 2, 3, 4]) {
    const parts = splitLoad(p, n);
    assert.equal(parts.length, n);
    let lane = 0;
    for (const x of parts) {
      assert.equal(x.laneStart, lane, 'contiguous');
      lane += x.laneCount;
      assert.ok(x.connections >= 1);
    }
    assert.equal(lane, 35, 'every lane once');
    assert.equal(parts.reduce((s, x) => s + x.totalOps, 0), 1001);
    assert.equal(parts.reduce((s, x) => s + x.verifyKeysMax, 0), 999);
    assert.ok(Math.abs(parts.reduce((s, x) => s + x.rateOpsPerS, 0) - 350) < 1e-9);
    assert.equal(parts.reduce((s, x) => s + x.connections, 0), Math.max(3, n));
  }
  assert.equal(loadWorkersOf({ ...p, loadWorkers: 0, readRatio: 1, consistency: 'local' }), 2, 'local reads: 2 by default');
  assert.equal(loadWorkersOf({ ...p, loadWorkers: 0, readRatio: 0 }), 1, 'writes: 1 by default');
  assert.equal(loadWorkersOf({ ...p, loadWorkers: 8, totalOps: 3 }), 3, 'never more than --total');
  assert.equal(loadWorkersOf({ ...p, loadWorkers: 4, mode: 'inproc', via: 'direct' }), 1);
  assert.throws(() => validateBenchParams({ ...p, loadWorkers: 2, mode: 'inproc', via: 'direct' }), /loadWorkers/);
});

test('LatencyCounts: the buckets of an HDR histogram, snapshots that add up exactly', () => {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3 });
  const a = new LatencyCounts();
  const b = new LatencyCounts();
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 50_000; i++) {
    const us = Math.max(1, Math.min(LATENCY_US_MAX, Math.round(Math.exp(rnd() * 22))));
    h.recordValue(us);
    (i % 3 === 0 ? a : b).record(us);
  }
  for (const us of [1, 2047, 2048, 2049, 65_535, 2 ** 31 - 1, 2 ** 31, LATENCY_US_MAX]) assert.equal(bucketIndex(us), (h as unknown as { countsArrayIndex(v: number): number }).countsArrayIndex(us), `index of ${us}`);
  const merged = LatencyCounts.sum([a.snapshot(), b.snapshot()]);
  assert.equal(merged.total, 50_000);
  const m = merged.toHdr();
  for (const p of [50, 90, 99, 99.9, 100]) assert.equal(m.getValueAtPercentile(p), h.getValueAtPercentile(p), `p${p}`);
  assert.equal(merged.maxUs, h.maxValue);
});

test('mergeLoad and TimelineMerger: counts, errors and verification add up; intervals merge by index', () => {
  const part = (ops: number, us: number, verified: number): LoadPartResult => {
    const w = new LatencyCounts();
    for (let i = 0; i < ops; i++) w.record(us);
    return {
      ops,
      writes: ops,
      reads: 0,
      readsFound: 0,
      errors: 1,
      errorsByCode: { SYNOD_KV_UNAVAILABLE: 1 },
      laneWaits: 0,
      elapsedS: 1 + us / 1e6,
      writeLatency: w.snapshot(),
      readLatency: new LatencyCounts().snapshot(),
      verify: { keysChecked: verified, ok: verified, missing: 0, wrong: 0, errors: 0, uncertain: 1, skipped: null },
      loopDelay: { p99Ms: us / 1000, maxMs: (2 * us) / 1000 },
    };
  };
  const t = new TimelineMerger(2);
  const interval = (ops: number, us: number) => {
    const c = new LatencyCounts();
    for (let i = 0; i < ops; i++) c.record(us);
    return c.snapshot();
  };
  t.add(0, { index: 0, tS: 0.25, opsPerSec: 400, latency: interval(100, 1000) });
  t.add(1, { index: 0, tS: 0.26, opsPerSec: 40, latency: interval(10, 9000) });
  t.add(1, { index: 1, tS: 0.5, opsPerSec: 40, latency: interval(10, 9000) }); // part 0 stopped first: not a point
  const points = t.points();
  assert.equal(points.length, 1);
  assert.equal(points[0]!.opsPerSec, 440);
  assert.equal(points[0]!.tS, 0.26);
  assert.equal(points[0]!.p50Ms, 1);
  assert.ok(points[0]!.p99Ms >= 8.99);
  const r = mergeLoad([part(300, 1000, 20), part(100, 5000, 7)], points);
  assert.equal(r.ops, 400);
  assert.deepEqual(r.loopDelay, { p99Ms: 5, maxMs: 10 }); // the worst part's
  assert.equal(r.writes, 400);
  assert.equal(r.errors, 2);
  assert.deepEqual(r.errorsByCode, { SYNOD_KV_UNAVAILABLE: 2 });
  assert.equal(r.elapsedS, 1.005);
  assert.equal(r.latency.p50Ms, 1);
  assert.ok(Math.abs(r.latency.p90Ms - 5) < 0.01);
  assert.equal(r.latency.maxMs, 5);
  assert.equal(r.latency.meanMs, 2);
  assert.deepEqual(r.verify, { keysChecked: 27, ok: 27, missing: 0, wrong: 0, errors: 0, uncertain: 2, skipped: null });
  assert.equal(r.histogram.reduce((s, [, c]) => s + c, 0), 400);
  assert.equal(r.parts, 2);
});

function assertTwoWorkerRun(r: BenchResult, p: Partial<BenchParams>): void {
  assert.equal(r.errors, 0, `no errors: ${JSON.stringify(r.errorsByCode)}`);
  assert.equal((r.params as { loadWorkers: number }).loadWorkers, 2, 'two workers reported');
  assert.equal(r.writes + r.reads, r.ops, 'every operation counted once, as a write or a read');
  if (p.totalOps) assert.ok(r.ops >= p.totalOps, `at least the requested operations (${r.ops})`);
  assert.ok(r.writes > 0 && r.reads > 0);
  assert.equal(r.histogram.reduce((s, [, c]) => s + c, 0), r.ops, 'the histogram holds every operation');
  assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms && r.p99Ms <= r.maxMs);
  assert.equal(r.verify.skipped, null);
  assert.ok(r.verify.keysChecked > 0, 'verification ran');
  assert.equal(r.verify.missing, 0);
  assert.equal(r.verify.wrong, 0);
  assert.equal(r.verify.errors, 0);
  assert.equal(r.verify.ok, r.verify.keysChecked, `every acknowledged write reads back: ${JSON.stringify(r.verify)}`);
}

test('bench --inproc --via binary --load-workers 2: counts add up, timeline merged, every acknowledged write reads back', async () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, ...BENCH_CI, mode: 'inproc', storage: 'memory', via: 'binary', readRatio: 0.3, consistency: 'local', totalOps: 0, durationS: 1, loadWorkers: 2 });
  const r = await runBench(p);
  assertTwoWorkerRun(r, p);
  assert.ok(r.timeline.length >= 2, `timeline merged (${r.timeline.length} points)`);
  const timelineOps = r.timeline.reduce((s, x) => s + x.opsPerSec * 0.25, 0);
  assert.ok(timelineOps > 0 && timelineOps <= r.ops * 1.2, `timeline throughput adds the workers' (${timelineOps} vs ${r.ops})`);
});

test('synod bench --ci --load-workers 2 --json (child processes): results merged, verification passes', { timeout: 60_000 }, () => {
  const out = spawnSync(process.execPath, [MAIN_JS, 'bench', '--ci', '--json', '--load-workers', '2', '--read-ratio', '0.5', '--consistency', 'local'], { encoding: 'utf8', timeout: 45_000 });
  assert.equal(out.status, 0, `exit 0; stderr: ${out.stderr}`);
  const r = JSON.parse(out.stdout.trim()) as BenchResult;
  assertTwoWorkerRun(r, { totalOps: 400 });
  assert.equal(r.processes.length, 4);
});

test('KvClient.putWith/getWith report bad input to the callback, asynchronously', async () => {
  const kv = new KvClient({ endpoints: ['127.0.0.1:1'] });
  try {
    const calls: string[] = [];
    const put = new Promise<unknown>((resolve) => kv.putWith(new Uint8Array(0), new Uint8Array(1), (e) => (calls.push('put'), resolve(e))));
    const get = new Promise<unknown>((resolve) => kv.getWith(new Uint8Array(0), 'local', (e) => (calls.push('get'), resolve(e))));
    assert.deepEqual(calls, [], 'not called from within putWith/getWith');
    assert.ok((await put) instanceof KvBadRequestError);
    assert.ok((await get) instanceof KvBadRequestError);
  } finally {
    kv.close();
  }
});

test('encodePutFrame (putWith\'s frame, written into the socket buffer) at any offset: exactly encodeRequest of encodeCommand, nothing else touched', () => {
  // Key and value lengths on both sides of the short-copy threshold (24 bytes).
  for (const keyBytes of [1, 16, 23, 24, 25, 300]) {
    for (const valueBytes of [0, 1, 24, 25, 64, 5000]) {
      const key = Uint8Array.from({ length: keyBytes }, (_, i) => (i * 7 + keyBytes) & 0xff);
      const value = Uint8Array.from({ length: valueBytes }, (_, i) => (i * 13 + 5) & 0xff);
      for (const [requestId, clientId, seq, floor] of [
        [1, 1, 1, 1],
        [0xfffffffe, 123456789, 2 ** 40 + 3, 2 ** 40],
        [0xffffffff, 2 ** 53 - 1, 2 ** 53 - 2, 0],
      ] as const) {
        const expected = Buffer.from(encodeRequest({ kind: KIND_WRITE, requestId, clientId, seq, floor, timeoutMs: 5000, command: encodeCommand({ op: 'put', key, value }) }));
        for (const at of [0, 3, 101]) {
          const out = new Uint8Array(at + expected.length + 7).fill(0xee);
          encodePutFrame(out, at, requestId, clientId, seq, floor, 5000, key, value);
          assert.deepEqual(Buffer.from(out.subarray(at, at + expected.length)), expected, `key ${keyBytes} B, value ${valueBytes} B, at ${at}`);
          assert.ok(out.subarray(0, at).every((b) => b === 0xee) && out.subarray(at + expected.length).every((b) => b === 0xee), 'nothing written outside the frame');
        }
      }
    }
  }
});

test('encodeGetFrame (getWith\'s frame, written into the socket buffer) at any offset: exactly encodeRequest of encodeQuery, nothing else touched', () => {
  for (const keyBytes of [1, 16, 23, 24, 25, 300]) {
    const key = Uint8Array.from({ length: keyBytes }, (_, i) => (i * 7 + keyBytes) & 0xff);
    for (const requestId of [1, 0xfffffffe, 0xffffffff]) {
      for (const consistency of ['linearizable', 'lease', 'local'] as const) {
        for (const maxWaitMs of [0, 100, 5000, 0xffffffff]) {
          const expected = Buffer.from(encodeRequest({ kind: KIND_READ, requestId, consistency, maxWaitMs, query: encodeQuery({ op: 'get', key }) }));
          for (const at of [0, 3, 101]) {
            const out = new Uint8Array(at + expected.length + 7).fill(0xee);
            encodeGetFrame(out, at, requestId, consistency, key, maxWaitMs);
            assert.deepEqual(Buffer.from(out.subarray(at, at + expected.length)), expected, `key ${keyBytes} B, ${consistency}, maxWaitMs ${maxWaitMs}, at ${at}`);
            assert.ok(out.subarray(0, at).every((b) => b === 0xee) && out.subarray(at + expected.length).every((b) => b === 0xee), 'nothing written outside the frame');
          }
        }
      }
    }
  }
});

test('KvClient.putWith/getWith against a cluster: first try, NOT_LEADER retries through the loop, values read back', { timeout: 60_000 }, async () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, ...BENCH_CI, mode: 'inproc', storage: 'memory', via: 'binary' });
  const cluster = await startInproc(p);
  // Followers first: the first tries are answered NOT_LEADER and continue in the retry loops.
  const kv = new KvClient({ endpoints: [...cluster.endpoints].reverse(), timeoutMs: 20_000 });
  const put = (k: string, v: string) => new Promise<Error | null>((resolve) => kv.putWith(new TextEncoder().encode(k), new TextEncoder().encode(v), resolve));
  const get = (k: string, c: 'linearizable' | 'local') =>
    new Promise<string | null>((resolve, reject) => kv.getWith(new TextEncoder().encode(k), c, (e, v) => (e ? reject(e) : resolve(v === null ? null : new TextDecoder().decode(v)))));
  try {
    assert.equal(await get('absent', 'linearizable'), null);
    assert.equal(await put('a', '1'), null); // no session yet: registers, through the loop
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => put(`k${i}`, `v${i}`))); // first tries on the open connection
    assert.deepEqual(many, many.map(() => null));
    assert.ok(kv.clientId > 0);
    assert.equal(await get('a', 'linearizable'), '1');
    for (let i = 0; i < 200; i += 37) assert.equal(await get(`k${i}`, 'linearizable'), `v${i}`);
    assert.equal(await put('a', '2'), null);
    assert.equal(await new Promise((resolve, reject) => kv.get('a').then((v) => resolve(new TextDecoder().decode(v!)), reject)), '2', 'get() sees putWith()');
  } finally {
    kv.close();
    await cluster.close();
  }
});
