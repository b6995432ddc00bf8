// A preload for the `synod start` children of the multi-process benchmark
// (NODE_OPTIONS=--import=<this file>, SYNOD_BENCH_PROBE_DIR=<dir>): it learns the replica when
// SynodReplica.start() returns, and every PROBE_INTERVAL_MS writes its counters (log syncs and
// bytes, commits, applied commands) and, with SYNOD_BENCH_TRACE=1, the stage timings to
// <dir>/probe-<replica id>.json, with the event loop's delay. SIGUSR2 resets the stage timings
// and the delay histogram (the start of the measured window). Nothing else in the child changes.
//
// Why a preload and not /metrics: /metrics has no fdatasync or bytes-written counters yet (a
// proposal in docs/performance.md); the probe reads SynodReplica.counters(), which has them.

import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SynodReplica } from '../runtime/replica.js';
import { StageTracer } from './trace.js';

const PROBE_INTERVAL_MS = 250;

const dir = process.env.SYNOD_BENCH_PROBE_DIR;
if (dir) {
  const start = SynodReplica.start.bind(SynodReplica);
  (SynodReplica as unknown as { start: typeof SynodReplica.start }).start = async (options) => {
    const replica = await start(options);
    let tracer: StageTracer | null = null;
    let traceError: string | null = null;
    if (process.env.SYNOD_BENCH_TRACE === '1') {
      try {
        tracer = new StageTracer(replica);
      } catch (e) {
        traceError = (e as Error).message;
      }
    }
    // How late a 1 ms timer fires: the longest stretches the replica's event loop was busy (a
    // snapshot's copy, a large slot's apply, a GC pause) or the process waited for a core.
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    process.on('SIGUSR2', () => {
      tracer?.reset();
      loop.reset();
    });
    const loopDelay = () => ({ p50Ms: loop.percentile(50) / 1e6, p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 });
    const file = join(dir, `probe-${replica.id}.json`);
    const write = () => {
      const body = JSON.stringify({ pid: process.pid, id: replica.id, role: replica.status().role, tMs: Date.now(), counters: replica.counters(), memory: process.memoryUsage(), loopDelay: loopDelay(), trace: tracer?.report() ?? null, traceError });
      writeFileSync(`${file}.tmp`, body);
      renameSync(`${file}.tmp`, file);
    };
    setInterval(() => {
      try {
        write();
      } catch {
        // the bench removed the directory: it is over
      }
    }, PROBE_INTERVAL_MS).unref();
    return replica;
  };
}
