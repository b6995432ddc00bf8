// The system under test: replicas in this process (KvNodes over the in-memory transport), or
// `synod start` child processes on loopback (ProcCluster: TCP, the chosen log backend), or an
// external etcd. One interface for what the report needs: endpoints, a leader, per-process CPU
// and memory, per-replica log counters, stage timings.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcCluster } from '../cli/cluster-procs.js';
import { electionCore } from '../cli/start.js';
import { encodeQuery } from '../kv/codec.js';
import { KvNode } from '../kv/node.js';
import type { PeerAddress } from '../runtime/api.js';
import type { SynodReplica } from '../runtime/replica.js';
import { MemoryNetwork } from '../transport/memory.js';
import type { BenchParams } from './params.js';
import { StageTracer, type TraceReport } from './trace.js';
import { CLK_TCK, procStat } from './machine-others.js';

const LEADER_WAIT_MS = 20_000;
const PROBE_URL = new URL('./probe.js', import.meta.url);

export interface ProcessSample {
  name: string;
  pid: number;
  cpuS: number;
  rssBytes: number;
  /** Peak resident set size so far. */
  rssPeakBytes: number;
  /** Replicas: their event loop's delay since the measured window started (the probe's). */
  loopDelay?: LoopDelay;
}

/** How late a 1 ms timer fired in a process's event loop (perf_hooks.monitorEventLoopDelay). */
export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ReplicaCounters {
  id: number;
  role: string;
  appends: number;
  commits: number;
  syncs: number;
  bytesWritten: number;
  slotsApplied: number;
  commandsApplied: number;
  /** State digests made and peers' digests found different, since the replica started (not per window). */
  stateDigests: number;
  stateDigestsSkipped: number;
  stateDigestMismatches: number;
}

export interface BenchCluster {
  /** Binary protocol endpoints ("host:port"), leader first; empty for in-process direct load. */
  endpoints: string[];
  /** In-process only: the leader replica now. */
  leader: (() => SynodReplica) | null;
  processes(): ProcessSample[];
  counters(): ReplicaCounters[];
  traceReset(): void;
  /** The leader's stage timings (null: tracing off or unavailable, see traceError). */
  traceReport(): TraceReport | null;
  traceError: string | null;
  dataDir: string | null;
  close(): Promise<void>;
}

const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

/** CPU seconds and memory of a process from /proc (Linux). */
export function sampleProcess(name: string, pid: number): ProcessSample {
  try {
    const cpuS = procStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).ticks / CLK_TCK; // utime + stime
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { name, pid, cpuS, rssBytes: kb('VmRSS'), rssPeakBytes: kb('VmHWM') };
  } catch {
    return { name, pid, cpuS: NaN, rssBytes: NaN, rssPeakBytes: NaN };
  }
}

function selfSample(name: string): ProcessSample {
  const u = process.cpuUsage();
  const s = sampleProcess(name, process.pid);
  return { name, pid: process.pid, cpuS: (u.user + u.system) / 1e6, rssBytes: process.memoryUsage().rss, rssPeakBytes: Number.isFinite(s.rssPeakBytes) ? s.rssPeakBytes : process.resourceUsage().maxRSS * 1024 };
}

function countersOf(replica: SynodReplica): ReplicaCounters {
  return countersRow(replica.id, replica.status().role, replica.counters());
}

/** The bench's row of a replica's counters (SynodReplica.counters(), here or read from a probe file). */
function countersRow(id: number, role: string, c: ProbeFile['counters']): ReplicaCounters {
  const { log } = c;
  return { id, role, appends: log.appends, commits: log.commits, syncs: log.syncs, bytesWritten: log.bytesWritten, slotsApplied: c.slotsApplied, commandsApplied: c.commandsApplied, stateDigests: c.stateDigests, stateDigestsSkipped: c.stateDigestsSkipped, stateDigestMismatches: c.stateDigestMismatches };
}

// ---------------------------------------------------------------- in process

export async function startInproc(p: BenchParams): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-'));
  const network = new MemoryNetwork();
  const members = new Map(Array.from({ length: p.replicas }, (_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
  const httpAddrs = new Map<number, PeerAddress>();
  const binAddrs = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  const binary = p.via === 'binary';
  try {
    for (let id = 1; id <= p.replicas; id++) {
      httpAddrs.set(id, { host: '127.0.0.1', port: 0 });
      const node = await KvNode.start({
        id,
        clusterId: 'synod-bench',
        dataDir: join(dir, `r${id}`),
        members,
        httpAddresses: httpAddrs,
        binary: binary ? { host: '127.0.0.1', port: 0 } : undefined,
        binaryAddresses: binAddrs,
        transport: network.createTransport({ replicaId: id }),
        logBackend: p.storage,
        valueBytesMax: Math.max(p.valueBytes, 1024),
        core: electionCore(p.electionTimeoutMs),
      });
      httpAddrs.set(id, node.http.address());
      if (node.binary) binAddrs.set(id, node.binary.address());
      nodes.push(node);
    }
  } catch (e) {
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const closeAll = async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  };
  let leaderNode: KvNode;
  try {
    leaderNode = await waitInprocLeader(nodes);
  } catch (e) {
    await closeAll();
    throw e;
  }
  // isLeader() is cheap (status() builds a whole report): check per operation, follow a new leader.
  let current = leaderNode.replica;
  const leader = () => {
    if (!current.isLeader()) current = nodes.find((n) => n.replica.isLeader())?.replica ?? current;
    return current;
  };
  // Every replica is traced: leadership may move during the run (the report takes the replica
  // that served the most proposals, i.e. the leader of most of the window).
  let tracers: StageTracer[] = [];
  let traceError: string | null = null;
  if (p.trace) {
    try {
      tracers = nodes.map((n) => new StageTracer(n.replica));
    } catch (e) {
      for (const t of tracers) t.uninstall();
      tracers = [];
      traceError = (e as Error).message;
    }
  }
  const busiest = () => tracers.map((t) => t.report()).sort((a, b) => b.stages.server.count - a.stages.server.count)[0] ?? null;
  const order = [leaderNode, ...nodes.filter((n) => n !== leaderNode)];
  return {
    endpoints: binary ? order.map((n) => `127.0.0.1:${n.binary!.address().port}`) : [],
    leader,
    processes: () => [selfSample(binary ? `bench (${p.replicas} replicas; load in a worker thread)` : `bench (${p.replicas} replicas + load)`)],
    counters: () => nodes.map((n) => countersOf(n.replica)),
    traceReset: () => tracers.forEach((t) => t.reset()),
    traceReport: busiest,
    get traceError() {
      return traceError;
    },
    dataDir: dir,
    close: async () => {
      for (const t of tracers) t.uninstall();
      await closeAll();
    },
  };
}

async function waitInprocLeader(nodes: KvNode[]): Promise<KvNode> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  while (Date.now() < deadline) {
    const l = nodes.find((x) => x.replica.status().role === 'leader');
    if (l) {
      try {
        await l.replica.read(encodeQuery({ op: 'get', key: new TextEncoder().encode('bench/leader') }), { consistency: 'linearizable' });
        if (nodes.every((x) => x.replica.status().leader === l.replica.id)) return l;
      } catch {
        // not ready yet
      }
    }
    await sleep(20);
  }
  throw new Error(`no leader among ${nodes.length} in-process replicas after ${LEADER_WAIT_MS} ms`);
}

// ---------------------------------------------------------------- child processes

interface ProbeFile {
  pid: number;
  id: number;
  role: string;
  tMs: number;
  counters: { slotsApplied: number; commandsApplied: number; stateDigests: number; stateDigestsSkipped: number; stateDigestMismatches: number; log: { appends: number; commits: number; syncs: number; bytesWritten: number } };
  trace: TraceReport | null;
  traceError: string | null;
  loopDelay?: LoopDelay;
}

export async function startProcs(p: BenchParams, onSignalCleanup: (cleanup: () => Promise<void>) => void): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-'));
  // SYNOD_BENCH_KEEP_LOGS=<dir>: the replicas log at info (role changes too) and their logs are
  // copied there when the bench ends, to explain a stall in a long run.
  const keepLogs = process.env.SYNOD_BENCH_KEEP_LOGS;
  const cluster = await ProcCluster.create({ size: p.replicas, dataDir: dir, binary: true, electionTimeoutMs: p.electionTimeoutMs, logLevel: keepLogs ? 'info' : 'warn', clusterId: 'synod-bench', extraArgs: ['--log-backend', p.storage, ...p.replicaArgs] });
  // Probe files go to memory (/dev/shm) when there is one: a rename on the data disk's file system
  // can wait behind the log's fdatasync journal commits and stall the replica's event loop.
  const probeDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/synod-bench-probe-') : dir;
  const closeAll = async () => {
    await cluster.stopAll(3_000);
    if (keepLogs) {
      mkdirSync(keepLogs, { recursive: true });
      for (const r of cluster.replicas) if (existsSync(r.logFile)) copyFileSync(r.logFile, join(keepLogs, basename(r.logFile)));
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(probeDir, { recursive: true, force: true });
  };
  onSignalCleanup(closeAll);
  // The probe rides in through NODE_OPTIONS, set only while the children are spawned.
  const saved = { options: process.env.NODE_OPTIONS, dir: process.env.SYNOD_BENCH_PROBE_DIR, trace: process.env.SYNOD_BENCH_TRACE };
  process.env.NODE_OPTIONS = `${saved.options ?? ''} --import=${PROBE_URL.href}`.trim();
  process.env.SYNOD_BENCH_PROBE_DIR = probeDir;
  process.env.SYNOD_BENCH_TRACE = p.trace ? '1' : '0';
  try {
    cluster.startAll();
  } finally {
    restoreEnv('NODE_OPTIONS', saved.options);
    restoreEnv('SYNOD_BENCH_PROBE_DIR', saved.dir);
    restoreEnv('SYNOD_BENCH_TRACE', saved.trace);
  }
  const probe = (id: number): ProbeFile | null => {
    const f = join(probeDir, `probe-${id}.json`);
    try {
      return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as ProbeFile) : null;
    } catch {
      return null;
    }
  };
  let leaderId: number;
  try {
    leaderId = await waitProcLeader(cluster);
  } catch (e) {
    await closeAll();
    throw e;
  }
  const order = [leaderId, ...cluster.replicas.map((r) => r.id).filter((id) => id !== leaderId)];
  const currentLeader = () => cluster.replicas.map((r) => probe(r.id)).find((x) => x?.role === 'leader')?.id ?? leaderId;
  return {
    endpoints: order.map((id) => `${cluster.binaryMap.get(id)!.host}:${cluster.binaryMap.get(id)!.port}`),
    leader: null,
    processes: () => [
      selfSample('bench (load generator)'),
      ...cluster.replicas
        .filter((r) => r.child?.pid)
        .map((r) => ({ ...sampleProcess(`replica ${r.id}${r.id === currentLeader() ? ' (leader)' : ''}`, r.child!.pid!), loopDelay: probe(r.id)?.loopDelay })),
    ],
    counters: () =>
      cluster.replicas.flatMap((r) => {
        const f = probe(r.id);
        if (!f) return [];
        return [countersRow(r.id, f.role, f.counters)];
      }),
    traceReset: () => {
      for (const r of cluster.replicas) r.child?.kill('SIGUSR2');
    },
    traceReport: () => probe(currentLeader())?.trace ?? null,
    get traceError() {
      return probe(currentLeader())?.traceError ?? null;
    },
    dataDir: dir,
    close: closeAll,
  };
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

function getStatus(addr: PeerAddress): Promise<{ role: string; leader: number | null; id: number } | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: addr.host, port: addr.port, path: '/v1/status', agent: false, timeout: 500 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null);
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

async function waitProcLeader(cluster: ProcCluster): Promise<number> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  while (Date.now() < deadline) {
    for (const r of cluster.replicas) if (!cluster.running(r.id)) throw cluster.exitedAtStart(r.id);
    const sts = await Promise.all(cluster.replicas.map((r) => getStatus(r.http)));
    const l = sts.find((s) => s?.role === 'leader');
    if (l && sts.every((s) => s?.leader === l.id)) return l.id;
    await sleep(50);
  }
  throw new Error(`no leader among the ${cluster.replicas.length} replicas after ${LEADER_WAIT_MS} ms`);
}

// ---------------------------------------------------------------- etcd (started elsewhere)

export function externalEtcd(p: BenchParams): BenchCluster {
  const pids = etcdPids();
  return {
    endpoints: p.etcdEndpoints,
    leader: null,
    processes: () => [selfSample('bench (load generator)'), ...pids.map((pid, i) => sampleProcess(`etcd member ${i + 1}`, pid))],
    counters: () => [],
    traceReset: () => {},
    traceReport: () => null,
    traceError: 'etcd: no stage timings',
    dataDir: null,
    close: async () => {},
  };
}

/** etcd's member pids when started by peers/etcd.sh (SYNOD_BENCH_ETCD_DIR holds its pid files). */
function etcdPids(): number[] {
  const dir = process.env.SYNOD_BENCH_ETCD_DIR;
  if (!dir) return [];
  return [1, 2, 3].flatMap((i) => {
    try {
      return [Number(readFileSync(join(dir, `m${i}.pid`), 'utf8').trim())];
    } catch {
      return [];
    }
  });
}

export const PROBE_PATH = fileURLToPath(PROBE_URL);
