// The parameters of one benchmark run, in the style of etcd's `benchmark` tool: every one named
// with its unit, validated in one place (validateBenchParams), with a small CI value beside the
// real default (STYLE.md: benchmarks with a small CI setting and a large real one never rot).

export type BenchMode = 'inproc' | 'procs' | 'etcd';
export type BenchStorage = 'file' | 'memory' | 'pmem';
export type BenchConsistency = 'linearizable' | 'lease' | 'local';
/** How the load reaches the leader in --inproc: its propose()/read() calls, or the binary protocol over loopback. */
export type BenchVia = 'direct' | 'binary';

export interface BenchParams {
  mode: BenchMode;
  replicas: number;
  /** Closed loop: independent clients, each with `inflight` requests outstanding. */
  clients: number;
  inflight: number;
  /** Binary connections (KvClients) shared by the clients, round robin. */
  connections: number;
  keyBytes: number;
  valueBytes: number;
  keySpace: number;
  /** Stop after this many measured operations (0: run for durationS). */
  totalOps: number;
  durationS: number;
  /** Operations before the measured window (not counted, not timed). */
  warmupS: number;
  /** 0 writes only .. 1 reads only. */
  readRatio: number;
  consistency: BenchConsistency;
  storage: BenchStorage;
  /** Open loop: issue this many operations per second (0: closed loop). */
  rateOpsPerS: number;
  via: BenchVia;
  /** Read every acknowledged write back after the run (at most verifyKeysMax keys). */
  verify: boolean;
  verifyKeysMax: number;
  /** Stage timings (installs wrappers in the replicas; off: nothing installed). */
  trace: boolean;
  /** etcd client endpoints (mode etcd), host:port,... */
  etcdEndpoints: string[];
  /** Leader election timeout of the replicas. */
  electionTimeoutMs: number;
  /**
   * Worker threads generating the load, each with its own connections and a disjoint share of the
   * lanes (0: the default of loadWorkersOf() in ./load.ts: 2 for local reads, else 1).
   */
  loadWorkers: number;
  /**
   * Extra flags for every `synod start` of the multi-process mode (a setting's effect measured
   * with the same load, e.g. ['--snapshot-interval-bytes', '134217728']). The flags the bench sets
   * itself (RESERVED_REPLICA_FLAGS) are refused: a cluster wired otherwise would not be the one measured.
   */
  replicaArgs: string[];
}

/** Flags of `synod start` that the bench sets for each replica (src/cli/cluster-procs.ts, src/bench/cluster.ts). */
export const RESERVED_REPLICA_FLAGS = ['--id', '--cluster-id', '--data', '--peer', '--http', '--binary', '--initial-cluster', '--initial-http', '--initial-binary', '--log-level', '--election-timeout-ms', '--log-backend'];
/** The bench's own flag for a reserved one, where it has one. */
const BENCH_FLAG_FOR: Record<string, string> = { '--log-backend': '--storage', '--election-timeout-ms': "the bench's --election-timeout-ms" };

export const BENCH_DEFAULTS: BenchParams = {
  mode: 'procs',
  replicas: 3,
  clients: 16,
  inflight: 64,
  connections: 16,
  keyBytes: 16,
  valueBytes: 64,
  keySpace: 100_000,
  totalOps: 0,
  durationS: 10,
  warmupS: 1,
  readRatio: 0,
  consistency: 'linearizable',
  storage: 'file',
  rateOpsPerS: 0,
  via: 'direct',
  verify: true,
  verifyKeysMax: 20_000,
  trace: false,
  etcdEndpoints: [],
  electionTimeoutMs: 300,
  loadWorkers: 0,
  replicaArgs: [],
};

/** The CI setting: a few hundred operations, seconds of wall time. */
export const BENCH_CI: Partial<BenchParams> = { clients: 4, inflight: 8, connections: 2, keySpace: 1_000, totalOps: 400, durationS: 10, warmupS: 0 };

export const KEY_SPACE_MAX = 10_000_000;
/** The most worker threads --load-workers accepts. */
export const LOAD_WORKERS_MAX = 64;
export const LANES_MAX = 65_536;

export class BenchParamError extends Error {
  readonly code = 'SYNOD_BENCH_PARAM';
}

export function validateBenchParams(p: BenchParams): BenchParams {
  const int = (name: keyof BenchParams, lo: number, hi: number) => {
    const v = p[name] as number;
    if (!Number.isInteger(v) || v < lo || v > hi) throw new BenchParamError(`${name} must be an integer ${lo}..${hi}, got ${v}`);
  };
  if (!['inproc', 'procs', 'etcd'].includes(p.mode)) throw new BenchParamError(`mode must be inproc, procs or etcd, got ${p.mode}`);
  if (p.replicas !== 3 && p.replicas !== 5) throw new BenchParamError(`replicas must be 3 or 5, got ${p.replicas}`);
  int('clients', 1, 4096);
  int('inflight', 1, 4096);
  int('connections', 1, 1024);
  if (p.clients * p.inflight > LANES_MAX) throw new BenchParamError(`clients × inflight must be at most ${LANES_MAX}, got ${p.clients * p.inflight}`);
  int('keyBytes', 8, 1024);
  int('valueBytes', 8, 1 << 20);
  int('keySpace', 1, KEY_SPACE_MAX);
  int('totalOps', 0, 1e12);
  if (!(p.durationS > 0 && p.durationS <= 3600)) throw new BenchParamError(`durationS must be in (0, 3600], got ${p.durationS}`);
  if (!(p.warmupS >= 0 && p.warmupS <= 600)) throw new BenchParamError(`warmupS must be in [0, 600], got ${p.warmupS}`);
  if (!(p.readRatio >= 0 && p.readRatio <= 1)) throw new BenchParamError(`readRatio must be in [0, 1], got ${p.readRatio}`);
  if (!['linearizable', 'lease', 'local'].includes(p.consistency)) throw new BenchParamError(`consistency must be linearizable, lease or local, got ${p.consistency}`);
  if (!['file', 'memory', 'pmem'].includes(p.storage)) throw new BenchParamError(`storage must be file, memory or pmem, got ${p.storage}`);
  if (!(p.rateOpsPerS >= 0 && p.rateOpsPerS <= 1e8)) throw new BenchParamError(`rateOpsPerS must be in [0, 1e8], got ${p.rateOpsPerS}`);
  if (p.via !== 'direct' && p.via !== 'binary') throw new BenchParamError(`via must be direct or binary, got ${p.via}`);
  int('verifyKeysMax', 0, KEY_SPACE_MAX);
  int('electionTimeoutMs', 50, 60_000);
  int('loadWorkers', 0, LOAD_WORKERS_MAX);
  if (p.loadWorkers > 1 && p.mode === 'inproc' && p.via === 'direct') throw new BenchParamError('loadWorkers > 1 needs a load over the network: --inproc --via direct calls the leader in this thread');
  if (p.replicaArgs.length > 0) {
    if (p.mode !== 'procs') throw new BenchParamError(`replicaArgs are flags of \`synod start\`: they need the multi-process mode, not ${p.mode}`);
    if (!p.replicaArgs[0]!.startsWith('--')) throw new BenchParamError(`replicaArgs must start with a flag (--name), got ${JSON.stringify(p.replicaArgs[0])}`);
    for (const a of p.replicaArgs) {
      const flag = a.split('=')[0]!;
      if (!RESERVED_REPLICA_FLAGS.includes(flag)) continue;
      const instead = BENCH_FLAG_FOR[flag];
      throw new BenchParamError(`replicaArgs cannot set ${flag}: the bench sets it for each replica${instead ? ` (use ${instead})` : ''}`);
    }
  }
  if (p.mode === 'etcd' && p.etcdEndpoints.length === 0) throw new BenchParamError('mode etcd needs --etcd-endpoints host:port,...');
  if (p.mode === 'etcd' && p.consistency === 'lease') throw new BenchParamError('etcd has no lease reads: use linearizable (etcd "l") or local (etcd "s", serializable)');
  return p;
}

/** The parameters as printed in --json (what makes two runs comparable); loadWorkers as resolved. */
export function paramsForReport(p: BenchParams, loadWorkers: number): Record<string, unknown> {
  const { etcdEndpoints: _e, ...rest } = p;
  return { ...rest, lanes: p.clients * p.inflight, loadWorkers };
}
