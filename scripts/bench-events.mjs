// What the replicas were doing in each 250 ms window of a `synod bench` run: a diagnostic.
//
// On this VM the same build's p99 moves 2x between consecutive runs, so comparing two runs says
// little; comparing the windows of one run does: those during a snapshot against those without.
//
// 1. Preloaded into the replicas, it logs events to $SYNOD_BENCH_EVENTS_DIR/ev-<pid>.log (wall
//    clock, ms): a snapshot of their own (SNAP begin/end), a follower's adopted (ADOPT begin from
//    the request, end once durable), a log segment zero-filled (FILL begin/end: prepared with no
//    spare to recycle), GC pauses over 1.5 ms, event-loop lateness over 3 ms, the process's CPU
//    (every 250 ms, and over each snapshot), and a snapshot's parts: the time the state machine took
//    to make its chunks (and the longest one: how long it held the event loop) and the store's paced
//    steps. It wraps private methods of SynodReplica, SnapshotWriter and FileLog
//    (a diagnostic, not an API: rename them and it says so).
// 2. Run with the bench's --json output and that directory, it sorts the timeline's windows by
//    what overlapped them and prints each group's window p99s (the bench's measuredFromEpochMs
//    places the windows on the same clock), then each role's snapshots: how long, the process's
//    CPU over them, and how much of it is above the replica's rate in the second before.
//
//   export SYNOD_BENCH_EVENTS_DIR=$(mktemp -d)
//   SYNOD_CHILD_NODE_ARGS=--import=$PWD/scripts/bench-events.mjs \
//     node dist/src/cli/main.js bench --rate 150000 --inflight 256 --warmup 20 --duration 20 --json > run.json
//   node scripts/bench-events.mjs run.json $SYNOD_BENCH_EVENTS_DIR

import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { isMainThread, threadId } from 'node:worker_threads';

const WINDOW_MS = 250;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) classify(process.argv[2], process.argv[3]);
else await record(process.env.SYNOD_BENCH_EVENTS_DIR);

async function record(dir) {
  if (!dir) throw new Error('bench-events: set SYNOD_BENCH_EVENTS_DIR');
  // Preloaded into the bench process too (node --import=... main.js bench), it logs the load
  // generator's thread: GC pauses and event-loop lateness only (its workers inherit the preload).
  // (A worker's process.argv lacks the command: the main thread marks the process in its env.)
  if (isMainThread && process.argv[2] === 'bench') process.env.SYNOD_BENCH_EVENTS_GENERATOR = String(process.pid);
  const generator = process.env.SYNOD_BENCH_EVENTS_GENERATOR === String(process.pid);
  if (generator && isMainThread) return;
  const file = generator ? `${dir}/gen-${process.pid}-${threadId}.log` : `${dir}/ev-${process.pid}.log`;
  const lines = [];
  const log = (s) => lines.push(`${Date.now()} ${s}`);
  const flush = () => lines.length > 0 && appendFileSync(file, lines.splice(0).join('\n') + '\n');
  setInterval(flush, 1000).unref();
  process.on('exit', flush);
  if (generator) {
    observeLoop(log);
    return;
  }
  const dist = new URL('../dist/src/', import.meta.url);
  const { SynodReplica } = await import(new URL('runtime/replica.js', dist).href);
  const { FileLog } = await import(new URL('storage/file-log.js', dist).href);
  const { SnapshotWriter } = await import(new URL('storage/snapshot-store.js', dist).href);
  const wrap = (proto, name, around) => {
    const f = proto[name];
    if (typeof f !== 'function') throw new Error(`bench-events: ${name} is gone: update the probe`);
    proto[name] = around(f);
  };
  const cpuMs = () => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  // The snapshot in progress: its chunks' making (the machine's synchronous next() calls: total,
  // count, longest) and the store's paced steps (write, flush, rest).
  let parts = null;
  wrap(SynodReplica.prototype, 'writeSnapshot', (f) => async function (...a) {
    log('SNAP begin');
    const cpu = cpuMs();
    const mine = (parts = { make: 0, chunks: 0, longest: 0, steps: 0, stepMs: 0 });
    const sm = this.sm;
    const stream = sm.snapshotStream;
    if (typeof stream === 'function') {
      sm.snapshotStream = function () {
        const it = stream.call(this)[Symbol.iterator]();
        return {
          [Symbol.iterator]() {
            return {
              next() {
                const t = performance.now();
                const r = it.next();
                const d = performance.now() - t;
                mine.make += d;
                mine.chunks++;
                mine.longest = Math.max(mine.longest, d);
                return r;
              },
              return(v) {
                return it.return ? it.return(v) : { done: true, value: v };
              },
            };
          },
        };
      };
    }
    try {
      return await f.apply(this, a);
    } finally {
      if (typeof stream === 'function') sm.snapshotStream = stream;
      if (parts === mine) parts = null;
      // The process's CPU over the snapshot, then its parts (ms).
      log(`SNAP end ${(cpuMs() - cpu).toFixed(1)} make=${mine.make.toFixed(1)}/${mine.chunks}/${mine.longest.toFixed(1)} steps=${mine.stepMs.toFixed(1)}/${mine.steps}`);
    }
  });
  wrap(SnapshotWriter.prototype, 'step', (f) => async function (...a) {
    const mine = parts;
    const t = performance.now();
    try {
      return await f.apply(this, a);
    } finally {
      if (mine) {
        mine.stepMs += performance.now() - t;
        mine.steps++;
      }
    }
  });
  wrap(SynodReplica.prototype, 'requestSnapshot', (f) => function (from, slot, adopt) {
    if (adopt && !this.fetch) log('ADOPT begin');
    return f.call(this, from, slot, adopt);
  });
  wrap(SynodReplica.prototype, 'adoptSnapshot', (f) => function (...a) {
    f.apply(this, a);
    const p = this.snapshotInFlight;
    if (p) p.then(() => log('ADOPT end'), () => log('ADOPT end'));
  });
  wrap(FileLog.prototype, 'prepareSegment', (f) => async function (...a) {
    const fill = this.spares.length === 0;
    if (fill) log('FILL begin');
    try {
      return await f.apply(this, a);
    } finally {
      if (fill) log('FILL end');
    }
  });
  // A log write (write + fdatasync, the native path) that took over 8 ms from submit to completion.
  wrap(FileLog.prototype, 'submitLoop', (f) => function (...a) {
    if (!this.probed && typeof this.writeAndSync === 'function') {
      const write = this.writeAndSync;
      this.writeAndSync = (...w) => {
        const t = performance.now();
        const p = write(...w);
        p.then(() => {
          const d = performance.now() - t;
          if (d > 8) log(`SYNC ${d.toFixed(1)}`);
        }, () => {});
        return p;
      };
      this.probed = true;
    }
    return f.apply(this, a);
  });
  setInterval(() => log(`CPU ${cpuMs().toFixed(1)}`), 250).unref(); // for the snapshots' usual rate
  observeLoop(log);
}

/** GC pauses over 1.5 ms and event-loop lateness over 3 ms (a 1 ms timer). */
function observeLoop(log) {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.duration > 1.5) log(`GC ${e.duration.toFixed(1)} ${gcKind(e)}`);
  }).observe({ entryTypes: ['gc'] });
  let last = performance.now();
  setInterval(() => {
    const t = performance.now();
    if (t - last - 1 > 3) log(`LATE ${(t - last - 1).toFixed(1)}`);
    last = t;
  }, 1).unref();
}

function classify(runJson, dir) {
  if (!runJson || !dir) throw new Error('usage: node scripts/bench-events.mjs <bench --json output> <SYNOD_BENCH_EVENTS_DIR>');
  const run = JSON.parse(readFileSync(runJson, 'utf8'));
  const leader = String(run.processes.find((p) => p.name.includes('leader'))?.pid);
  const spans = []; // { kind, leader, from, to, cpu?, usual? }
  for (const name of readdirSync(dir).filter((f) => /^ev-\d+\.log$/.test(f))) {
    const pid = name.slice(3, -4);
    const open = new Map();
    const cpu = []; // [t, cumulative process CPU ms]
    for (const line of readFileSync(`${dir}/${name}`, 'utf8').split('\n')) {
      const [t, kind, edge, extra] = line.split(' ');
      const split = / make=([\d.]+)\/(\d+)\/([\d.]+) steps=([\d.]+)\/(\d+)/.exec(line);
      if (kind === 'CPU') cpu.push([+t, +edge]);
      if (edge === 'begin') open.set(kind, +t);
      else if (edge === 'end' && open.has(kind)) {
        const span = { kind, leader: pid === leader, from: open.get(kind), to: +t };
        if (split) Object.assign(span, { make: +split[1], longest: +split[3], stepMs: +split[4] });
        if (extra !== undefined) {
          span.cpu = +extra;
          // The process's usual CPU rate: over the second before the span began.
          const before = cpu.filter(([at]) => at <= span.from && at >= span.from - 1000);
          if (before.length >= 2) span.usual = (before.at(-1)[1] - before[0][1]) / (before.at(-1)[0] - before[0][0]);
        }
        spans.push(span);
        open.delete(kind);
      }
    }
  }
  const order = ['leader SNAP', 'leader ADOPT', 'follower SNAP', 'leader FILL', 'follower FILL'];
  const groups = new Map([...order, 'none'].map((g) => [g, []]));
  for (const w of run.timeline) {
    const to = run.measuredFromEpochMs + w.tS * 1000;
    const from = to - WINDOW_MS;
    const over = new Set(spans.filter((s) => s.from < to && s.to > from).map((s) => `${s.leader ? 'leader' : 'follower'} ${s.kind}`));
    groups.get(order.find((g) => over.has(g)) ?? 'none').push(w.p99Ms);
  }
  console.log(`p99 ${run.p99Ms} ms over the run; 250 ms windows by what overlapped them (first match in this order):`);
  for (const [g, v] of groups) {
    if (v.length === 0) continue;
    v.sort((a, b) => a - b);
    console.log(`  ${g.padEnd(14)} ${String(v.length).padStart(4)} windows  p99 median ${v[v.length >> 1].toFixed(1)} ms, max ${v.at(-1).toFixed(1)} ms`);
  }
  // A snapshot's cost to its replica: the process's CPU over it, less what it uses in the same time usually.
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  for (const role of ['leader', 'follower']) {
    const snaps = spans.filter((s) => s.kind === 'SNAP' && s.leader === (role === 'leader') && s.usual !== undefined);
    if (snaps.length === 0) continue;
    const extra = snaps.map((s) => s.cpu - s.usual * (s.to - s.from));
    console.log(`  ${role} snapshots: ${snaps.length}, median ${median(snaps.map((s) => s.to - s.from)).toFixed(0)} ms long, CPU ${median(snaps.map((s) => s.cpu)).toFixed(0)} ms (${median(extra).toFixed(0)} ms above the replica's usual rate)`);
    const split = snaps.filter((s) => s.make !== undefined);
    if (split.length > 0) {
      console.log(`    of which making the chunks ${median(split.map((s) => s.make)).toFixed(0)} ms (the longest one ${median(split.map((s) => s.longest)).toFixed(1)} ms), the paced steps ${median(split.map((s) => s.stepMs)).toFixed(0)} ms (medians)`);
    }
  }
}

/** minor (scavenge), major (mark-compact), incremental (marking step) or weak (callbacks). */
function gcKind(entry) {
  const kind = entry.detail?.kind ?? entry.kind;
  return { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weak' }[kind] ?? `kind${kind}`;
}
