// One benchmark run: start the system under test, run the load (in this thread for the in-process
// engine, in a worker thread otherwise), sample CPU, memory and log counters at the edges of the
// measured window, stop everything, and return one BenchResult (what --json prints).

import { cpus, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { externalEtcd, startInproc, startProcs, type BenchCluster, type ProcessSample, type ReplicaCounters } from './cluster.js';
import { loadWorkersOf, mergeLoad, runLoad, splitLoad, TimelineMerger, type IntervalReport, type LatencyQuantiles, type LoadPartResult, type LoadResult, type TimelinePoint, type VerifyResult } from './load.js';
import type { LoadWorkerData } from './load-worker.js';
import { paramsForReport, type BenchParams } from './params.js';
import { othersBetween, sampleMachine, type MachineSample, type OthersReport } from './machine-others.js';
import { DirectTarget } from './targets.js';
import type { TraceReport } from './trace.js';

export interface ProcessReport {
  name: string;
  pid: number;
  cpuS: number;
  /** CPU time of this process per measured operation. */
  cpuUsPerOp: number;
  /** Share of one core over the measured window. */
  cpuCores: number;
  rssMiB: number;
  rssPeakMiB: number;
  /** Replicas in multi-process mode: how late the event loop ran a 1 ms timer over the window. */
  loopDelayP99Ms?: number;
  loopDelayMaxMs?: number;
}

export interface StorageReport {
  /** The leader's fdatasync (or persist) calls per committed operation. */
  leaderSyncsPerOp: number;
  leaderBytesWrittenPerOp: number;
  /** Every replica together. */
  clusterSyncsPerOp: number;
  clusterBytesWrittenPerOp: number;
  leaderSyncsPerS: number;
  replicas: Array<ReplicaCounters & { syncs: number; bytesWritten: number }>;
}

export interface BatchReport {
  /** Leader: commands applied per slot applied (the proposal batch size). */
  commandsPerSlot: number;
  /** Leader: log records appended per fdatasync (the group-commit size). */
  recordsPerSync: number;
  slotsPerS: number;
}

export interface BenchResult {
  opsPerSec: number;
  writesPerSec: number;
  readsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  errors: number;
  errorsByCode: Record<string, number>;
  ops: number;
  writes: number;
  reads: number;
  readsFound: number;
  /** Open loop: operations that waited for a free lane (their wait is in their latency). */
  laneWaits: number;
  elapsedS: number;
  params: Record<string, unknown>;
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1m: number; note: string; others: OthersReport | null };
  latency: { all: LatencyQuantiles; write: LatencyQuantiles; read: LatencyQuantiles };
  processes: ProcessReport[];
  storage: StorageReport | null;
  batches: BatchReport | null;
  verify: VerifyResult;
  trace: TraceReport | null;
  traceError: string | null;
  timeline: TimelinePoint[];
  /** Wall-clock time (Date.now()) of the measured window's start: `timeline`'s tS counts from it (events logged by the replicas line up with it, scripts/bench-events.mjs). */
  measuredFromEpochMs: number;
  histogram: Array<[number, number]>;
  /** --inproc direct: operations retried because leadership moved (an election under load); null otherwise. */
  notLeaderRetries: number | null;
}

export interface RunUi {
  onPhase?: (phase: string) => void;
  onProgress?: (ops: number, errors: number, elapsedS: number) => void;
  /** The caller's SIGINT: when it returns true the load stops and everything is torn down. */
  stopRequested?: () => boolean;
  /** Registers the clean-up the caller's signal handler must run if it exits early. */
  onCleanup?: (cleanup: () => Promise<void>) => void;
}

interface Edge {
  tMs: number;
  processes: ProcessSample[];
  counters: ReplicaCounters[];
  /** Every task on the machine (null against etcd, whose processes are not the bench's own, or off Linux). */
  machine: MachineSample | null;
}

/** Longer than the probe's write interval (src/bench/probe.ts, 250 ms), with room for a busy loop. */
const PROBE_SETTLE_MS = 350;

export async function runBench(p: BenchParams, ui: RunUi = {}): Promise<BenchResult> {
  ui.onPhase?.(p.mode === 'etcd' ? 'etcd' : `starting ${p.replicas} replicas (${p.mode === 'inproc' ? 'in process' : 'child processes'}, ${p.storage} log)`);
  const cluster: BenchCluster = p.mode === 'inproc' ? await startInproc(p) : p.mode === 'procs' ? await startProcs(p, (c) => ui.onCleanup?.(c)) : externalEtcd(p);
  ui.onCleanup?.(() => cluster.close());
  try {
    const edges: Edge[] = [];
    const sampleEdge = (edge: 'start' | 'end') => {
      if (edge === 'start') cluster.traceReset();
      edges.push({ tMs: performance.now(), processes: cluster.processes(), counters: cluster.counters(), machine: p.mode === 'etcd' ? null : sampleMachine() });
    };
    ui.onPhase?.('load');
    let load: LoadResult;
    let notLeaderRetries: number | null = null;
    if (p.mode === 'inproc' && p.via === 'direct') {
      const target = new DirectTarget(cluster.leader!, p.clients, p.inflight);
      load = await runLoad(p, target, { onMeasure: sampleEdge, onProgress: ui.onProgress, stopRequested: ui.stopRequested });
      notLeaderRetries = target.notLeaderRetries;
    } else {
      load = await runWorkers(p, cluster.endpoints, sampleEdge, ui);
    }
    // A child replica's probe file is rewritten every 250 ms: wait for one written after the end
    // edge before its counters and loop delay are final. A short window (--ci: a few hundred
    // operations, a few ms) could otherwise end before any write since the window's start, and
    // report a loop delay of no samples at all.
    if (p.mode === 'procs') {
      await new Promise((r) => setTimeout(r, PROBE_SETTLE_MS));
      const fresh = new Map(cluster.processes().map((s) => [s.pid, s.loopDelay]));
      const end = edges[1]!;
      edges[1] = { ...end, counters: cluster.counters(), processes: end.processes.map((s) => ({ ...s, loopDelay: fresh.get(s.pid) ?? s.loopDelay })) };
    }
    const trace = cluster.traceReport();
    return { ...summarize(p, load, edges, trace, cluster.traceError), notLeaderRetries };
  } finally {
    ui.onPhase?.('stopping');
    await cluster.close();
  }
}

/**
 * The load in `loadWorkersOf(p)` worker threads, one part each (./load.ts, splitLoad): the edges
 * of the measured window are a barrier (sampled once every worker has asked, then every worker is
 * answered), progress is added up, timeline intervals are merged as they come, results at the end.
 */
function runWorkers(p: BenchParams, endpoints: string[], sampleEdge: (edge: 'start' | 'end') => void, ui: RunUi): Promise<LoadResult> {
  const parts = splitLoad(p, loadWorkersOf(p));
  const workers = parts.map((part) => new Worker(new URL('./load-worker.js', import.meta.url), { workerData: { params: p, endpoints, part } satisfies LoadWorkerData }));
  const stopPoll = setInterval(() => {
    if (ui.stopRequested?.()) for (const w of workers) w.postMessage({ type: 'stop' });
  }, 100);
  const timeline = new TimelineMerger(parts.length);
  const progress = parts.map(() => ({ ops: 0, errors: 0, elapsedS: 0 }));
  const asked = { start: new Set<number>(), end: new Set<number>() };
  const results: Array<LoadPartResult | undefined> = parts.map(() => undefined);
  let received = 0;
  return new Promise<LoadResult>((resolve, reject) => {
    workers.forEach((worker, i) => {
      worker.on('message', (m: { type: string; ops: number; errors: number; elapsedS: number; edge: 'start' | 'end'; report: IntervalReport; result: LoadPartResult; message: string }) => {
        if (m.type === 'progress') {
          progress[i] = { ops: m.ops, errors: m.errors, elapsedS: m.elapsedS };
          ui.onProgress?.(
            progress.reduce((s, x) => s + x.ops, 0),
            progress.reduce((s, x) => s + x.errors, 0),
            Math.max(...progress.map((x) => x.elapsedS)),
          );
        } else if (m.type === 'interval') timeline.add(i, m.report);
        else if (m.type === 'measure') {
          const waiting = asked[m.edge];
          waiting.add(i);
          if (waiting.size < workers.length) return;
          sampleEdge(m.edge);
          for (const w of workers) w.postMessage({ type: 'measured', edge: m.edge });
        } else if (m.type === 'done') {
          results[i] = m.result;
          if (++received === workers.length) resolve(mergeLoad(results as LoadPartResult[], timeline.points()));
        } else if (m.type === 'error') reject(new Error(`load generator ${i + 1}/${workers.length} failed: ${m.message}`));
      });
      worker.on('error', reject);
      worker.on('exit', (code) => {
        if (results[i] === undefined) reject(new Error(`load generator ${i + 1}/${workers.length} exited (${code}) without a result`));
      });
    });
  }).finally(() => {
    clearInterval(stopPoll);
    for (const w of workers) void w.terminate();
  });
}

function summarize(p: BenchParams, load: LoadResult, edges: Edge[], trace: TraceReport | null, traceError: string | null): Omit<BenchResult, 'notLeaderRetries'> {
  const [a, b] = edges;
  const windowS = a && b ? (b.tMs - a.tMs) / 1000 : load.elapsedS;
  const ops = Math.max(load.ops, 1);
  const processes: ProcessReport[] = (b?.processes ?? []).map((end) => {
    const start = a?.processes.find((x) => x.pid === end.pid);
    const cpuS = start ? end.cpuS - start.cpuS : NaN;
    // Replicas' delays come from their probes; the generator's (this process) from the load.
    const delay = end.loopDelay ?? (end.pid === process.pid ? load.loopDelay : undefined);
    const loop = delay ? { loopDelayP99Ms: round(delay.p99Ms, 1), loopDelayMaxMs: round(delay.maxMs, 1) } : {};
    return { name: end.name, pid: end.pid, cpuS: round(cpuS, 3), cpuUsPerOp: round((cpuS / ops) * 1e6, 2), cpuCores: round(cpuS / windowS, 2), rssMiB: round(end.rssBytes / 2 ** 20, 1), rssPeakMiB: round(end.rssPeakBytes / 2 ** 20, 1), ...loop };
  });
  let storage: StorageReport | null = null;
  let batches: BatchReport | null = null;
  if (a && b && b.counters.length > 0) {
    const deltas = b.counters.map((end) => {
      const start = a.counters.find((x) => x.id === end.id);
      const d = (k: keyof ReplicaCounters) => (end[k] as number) - ((start?.[k] as number | undefined) ?? 0);
      return { ...end, appends: d('appends'), commits: d('commits'), syncs: d('syncs'), bytesWritten: d('bytesWritten'), slotsApplied: d('slotsApplied'), commandsApplied: d('commandsApplied') };
    });
    const leader = deltas.find((x) => x.role === 'leader') ?? deltas[0]!;
    const sum = (k: 'syncs' | 'bytesWritten') => deltas.reduce((s, x) => s + x[k], 0);
    storage = {
      leaderSyncsPerOp: round(leader.syncs / ops, 5),
      leaderBytesWrittenPerOp: round(leader.bytesWritten / ops, 1),
      clusterSyncsPerOp: round(sum('syncs') / ops, 5),
      clusterBytesWrittenPerOp: round(sum('bytesWritten') / ops, 1),
      leaderSyncsPerS: round(leader.syncs / windowS, 1),
      replicas: deltas,
    };
    batches = {
      commandsPerSlot: round(leader.commandsApplied / Math.max(1, leader.slotsApplied), 1),
      recordsPerSync: round(leader.appends / Math.max(1, leader.syncs), 1),
      slotsPerS: round(leader.slotsApplied / windowS, 1),
    };
  }
  const elapsed = Math.max(load.elapsedS, 1e-9);
  return {
    opsPerSec: Math.round(load.ops / elapsed),
    writesPerSec: Math.round(load.writes / elapsed),
    readsPerSec: Math.round(load.reads / elapsed),
    p50Ms: load.latency.p50Ms,
    p90Ms: load.latency.p90Ms,
    p99Ms: load.latency.p99Ms,
    p999Ms: load.latency.p999Ms,
    maxMs: load.latency.maxMs,
    errors: load.errors,
    errorsByCode: load.errorsByCode,
    ops: load.ops,
    writes: load.writes,
    reads: load.reads,
    readsFound: load.readsFound,
    laneWaits: load.laneWaits,
    elapsedS: round(load.elapsedS, 3),
    params: paramsForReport(p, load.parts),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      loadAvg1m: round(loadavg()[0] ?? 0, 2),
      note: 'the load generator shares the machine with the system under test',
      others: a?.machine && b?.machine ? othersBetween(a.machine, b.machine, new Set(b.processes.map((x) => x.pid))) : null,
    },
    latency: { all: load.latency, write: load.writeLatency, read: load.readLatency },
    processes,
    storage,
    batches,
    verify: load.verify,
    trace,
    traceError: trace ? null : traceError,
    timeline: load.timeline,
    measuredFromEpochMs: edges[0] ? performance.timeOrigin + edges[0].tMs : NaN,
    histogram: load.histogram,
  };
}

function round(x: number, digits: number): number {
  if (!Number.isFinite(x)) return NaN;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
