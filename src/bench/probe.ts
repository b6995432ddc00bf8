// A preload for the `synod start` children of the multi-process benchmark
// (NODE_OPTIONS=--import=<this file>, SYNOD_BENCH_PROBE_DIR=<dir>): it learns the replica when
// SynodReplica.start() returns, and every PROBE_INTERVAL_MS writes its counters (log syncs and
// bytes, commits, applied commands) and, with SYNOD_BENCH_TRACE=1, the stage timings to
// <dir>/probe-<replica id>.json. SIGUSR2 resets the stage timings (the start of the measured
// window). Nothing else in the child changes.
//
// Why a preload and not /metrics: /metrics has no fdatasync or bytes-written counters yet (a
// proposal in docs/performance.md); the probe reads SynodReplica.counters(), which has them.

import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
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
    process.on('SIGUSR2', () => tracer?.reset());
    const file = join(dir, `probe-${replica.id}.json`);
    const write = () => {
      const body = JSON.stringify({ pid: process.pid, id: replica.id, role: replica.status().role, tMs: Date.now(), counters: replica.counters(), memory: process.memoryUsage(), trace: tracer?.report() ?? null, traceError });
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
