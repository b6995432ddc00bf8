// The benchmark's CI setting (STYLE.md: benchmarks never rot): a few hundred operations through
// both modes, asserting the results are correct — every acknowledged write reads back, no errors,
// the --json shape — never the speed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_CI, BENCH_DEFAULTS, validateBenchParams, type BenchParams } from '../../src/bench/params.js';
import { htmlReport } from '../../src/bench/report.js';
import { runBench, type BenchResult } from '../../src/bench/run.js';

const MAIN_JS = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const EVENTS_JS = fileURLToPath(new URL('../../../scripts/bench-events.mjs', import.meta.url));
const ALLOC_JS = fileURLToPath(new URL('../../../scripts/bench-alloc.mjs', import.meta.url));
const GC_JS = fileURLToPath(new URL('../../../scripts/bench-gc.mjs', import.meta.url));

function assertShape(r: BenchResult, p: Partial<BenchParams>): void {
  for (const k of ['opsPerSec', 'p50Ms', 'p99Ms', 'p999Ms', 'errors'] as const) assert.equal(typeof r[k], 'number', `${k} is a number`);
  assert.equal(r.errors, 0, `no errors: ${JSON.stringify(r.errorsByCode)}`);
  assert.ok(r.ops >= (p.totalOps ?? 1), `at least the requested operations (${r.ops})`);
  assert.ok(r.opsPerSec > 0);
  assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms && r.p99Ms <= r.p999Ms, 'quantiles ordered');
  for (const [k, v] of Object.entries(p)) if (k !== 'etcdEndpoints') assert.deepEqual((r.params as Record<string, unknown>)[k], v, `params.${k} reported`);
  assert.equal(r.verify.skipped, null);
  assert.ok(r.verify.keysChecked > 0, 'some keys were verified');
  assert.equal(r.verify.ok, r.verify.keysChecked, `every acknowledged write reads back: ${JSON.stringify(r.verify)}`);
  assert.ok(r.processes.length >= 1 && r.processes.every((x) => x.cpuS >= 0));
}

test('bench --inproc (direct, memory log): every acknowledged write reads back, reads and stage timings', async () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, ...BENCH_CI, mode: 'inproc', storage: 'memory', readRatio: 0.3, trace: true });
  const r = await runBench(p);
  assertShape(r, { mode: 'inproc', totalOps: p.totalOps, clients: p.clients, inflight: p.inflight, valueBytes: 64, readRatio: 0.3 });
  assert.ok(r.reads > 0 && r.writes > 0);
  assert.ok(r.storage && r.storage.replicas.length === 3);
  assert.ok(r.batches && r.batches.commandsPerSlot >= 1);
  assert.ok(r.trace, `stage timings present (${r.traceError})`);
  assert.ok(r.trace.stages.server.count > 0 && r.trace.stages.persist.count > 0 && r.trace.stages.apply.count > 0);
  const html = htmlReport(r);
  assert.match(html, /<svg/);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3)/, 'no scripts or external assets');
});

test('bench --inproc --via binary (load in a worker thread, KvClient over loopback)', async () => {
  const p = validateBenchParams({ ...BENCH_DEFAULTS, ...BENCH_CI, mode: 'inproc', storage: 'memory', via: 'binary', readRatio: 0.2, consistency: 'lease' });
  const r = await runBench(p);
  assertShape(r, { via: 'binary', consistency: 'lease' });
});

test('synod bench --ci --json (3 child processes, file log with fdatasync): the JSON shape', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-test-'));
  const html = join(dir, 'report.html');
  try {
    // With scripts/bench-events.mjs preloaded into the replicas (it logs what they do, by wall clock),
    // and scripts/bench-alloc.mjs into them and the bench process (bytes allocated, sampled briefly
    // here), and V8's GC trace in the replicas' kept logs for scripts/bench-gc.mjs.
    const events = join(dir, 'events');
    const alloc = join(dir, 'alloc');
    const kept = join(dir, 'logs');
    mkdirSync(events);
    mkdirSync(alloc);
    const env = {
      ...process.env,
      SYNOD_BENCH_EVENTS_DIR: events,
      SYNOD_CHILD_NODE_ARGS: `--import=${EVENTS_JS} --import=${ALLOC_JS} --trace-gc-nvp`,
      SYNOD_BENCH_ALLOC_DIR: alloc,
      SYNOD_BENCH_ALLOC_AFTER_MS: '0',
      SYNOD_BENCH_ALLOC_MS: '300',
      SYNOD_BENCH_KEEP_LOGS: kept,
    };
    const started = Date.now();
    const out = spawnSync(process.execPath, [`--import=${ALLOC_JS}`, MAIN_JS, 'bench', '--ci', '--json', '--html', html, '--replica-args', '--snapshot-interval-slots 5000'], { encoding: 'utf8', timeout: 45_000, env });
    assert.equal(out.status, 0, `exit 0; stderr: ${out.stderr}`);
    const r = JSON.parse(out.stdout.trim()) as BenchResult;
    assert.ok(r.measuredFromEpochMs >= started && r.measuredFromEpochMs <= Date.now(), `the window's start on the wall clock: ${r.measuredFromEpochMs}`);
    const logs = readdirSync(events).filter((f) => /^ev-\d+\.log$/.test(f));
    assert.equal(logs.length, 3, `one event log per replica: ${logs}`);
    for (const f of logs) assert.match(readFileSync(join(events, f), 'utf8'), /^\d{13} (GC|LATE|FILL|SNAP)/m, `${f}: events logged (the probe found the methods it wraps)`);
    const json = join(dir, 'run.json');
    writeFileSync(json, out.stdout);
    const classified = spawnSync(process.execPath, [EVENTS_JS, json, events], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(classified.status, 0, classified.stderr);
    assert.match(classified.stdout, /^p99 [\d.]+ ms over the run; 250 ms windows by what overlapped them/);
    const allocated = spawnSync(process.execPath, [ALLOC_JS, json, alloc], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(allocated.status, 0, allocated.stderr);
    assert.equal(allocated.stdout.match(/^replica \d.* \d+ bytes\/write {2}scavenges/gm)?.length, 3, `one line per replica: ${allocated.stdout}`);
    assert.match(allocated.stdout, /^bench \(load generator\) +\d+ bytes\/write/m, 'and the load worker');
    const collected = spawnSync(process.execPath, [GC_JS, json, kept], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(collected.status, 0, collected.stderr);
    assert.equal(collected.stdout.match(/^replica \d.* scavenges \d+, [\d.]+ ms \(median/gm)?.length, 3, `one line per replica: ${collected.stdout}`);
    assertShape(r, { mode: 'procs', storage: 'file', replicas: 3, totalOps: 400 });
    assert.deepEqual(r.params.replicaArgs, ['--snapshot-interval-slots', '5000'], 'the replicas\' extra flags are in the parameters reported');
    assert.equal(r.processes.length, 4, 'the load generator and 3 replicas');
    assert.ok(r.storage && r.storage.leaderSyncsPerOp > 0, 'fdatasyncs counted through the probe');
    const replicas = r.processes.filter((x) => x.name.startsWith('replica'));
    assert.equal(replicas.length, 3);
    for (const x of replicas) {
      // The event loop's delay comes through the probe too: a timer of 1 ms fires at least 1 ms late.
      assert.ok(x.loopDelayP99Ms !== undefined && x.loopDelayMaxMs !== undefined, `${x.name}: loop delay reported`);
      assert.ok(x.loopDelayMaxMs >= x.loopDelayP99Ms && x.loopDelayP99Ms >= 1, `${x.name}: ${x.loopDelayP99Ms} / ${x.loopDelayMaxMs} ms`);
    }
    // And the generator's own (its worker thread's), from the load.
    const gen = r.processes.find((x) => x.name === 'bench (load generator)')!;
    assert.ok(gen.loopDelayMaxMs !== undefined && gen.loopDelayP99Ms !== undefined && gen.loopDelayMaxMs >= gen.loopDelayP99Ms && gen.loopDelayP99Ms >= 1, `generator: ${gen.loopDelayP99Ms} / ${gen.loopDelayMaxMs} ms`);
    assert.ok(existsSync(html) && readFileSync(html, 'utf8').includes('<svg'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--replica-args reach every `synod start`: a value a replica refuses stops the bench with that replica\'s own message; the flags the bench sets are refused up front', () => {
  const bad = spawnSync(process.execPath, [MAIN_JS, 'bench', '--ci', '--replica-args', '--leader-snapshot-interval-factor 0.5'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /replica \d exited at start[^]*--leader-snapshot-interval-factor must be a number >= 1, got 0\.5/);
  for (const [args, why] of [
    ['--data /tmp/elsewhere', /cannot set --data: the bench sets it/],
    ['--log-backend=pmem', /cannot set --log-backend[^]*use --storage/],
    ['5000', /must start with a flag/],
  ] as const) {
    const out = spawnSync(process.execPath, [MAIN_JS, 'bench', '--ci', '--replica-args', args], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(out.status, 2, args);
    assert.match(out.stderr, why);
  }
  const inproc = spawnSync(process.execPath, [MAIN_JS, 'bench', '--ci', '--inproc', '--replica-args', '--snapshot-interval-slots 5'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(inproc.status, 2);
  assert.match(inproc.stderr, /need the multi-process mode/);
});

test('bad parameters are refused with a usage error', () => {
  const out = spawnSync(process.execPath, [MAIN_JS, 'bench', '--replicas', '4'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(out.status, 2);
  assert.match(out.stderr, /replicas must be 3 or 5/);
  // Out-of-range values are reported under the flag the user typed, not the field's name.
  for (const [args, why] of [
    [['--rate', '-5'], /error: --rate must be in \[0, 1e8\], got -5/],
    [['--duration', '0'], /error: --duration must be in \(0, 3600\], got 0/],
    [['--read-ratio', '1.5'], /error: --read-ratio must be in \[0, 1\], got 1\.5/],
    [['--val-size', '4'], /error: --val-size must be an integer 8\.\.1048576, got 4/],
  ] as const) {
    const bad = spawnSync(process.execPath, [MAIN_JS, 'bench', '--inproc', ...args], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(bad.status, 2, args.join(' '));
    assert.match(bad.stderr, why);
  }
});

test('npm run bench:engine (the engine alone, a counting machine): runs, every command answered and applied by every replica', () => {
  const engine = fileURLToPath(new URL('../../bench/engine.js', import.meta.url));
  const out = spawnSync(process.execPath, [engine, '--seconds', '1', '--rounds', '1', '--lanes', '64', '--clients', '4'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.status, 0, `exit 0; stderr: ${out.stderr}`);
  // The script itself throws (exit 1) if an answer is wrong or the replicas' counts differ.
  const m = /median ([\d,]+) commands\/s .* every replica applied ([\d,]+)/.exec(out.stdout);
  assert.ok(m, `summary line in: ${out.stdout}`);
  assert.ok(Number(m[1]!.replace(/,/g, '')) > 0 && Number(m[2]!.replace(/,/g, '')) > 0);
});

test('npm run bench:fsync (the disk alone): quantiles of write + fdatasync, in order, and its probe file removed', () => {
  const script = fileURLToPath(new URL('../../bench/fsync-latency.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'synod-fsync-test-'));
  try {
    const out = spawnSync(process.execPath, [script, '--seconds', '0.3', '--bytes', '4096', '--dir', dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.status, 0, `exit 0; stderr: ${out.stderr}`);
    const m = /([\d,]+) times in .*p50 ([\d.]+) \/ p90 ([\d.]+) \/ p99 ([\d.]+) \/ p99\.9 ([\d.]+) \/ max ([\d.]+) ms/.exec(out.stdout);
    assert.ok(m, `summary line in: ${out.stdout}`);
    assert.ok(Number(m[1]!.replace(/,/g, '')) > 0);
    const qs = m.slice(2).map(Number);
    assert.deepEqual(qs, [...qs].sort((a, b) => a - b), 'quantiles in order');
    assert.deepEqual(readdirSync(dir), [], 'nothing left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm run bench:floor (the topology alone): every request sent in the window answered, with and without the disk, nothing left behind', () => {
  const script = fileURLToPath(new URL('../../bench/pipeline-floor.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'synod-floor-test-'));
  try {
    for (const disk of [[], ['--disk', '--dir', dir]]) {
      const out = spawnSync(process.execPath, [script, '--rate', '2000', '--duration', '1', '--warmup', '0.2', '--connections', '2', '--work-us', '1', '--json', ...disk], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(out.status, 0, `exit 0; stderr: ${out.stderr}`);
      const r = JSON.parse(out.stdout.trim()) as { sent: number; answered: number; slotsPerSec: number; p50Ms: number; p99Ms: number; disk: boolean };
      assert.equal(r.disk, disk.length > 0);
      assert.ok(r.sent >= 1900 && r.sent <= 2000, `~2,000 requests sent in 1 s (${r.sent})`);
      assert.equal(r.answered, r.sent, 'every one answered');
      assert.ok(r.slotsPerSec > 0 && r.p50Ms > 0 && r.p50Ms <= r.p99Ms);
    }
    assert.deepEqual(readdirSync(dir), [], 'the log files removed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
