// The load generator in a worker thread: the same runLoad() as in-process, over the binary
// protocol (or etcd's gateway), reporting to the parent by messages:
//   parent -> worker: workerData { params, endpoints }; 'stop' (SIGINT)
//   worker -> parent: {type:'progress', ops, errors, elapsedS}, {type:'measure', edge} (the parent
//                     answers {type:'measured'} once it has sampled), {type:'done', result} | {type:'error', message}

import { parentPort, workerData } from 'node:worker_threads';
import { runLoad } from './load.js';
import type { BenchParams } from './params.js';
import { BinaryTarget, EtcdTarget, type Target } from './targets.js';

export interface LoadWorkerData {
  params: BenchParams;
  endpoints: string[];
}

const port = parentPort;
if (!port) throw new Error('load-worker.js runs as a worker thread');
const { params, endpoints } = workerData as LoadWorkerData;
let stop = false;
let measured: (() => void) | null = null;
port.on('message', (m: { type: string }) => {
  if (m.type === 'stop') stop = true;
  if (m.type === 'measured') measured?.();
});
const target: Target = params.mode === 'etcd' ? new EtcdTarget(endpoints, params.clients * params.inflight) : new BinaryTarget(endpoints, params.connections, params.consistency === 'local' && params.readRatio > 0);
try {
  const result = await runLoad(params, target, {
    stopRequested: () => stop,
    onProgress: (ops, errors, elapsedS) => port.postMessage({ type: 'progress', ops, errors, elapsedS }),
    onMeasure: (edge) =>
      new Promise<void>((resolve) => {
        measured = resolve;
        port.postMessage({ type: 'measure', edge });
      }),
  });
  port.postMessage({ type: 'done', result });
} catch (e) {
  port.postMessage({ type: 'error', message: (e as Error).stack ?? String(e) });
} finally {
  target.close();
}
