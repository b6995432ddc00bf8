// A cluster of real `synod start` processes on loopback, wired through the proxies of proxy.ts.
//
// Replica i listens for peers on P_i and for clients on H_i. Its --initial-cluster lists itself
// at P_i and every peer j at j's peer proxy Q_j; its --initial-http lists every peer j at the
// HTTP proxy R_ij. Clients talk to H_i directly (the clients are not partitioned: they play the
// part of Jepsen's control node, which reaches every replica).
//
// Every child is tracked; kill() is SIGKILL, pause() SIGSTOP, resume() SIGCONT, and a hook kills
// every child (paused ones included) when this process exits for any reason.
//
// Membership changes: the cluster is a pool of replica slots. Ids 1..size are the initial members;
// ids above are spares, each with its ports and proxies made up front (so every replica's
// --initial-http names every slot and can forward to whichever leads), started with --join when
// the nemesis adds one. Ids are never reused (SAFETY.md: a wiped replica never rejoins under its
// old identity). `members` is the harness's view of the configuration, reconciled from the
// leader's status after every change.
//
// Disk faults: with `diskFaults`, every replica runs with SYNOD_TEST_HOOKS=1 and a control file
// (SYNOD_TEST_DISK_FAULT, see src/cli/test-hooks.ts) that setDiskFault() writes.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { freePorts, MAIN_JS, trackChild } from '../../src/cli/cluster-procs.js';
import { LinkProxy, Network } from './proxy.js';
import type { StateDigestStatus } from '../../src/runtime/state-digests.js';
import type { RemovalNotice } from '../../src/core/types.js';

/** Often, so that a short run compares a few dozen digests (its state is small: each costs little). */
export const STATE_DIGEST_INTERVAL_SLOTS = 50;

const HOST = '127.0.0.1';
export interface ReplicaStatusView {
  id: number;
  role: string;
  leader: number | null;
  ballot: number;
  commitIndex: number;
  appliedIndex: number;
  snapshotIndex: number;
  kv: Record<string, number>;
  members: Array<{ id: number; member: boolean }>;
  /** The newest state digest and the peers that agree or differ at its slot (null before the first). */
  stateDigest: StateDigestStatus | null;
  /** Set once a member told this replica that it was removed while it was down (absent before session 23). */
  removal?: RemovalNotice | null;
}

export interface Replica {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  /** The binary client protocol's port (clients reach it directly, as they do the HTTP port). */
  readonly binaryPort: number;
  readonly proxyPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess | null;
  exited: Promise<void> | null;
  paused: boolean;
  starts: number;
  /** Not an initial member: started with --join. */
  readonly joiner: boolean;
  /** The disk fault control file (SYNOD_TEST_DISK_FAULT). */
  readonly diskFaultFile: string;
}

export interface ClusterOptions {
  /** Initial members. */
  size: number;
  /** Spare slots for replicas added during the run. */
  spares?: number;
  dir: string;
  network: Network;
  electionTimeoutMs?: number;
  logLevel?: string;
  /** Run the replicas with the disk fault hook. */
  diskFaults?: boolean;
  /** A planted protocol bug (src/core/options.ts PlantedBug) for every replica: tests only. */
  plantedBug?: string;
}

export class Cluster {
  /** Every slot, initial and spare: replicas[id - 1]. */
  readonly replicas: Replica[] = [];
  /** The configuration, as the harness last learned it. */
  members: number[] = [];
  private nextSpare: number;
  private readonly proxies: LinkProxy[] = [];
  private readonly httpProxyPorts = new Map<string, number>();

  private constructor(private readonly o: ClusterOptions) {
    this.nextSpare = o.size + 1;
  }

  static async create(o: ClusterOptions): Promise<Cluster> {
    if (o.size < 1 || o.size > 9) throw new Error(`cluster size must be 1..9, got ${o.size}`);
    const spares = o.spares ?? 0;
    if (!Number.isInteger(spares) || spares < 0 || spares > 24) throw new Error(`spares must be 0..24, got ${spares}`);
    const c = new Cluster(o);
    const n = o.size + spares;
    const ports = await freePorts(4 * n + n * (n - 1), HOST);
    let k = 0;
    for (let id = 1; id <= n; id++) {
      const dataDir = join(o.dir, 'data', `replica-${id}`);
      mkdirSync(dataDir, { recursive: true });
      c.replicas.push({
        id,
        peerPort: ports[k++]!,
        httpPort: ports[k++]!,
        binaryPort: ports[k++]!,
        proxyPort: ports[k++]!,
        dataDir,
        logFile: join(o.dir, `replica-${id}.log`),
        child: null,
        exited: null,
        paused: false,
        starts: 0,
        joiner: id > o.size,
        diskFaultFile: join(o.dir, `disk-fault-${id}`),
      });
    }
    c.members = c.replicas.filter((r) => !r.joiner).map((r) => r.id);
    for (const r of c.replicas) {
      c.proxies.push(new LinkProxy({ network: o.network, listenPort: r.proxyPort, targetPort: r.peerPort, to: r.id, bothWays: false }));
      for (const s of c.replicas) {
        if (s.id === r.id) continue;
        const port = ports[k++]!;
        c.httpProxyPorts.set(`${s.id}>${r.id}`, port);
        c.proxies.push(new LinkProxy({ network: o.network, listenPort: port, targetPort: r.httpPort, from: s.id, to: r.id, bothWays: true }));
      }
    }
    await Promise.all(c.proxies.map((p) => p.start()));
    return c;
  }

  /** The current members (the harness's view). */
  get ids(): number[] {
    return [...this.members].sort((a, b) => a - b);
  }

  get initialSize(): number {
    return this.o.size;
  }

  /** Every replica with a live process (members, and a removed one not yet stopped). */
  get runningIds(): number[] {
    return this.replicas.filter((r) => r.child !== null).map((r) => r.id);
  }

  /** A fresh slot for a replica to add, or null when the pool is used up. */
  takeSpare(): Replica | null {
    if (this.nextSpare > this.replicas.length) return null;
    return this.replica(this.nextSpare++);
  }

  hasSpare(): boolean {
    return this.nextSpare <= this.replicas.length;
  }

  /** The address others must use for a replica's peer port (its proxy). */
  peerAddressOf(id: number): string {
    return `${HOST}:${this.replica(id).proxyPort}`;
  }

  /** Fill (ENOSPC) or break (EIO) a replica's disk, or clear the fault (null). */
  setDiskFault(id: number, mode: 'ENOSPC' | 'EIO' | null): void {
    if (!this.o.diskFaults) throw new Error('the cluster was made without disk faults');
    writeFileSync(this.replica(id).diskFaultFile, mode ?? '');
  }

  replica(id: number): Replica {
    const r = this.replicas[id - 1];
    if (!r) throw new Error(`no replica ${id}`);
    return r;
  }

  endpoint(id: number): string {
    return `http://${HOST}:${this.replica(id).httpPort}`;
  }

  /** A replica's binary protocol address, "host:port" (src/kv/client.ts). */
  binaryEndpoint(id: number): string {
    return `${HOST}:${this.replica(id).binaryPort}`;
  }

  argsOf(r: Replica): string[] {
    // Every replica, a joiner too, lists the initial members, as an operator who knows the
    // cluster's first day would. A joiner reaches a leader added later through the address that
    // leader's hello names: --advertise-peer, its proxy, so that partitions hold for it too.
    // (Until session 21 a joiner whose leader was itself added later never caught up, seed
    // 823765660, and the harness listed the current members instead: docs/testing.md, "Findings".)
    const listed = this.replicas.filter((s) => !s.joiner);
    const cluster = listed.map((s) => `${s.id}=${HOST}:${s.id === r.id ? s.peerPort : s.proxyPort}`).join(',');
    const httpMap = this.replicas.filter((s) => s.id !== r.id).map((s) => `${s.id}=${HOST}:${this.httpProxyPorts.get(`${r.id}>${s.id}`)}`).join(',');
    const args = [
      MAIN_JS, 'start',
      '--id', String(r.id),
      '--cluster-id', 'jepsen',
      '--data', r.dataDir,
      '--peer', `${HOST}:${r.peerPort}`,
      '--advertise-peer', this.peerAddressOf(r.id),
      '--http', `${HOST}:${r.httpPort}`,
      '--initial-cluster', cluster,
      '--log-level', this.o.logLevel ?? 'info',
    ];
    if (httpMap) args.push('--initial-http', httpMap);
    // Binary clients are not partitioned (as HTTP clients are not): a NOT_LEADER hint names the
    // leader's own binary port.
    args.push('--binary', this.binaryEndpoint(r.id), '--initial-binary', this.replicas.map((s) => `${s.id}=${this.binaryEndpoint(s.id)}`).join(','));
    if (r.joiner) args.push('--join', '--peer', `${HOST}:${r.peerPort}`);
    if (this.o.electionTimeoutMs) args.push('--election-timeout-ms', String(this.o.electionTimeoutMs));
    // State digests every STATE_DIGEST_INTERVAL_SLOTS slots: the run fails on any divergence they find (run.ts).
    args.push('--state-digest-interval-slots', String(STATE_DIGEST_INTERVAL_SLOTS));
    return args;
  }

  /** The command line of one replica, for the report. */
  commandOf(id: number): string {
    return ['node', ...this.argsOf(this.replica(id))].join(' ');
  }

  start(id: number): void {
    const r = this.replica(id);
    if (r.child) throw new Error(`replica ${id} is already running`);
    const fd = openSync(r.logFile, 'a');
    writeSync(fd, `${JSON.stringify({ harness: 'start', id, at: new Date().toISOString(), start: r.starts + 1 })}\n`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (this.o.diskFaults || this.o.plantedBug) env.SYNOD_TEST_HOOKS = '1';
    if (this.o.diskFaults) env.SYNOD_TEST_DISK_FAULT = r.diskFaultFile;
    if (this.o.plantedBug) env.SYNOD_PLANTED_BUG = this.o.plantedBug;
    const child = spawn(process.execPath, this.argsOf(r), { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    trackChild(child);
    r.child = child;
    r.paused = false;
    r.starts++;
    r.exited = new Promise((resolve) => {
      child.once('exit', () => {
        if (r.child === child) r.child = null;
        resolve();
      });
    });
  }

  /** Start every member. */
  startAll(): void {
    for (const id of this.members) this.start(id);
  }

  running(id: number): boolean {
    return this.replica(id).child !== null;
  }

  /** SIGKILL (a crash: nothing is flushed that was not already synced). */
  async kill(id: number): Promise<void> {
    const r = this.replica(id);
    if (!r.child) return;
    const exited = r.exited;
    r.child.kill('SIGKILL');
    r.paused = false;
    await exited;
  }

  pause(id: number): void {
    const r = this.replica(id);
    if (!r.child || r.paused) return;
    r.child.kill('SIGSTOP');
    r.paused = true;
  }

  resume(id: number): void {
    const r = this.replica(id);
    if (!r.child || !r.paused) return;
    r.child.kill('SIGCONT');
    r.paused = false;
  }

  /** Kill every replica and close the proxies. */
  async destroy(): Promise<void> {
    await Promise.all(this.replicas.map((r) => this.kill(r.id)));
    await Promise.all(this.proxies.map((p) => p.close()));
  }

  /** GET /v1/status of one replica, or null (down, paused, slow). */
  async status(id: number, timeoutMs = 1_000): Promise<ReplicaStatusView | null> {
    const r = this.replica(id);
    if (!r.child || r.paused) return null;
    const a = await httpRequest(this.endpoint(id), 'GET', '/v1/status', undefined, timeoutMs).catch(() => null);
    if (!a || a.status !== 200) return null;
    try {
      return JSON.parse(a.body) as ReplicaStatusView;
    } catch {
      return null;
    }
  }

  /** The replica that says it leads (the highest ballot if several do), or null. */
  async leader(): Promise<number | null> {
    return (await this.leaderStatus())?.id ?? null;
  }

  /** The status of the replica that says it leads (the highest ballot if several do), or null. */
  async leaderStatus(): Promise<ReplicaStatusView | null> {
    const all = await Promise.all(this.runningIds.map((id) => this.status(id)));
    let best: ReplicaStatusView | null = null;
    for (const s of all) if (s && s.role === 'leader' && (!best || s.ballot > best.ballot)) best = s;
    return best;
  }

  /**
   * Learn the configuration from the leader (the highest ballot), then start every member that is
   * not running and stop every running replica that is not a member. Returns the members, or
   * null when no leader answered (nothing changed).
   */
  async reconcile(): Promise<number[] | null> {
    const st = await this.leaderStatus();
    if (!st) return null;
    const members = st.members.filter((m) => m.member).map((m) => m.id).sort((a, b) => a - b);
    if (members.length === 0 || members.some((id) => id < 1 || id > this.replicas.length)) return null;
    this.members = members;
    for (const id of members) if (!this.running(id)) this.start(id);
    await Promise.all(this.runningIds.filter((id) => !members.includes(id)).map((id) => this.kill(id)));
    return members;
  }
}

export interface HttpAnswer {
  status: number;
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30_000 });

/**
 * One HTTP request on loopback. Rejects with the socket error (its `code` tells a refused
 * connection from one that broke after sending) or with a timeout error (code 'ETIMEDOUT').
 */
export function httpRequest(base: string, method: string, path: string, body: string | undefined, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, agent, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}
