// A cluster of real `synod start` processes on loopback, wired through the proxies of proxy.ts.
//
// Replica i listens for peers on P_i and for clients on H_i. Its --initial-cluster lists itself
// at P_i and every peer j at j's peer proxy Q_j; its --initial-http lists every peer j at the
// HTTP proxy R_ij. Clients talk to H_i directly (the clients are not partitioned: they play the
// part of Jepsen's control node, which reaches every replica).
//
// Every child is tracked; kill() is SIGKILL, pause() SIGSTOP, resume() SIGCONT, and a hook kills
// every child (paused ones included) when this process exits for any reason.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { freePorts, MAIN_JS, trackChild } from '../../src/cli/cluster-procs.js';
import { LinkProxy, Network } from './proxy.js';

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
}

export interface Replica {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly proxyPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess | null;
  exited: Promise<void> | null;
  paused: boolean;
  starts: number;
}

export interface ClusterOptions {
  size: number;
  dir: string;
  network: Network;
  electionTimeoutMs?: number;
  logLevel?: string;
}

export class Cluster {
  readonly replicas: Replica[] = [];
  private readonly proxies: LinkProxy[] = [];
  private readonly httpProxyPorts = new Map<string, number>();

  private constructor(private readonly o: ClusterOptions) {}

  static async create(o: ClusterOptions): Promise<Cluster> {
    if (o.size < 1 || o.size > 9) throw new Error(`cluster size must be 1..9, got ${o.size}`);
    const c = new Cluster(o);
    const n = o.size;
    const ports = await freePorts(3 * n + n * (n - 1), HOST);
    let k = 0;
    for (let id = 1; id <= n; id++) {
      const dataDir = join(o.dir, 'data', `replica-${id}`);
      mkdirSync(dataDir, { recursive: true });
      c.replicas.push({
        id,
        peerPort: ports[k++]!,
        httpPort: ports[k++]!,
        proxyPort: ports[k++]!,
        dataDir,
        logFile: join(o.dir, `replica-${id}.log`),
        child: null,
        exited: null,
        paused: false,
        starts: 0,
      });
    }
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

  get ids(): number[] {
    return this.replicas.map((r) => r.id);
  }

  replica(id: number): Replica {
    const r = this.replicas[id - 1];
    if (!r) throw new Error(`no replica ${id}`);
    return r;
  }

  endpoint(id: number): string {
    return `http://${HOST}:${this.replica(id).httpPort}`;
  }

  argsOf(r: Replica): string[] {
    const cluster = this.replicas.map((s) => `${s.id}=${HOST}:${s.id === r.id ? s.peerPort : s.proxyPort}`).join(',');
    const httpMap = this.replicas.filter((s) => s.id !== r.id).map((s) => `${s.id}=${HOST}:${this.httpProxyPorts.get(`${r.id}>${s.id}`)}`).join(',');
    const args = [
      MAIN_JS, 'start',
      '--id', String(r.id),
      '--cluster-id', 'jepsen',
      '--data', r.dataDir,
      '--peer', `${HOST}:${r.peerPort}`,
      '--http', `${HOST}:${r.httpPort}`,
      '--initial-cluster', cluster,
      '--log-level', this.o.logLevel ?? 'info',
    ];
    if (httpMap) args.push('--initial-http', httpMap);
    if (this.o.electionTimeoutMs) args.push('--election-timeout-ms', String(this.o.electionTimeoutMs));
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
    const child = spawn(process.execPath, this.argsOf(r), { stdio: ['ignore', fd, fd] });
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

  startAll(): void {
    for (const r of this.replicas) this.start(r.id);
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
    const all = await Promise.all(this.ids.map((id) => this.status(id)));
    let best: ReplicaStatusView | null = null;
    for (const s of all) if (s && s.role === 'leader' && (!best || s.ballot > best.ballot)) best = s;
    return best ? best.id : null;
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
