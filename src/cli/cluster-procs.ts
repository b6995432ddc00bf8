// A local cluster of `synod start` child processes on loopback: for the demo and the
// integration tests. Every child is tracked and killed when this process exits, whatever the
// reason (the 'exit' hook kills synchronously; SIGINT/SIGTERM are the caller's to route to
// stopAll()).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PeerAddress } from '../runtime/api.js';
import { formatIdMap } from './config.js';
import { replicaNodeArgs } from './node-flags.js';

export const MAIN_JS = fileURLToPath(new URL('./main.js', import.meta.url));

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kill `child` with SIGKILL if this process exits first (no replica outlives a test or the demo). */
export function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Free loopback ports, all distinct (held open together while choosing). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, host, () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export interface ProcClusterOptions {
  size: number;
  dataDir: string;
  host?: string;
  clusterId?: string;
  electionTimeoutMs?: number;
  logLevel?: string;
  binary?: boolean;
  extraArgs?: string[];
}

export interface ReplicaProc {
  id: number;
  peer: PeerAddress;
  http: PeerAddress;
  binary?: PeerAddress;
  dataDir: string;
  logFile: string;
  child: ChildProcess | null;
  exited: Promise<number | null> | null;
}

export class ProcCluster {
  readonly replicas: ReplicaProc[] = [];
  readonly peerMap = new Map<number, PeerAddress>();
  readonly httpMap = new Map<number, PeerAddress>();
  readonly binaryMap = new Map<number, PeerAddress>();

  private constructor(private readonly o: ProcClusterOptions) {}

  static async create(o: ProcClusterOptions): Promise<ProcCluster> {
    const host = o.host ?? '127.0.0.1';
    const ports = await freePorts(o.size * (o.binary ? 3 : 2), host);
    const c = new ProcCluster(o);
    for (let i = 0; i < o.size; i++) {
      const id = i + 1;
      const peer = { host, port: ports[i * (o.binary ? 3 : 2)]! };
      const http = { host, port: ports[i * (o.binary ? 3 : 2) + 1]! };
      const binary = o.binary ? { host, port: ports[i * 3 + 2]! } : undefined;
      const dataDir = join(o.dataDir, `replica-${id}`);
      mkdirSync(dataDir, { recursive: true });
      c.replicas.push({ id, peer, http, binary, dataDir, logFile: join(o.dataDir, `replica-${id}.log`), child: null, exited: null });
      c.peerMap.set(id, peer);
      c.httpMap.set(id, http);
      if (binary) c.binaryMap.set(id, binary);
    }
    return c;
  }

  get endpoints(): string[] {
    return this.replicas.map((r) => `http://${r.http.host}:${r.http.port}`);
  }

  argsOf(r: ReplicaProc): string[] {
    const args = [
      MAIN_JS,
      'start',
      '--id', String(r.id),
      '--cluster-id', this.o.clusterId ?? 'synod-local',
      '--data', r.dataDir,
      '--peer', `${r.peer.host}:${r.peer.port}`,
      '--http', `${r.http.host}:${r.http.port}`,
      '--initial-cluster', formatIdMap(this.peerMap),
      '--initial-http', formatIdMap(this.httpMap),
      '--log-level', this.o.logLevel ?? 'info',
    ];
    if (r.binary) args.push('--binary', `${r.binary.host}:${r.binary.port}`, '--initial-binary', formatIdMap(this.binaryMap));
    if (this.o.electionTimeoutMs) args.push('--election-timeout-ms', String(this.o.electionTimeoutMs));
    return [...args, ...(this.o.extraArgs ?? [])];
  }

  start(id: number): void {
    const r = this.replicas[id - 1]!;
    if (r.child) throw new Error(`replica ${id} is already running`);
    const fd = openSync(r.logFile, 'a');
    // SYNOD_CHILD_NODE_ARGS: extra node flags for the replicas only (e.g. --cpu-prof for profiling).
    const nodeArgs = replicaNodeArgs((process.env.SYNOD_CHILD_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0));
    const child = spawn(process.execPath, [...nodeArgs, ...this.argsOf(r)], { stdio: ['ignore', fd, fd], env: { ...process.env } });
    closeSync(fd);
    trackChild(child);
    r.child = child;
    r.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (r.child === child) r.child = null;
        resolve(code ?? (signal ? -1 : null));
      });
    });
  }

  startAll(): void {
    for (const r of this.replicas) this.start(r.id);
  }

  /** SIGKILL: no clean-up at all (a crash). */
  async kill(id: number): Promise<void> {
    const r = this.replicas[id - 1]!;
    if (!r.child) return;
    const exited = r.exited;
    r.child.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(id: number, graceMs = 5_000): Promise<void> {
    const r = this.replicas[id - 1]!;
    if (!r.child) return;
    const child = r.child;
    const exited = r.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(graceMs = 5_000): Promise<void> {
    await Promise.all(this.replicas.map((r) => this.stop(r.id, graceMs)));
  }

  running(id: number): boolean {
    return this.replicas[id - 1]!.child !== null;
  }

  /**
   * Why replica `id` stopped at start: the last lines of its log (usually the usage error), so
   * that the message says it even when the log's directory is removed right after (the bench's).
   */
  exitedAtStart(id: number, tailLines = 5): Error {
    const r = this.replicas[id - 1]!;
    let tail = '';
    try {
      tail = readFileSync(r.logFile, 'utf8').trimEnd().split('\n').slice(-tailLines).join('\n');
    } catch {
      // no log: the message names the file anyway
    }
    return new Error(`replica ${id} exited at start (see ${r.logFile})${tail ? `:\n${tail}` : ''}`);
  }
}
