// Bytes allocated per write in each process of a `synod bench` run, and where: a diagnostic.
//
// A scavenge's pause is what a replica's event loop loses to its young generation; how often one
// comes is set by how many bytes the process allocates. This measures that directly, with V8's
// sampling heap profiler counting every object (collected ones too), so that a change to the hot
// path can be judged by its bytes per write rather than by the run's p99 (which moves 2x on this VM
// between runs).
//
// 1. Preloaded into the replicas (and the bench process, whose load worker it then profiles), it
//    waits SYNOD_BENCH_ALLOC_AFTER_MS (default 6000: past start-up, inside a run with --warmup 5),
//    samples SYNOD_BENCH_ALLOC_MS (default 4000) and writes $SYNOD_BENCH_ALLOC_DIR/alloc-<pid>-<thread>.json:
//    bytes sampled, scavenges and their pauses in that time, and the top allocation sites.
// 2. Run with the bench's --json output and that directory, it prints per process bytes per write
//    (at the run's write rate), scavenges per second, and the leader's top sites.
//
//   export SYNOD_BENCH_ALLOC_DIR=$(mktemp -d)
//   SYNOD_CHILD_NODE_ARGS=--import=$PWD/scripts/bench-alloc.mjs \
//     node dist/src/cli/main.js bench --rate 150000 --inflight 256 --warmup 5 --duration 8 --json --no-verify > run.json
//   node scripts/bench-alloc.mjs run.json $SYNOD_BENCH_ALLOC_DIR
//
// Sites are functions as V8 inlined them: add --no-turbo-inlining to SYNOD_CHILD_NODE_ARGS to split
// them (it changes speed, not what is allocated).

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, threadId } from 'node:worker_threads';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) summarize(process.argv[2], process.argv[3]);
else record(process.env.SYNOD_BENCH_ALLOC_DIR);

function record(dir) {
  if (!dir) throw new Error('bench-alloc: set SYNOD_BENCH_ALLOC_DIR');
  // In the bench process, only its load worker (the main thread only starts and collects).
  if (isMainThread && process.argv[2] === 'bench') return;
  const after = Number(process.env.SYNOD_BENCH_ALLOC_AFTER_MS ?? 6000);
  const span = Number(process.env.SYNOD_BENCH_ALLOC_MS ?? 4000);
  const session = new Session();
  session.connect();
  // The in-process inspector answers synchronously: the callbacks run inside post().
  const post = (method, params = {}) => {
    let result;
    session.post(method, params, (e, r) => {
      if (e) throw e;
      result = r;
    });
    return result;
  };
  const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0 };
  let on = false;
  new PerformanceObserver((list) => {
    if (!on) return;
    for (const e of list.getEntries()) {
      if (e.detail?.kind === 1) {
        gc.minor++;
        gc.minorMs += e.duration;
      } else if (e.detail?.kind === 2) {
        gc.major++;
        gc.majorMs += e.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
  let t0 = 0;
  const finish = () => {
    if (!on) return;
    on = false;
    const ms = performance.now() - t0;
    const { profile } = post('HeapProfiler.stopSampling');
    const sites = new Map();
    let bytes = 0;
    const walk = (node) => {
      const f = node.callFrame;
      if (node.selfSize > 0) {
        const site = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
        sites.set(site, (sites.get(site) ?? 0) + node.selfSize);
        bytes += node.selfSize;
      }
      for (const c of node.children ?? []) walk(c);
    };
    walk(profile.head);
    const top = [...sites].sort((a, b) => b[1] - a[1]).slice(0, 15);
    writeFileSync(`${dir}/alloc-${process.pid}-${threadId}.json`, JSON.stringify({ pid: process.pid, threadId, ms, bytes, gc, top }));
  };
  setTimeout(() => {
    post('HeapProfiler.enable');
    post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    on = true;
    t0 = performance.now();
    setTimeout(finish, span).unref();
  }, after).unref();
  process.on('exit', finish); // a process that ends first still reports what it sampled
  // The bench terminates its load worker once it has its result (no 'exit' there): report before the result goes.
  if (!isMainThread && parentPort) {
    const postMessage = parentPort.postMessage.bind(parentPort);
    parentPort.postMessage = (message, ...rest) => {
      if (message?.type === 'done') finish();
      return postMessage(message, ...rest);
    };
  }
}

function summarize(runJson, dir) {
  if (!runJson || !dir) throw new Error('usage: node scripts/bench-alloc.mjs <bench --json output> <SYNOD_BENCH_ALLOC_DIR>');
  const run = JSON.parse(readFileSync(runJson, 'utf8'));
  const rate = run.writesPerSec || run.opsPerSec;
  const files = readdirSync(dir).filter((f) => /^alloc-\d+-\d+\.json$/.test(f));
  if (files.length === 0) throw new Error(`bench-alloc: nothing in ${dir} (was the run long enough? it samples from ${process.env.SYNOD_BENCH_ALLOC_AFTER_MS ?? 6000} ms after start)`);
  for (const f of files) {
    const a = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'));
    const p = run.processes.find((x) => x.pid === a.pid);
    const name = p ? p.name : `pid ${a.pid}`;
    const s = a.ms / 1000;
    console.log(`${name.padEnd(34)} ${String(Math.round(a.bytes / s / rate)).padStart(5)} bytes/write  scavenges ${(a.gc.minor / s).toFixed(1)}/s (${(a.gc.minorMs / s).toFixed(1)} ms/s)  full GCs ${a.gc.major}`);
    if (p?.name.includes('leader') || process.env.SYNOD_BENCH_ALLOC_SITES === 'all') {
      for (const [site, bytes] of a.top.slice(0, 8)) console.log(`    ${((100 * bytes) / a.bytes).toFixed(1).padStart(5)}%  ${site}`);
    }
  }
}
