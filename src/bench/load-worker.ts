// The load generator in a worker thread: one part of the load (./load.ts, splitLoad) through
// runLoadPart(), over the binary protocol (or etcd's gateway), reporting to the parent by messages:
//   parent -> worker: workerData { params, endpoints, part }; 'stop' (SIGINT); {type:'measured', edge}
//   worker -> parent: {type:'progress', ops, errors, elapsedS}, {type:'interval', report} (a timeline
//                     interval), {type:'measure', edge} (the parent answers {type:'measured', edge}
//                     once every worker has asked and it has sampled), {type:'done', result} |
//                     {type:'error', message}

import { parentPort, workerData } from 'node:worker_threads';
import { runLoadPart, type LoadPart } from './load.js';
import type { BenchParams } from './params.js';
import { BinaryTarget, EtcdTarget, type Target } from './targets.js';

export interface LoadWorkerData {
  params: BenchParams;
  endpoints: string[];
  part: LoadPart;
}

const port = parentPort;
if (!port) throw new Error('load-worker.js runs as a worker thread');
const { params, endpoints, part } = workerData as LoadWorkerData;
let stop = false;
const measured = new Map<string, () => void>();
port.on('message', (m: { type: string; edge?: string }) => {
  if (m.type === 'stop') stop = true;
  if (m.type === 'measured') {
    measured.get(m.edge!)?.();
    measured.delete(m.edge!);
  }
});
const target: Target =
  params.mode === 'etcd' ? new EtcdTarget(endpoints, part.laneCount) : new BinaryTarget(endpoints, part.connections, params.consistency === 'local' && params.readRatio > 0, part.connectionStart);
try {
  const result = await runLoadPart(params, target, part, {
    stopRequested: () => stop,
    onProgress: (ops, errors, elapsedS) => port.postMessage({ type: 'progress', ops, errors, elapsedS }),
    onInterval: (report) => port.postMessage({ type: 'interval', report }),
    onMeasure: (edge) =>
      new Promise<void>((resolve) => {
        measured.set(edge, resolve);
        port.postMessage({ type: 'measure', edge });
      }),
  });
  port.postMessage({ type: 'done', result });
} catch (e) {
  port.postMessage({ type: 'error', message: (e as Error).stack ?? String(e) });
} finally {
  target.close();
}
