import * as http from 'node:http';
import * as net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvNode, type KvNodeOptions } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { FrameDecoder } from '../../src/transport/frame.js';
import { decodeRequest, decodeResponse, type Request } from '../../src/kv/protocol.js';
import type { ClientLimits, ClientSecurity } from '../../src/security/client-auth.js';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: () => any;
}

/** One HTTP request on a fresh connection. */
export function request(base: string | PeerAddress, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const url = typeof base === 'string' ? new URL(base) : new URL(`http://${base.host}:${base.port}`);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('test request timed out')));
    req.end(body);
  });
}

/** Sends raw bytes and returns whatever comes back before the server closes (or 2 s pass). */
export function rawExchange(addr: PeerAddress, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(addr.port, addr.host);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(e)));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.setTimeout(2000, () => s.destroy());
    s.write(bytes);
  });
}

/** Raw frames on one connection: for protocol-level checks. */
export async function rawSession(addr: { host: string; port: number }) {
  const s = net.connect(addr.port, addr.host);
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  const dec = new FrameDecoder(1 << 22);
  const answers: ReturnType<typeof decodeResponse>[] = [];
  const waiters: Array<() => void> = [];
  s.on('data', (c: Buffer) =>
    dec.push(c, (p) => {
      answers.push(decodeResponse(p.slice()));
      waiters.splice(0).forEach((w) => w());
    }),
  );
  return {
    send: (b: Uint8Array) => s.write(b),
    async next() {
      while (answers.length === 0) await new Promise<void>((r) => waiters.push(r));
      return answers.shift()!;
    },
    close: () => s.destroy(),
  };
}

export interface InprocCluster {
  nodes: KvNode[];
  /** The nodes' memory network (drop filters for partitions). */
  network: MemoryNetwork;
  http: Map<number, PeerAddress>;
  binary: Map<number, PeerAddress>;
  dir: string;
  leader(): Promise<KvNode>;
  /**
   * Replica `id` started with --join on this network: it knows only the cluster's initial members
   * (1..n), and its own HTTP address (`binary`: its binary port too). Not closed by close().
   */
  startJoiner(id: number, options?: { binary?: boolean }): Promise<KvNode>;
  close(): Promise<void>;
}

/** n key-value nodes in this process: memory network and log, HTTP (and binary) on loopback port 0. */
export async function inprocCluster(
  n = 3,
  opts: {
    valueBytesMax?: number;
    followerMode?: 'forward' | 'redirect';
    sessionExpiryMs?: number;
    clientSecurity?: (id: number) => ClientSecurity;
    proposeTimeoutMs?: number;
    clientLimits?: Partial<ClientLimits>;
    core?: KvNodeOptions['core'];
    proposalQueueCommandsMax?: number;
  } = {},
): Promise<InprocCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-kv-'));
  const network = new MemoryNetwork();
  const members = new Map(Array.from({ length: n }, (_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
  const httpAddrs = new Map<number, PeerAddress>();
  const binAddrs = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  /** What every node of the cluster, joiners too, is started with. */
  const base = (id: number) => ({
    id,
    clusterId: 'kvtest',
    dataDir: join(dir, `r${id}`),
    members,
    transport: network.createTransport({ replicaId: id }),
    logBackend: 'memory' as const,
    snapshotIntervalSlots: 50,
  });
  for (let id = 1; id <= n; id++) {
    httpAddrs.set(id, { host: '127.0.0.1', port: 0 });
    const node = await KvNode.start({
      ...base(id),
      httpAddresses: httpAddrs,
      binary: { host: '127.0.0.1', port: 0 },
      binaryAddresses: binAddrs,
      valueBytesMax: opts.valueBytesMax,
      followerMode: opts.followerMode,
      sessionExpiryMs: opts.sessionExpiryMs,
      clientSecurity: opts.clientSecurity?.(id),
      proposeTimeoutMs: opts.proposeTimeoutMs,
      clientLimits: opts.clientLimits,
      core: opts.core,
      proposalQueueCommandsMax: opts.proposalQueueCommandsMax,
    });
    httpAddrs.set(id, node.http.address());
    binAddrs.set(id, node.binary!.address());
    nodes.push(node);
  }
  const cluster: InprocCluster = {
    nodes,
    network,
    http: httpAddrs,
    binary: binAddrs,
    dir,
    async leader() {
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const l = nodes.find((x) => x.replica.status().role === 'leader');
        if (l) {
          try {
            await l.replica.read(new Uint8Array([0x11, 0, 0, 0, 0, 0, 0, 0, 1]), { consistency: 'linearizable' });
            if (nodes.every((x) => x.replica.status().leader === l.replica.id)) return l;
          } catch {
            // not ready yet
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error('no leader elected');
    },
    startJoiner(id, options = {}) {
      return KvNode.start({
        ...base(id),
        join: true,
        listen: { host: '127.0.0.1', port: 1 },
        httpAddresses: new Map([[id, { host: '127.0.0.1', port: 0 }]]),
        ...(options.binary ? { binary: { host: '127.0.0.1', port: 0 }, binaryAddresses: new Map() } : {}),
      });
    },
    async close() {
      await Promise.all(nodes.map((x) => x.close().catch(() => {})));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** How `p` settled and after how long; 'pending' if not within `guardMs` (so that a hang fails the test instead of stalling it). */
export async function settle<T>(p: Promise<T>, guardMs: number): Promise<{ ms: number; value?: T; error?: unknown; pending?: true }> {
  const t0 = performance.now();
  let guard: NodeJS.Timeout | undefined;
  const out = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<{ pending: true }>((r) => (guard = setTimeout(() => r({ pending: true }), guardMs))),
  ]);
  clearTimeout(guard);
  return { ms: performance.now() - t0, ...out };
}

/**
 * A stand-in binary-protocol server on loopback: `answer` gets each decoded request and writes
 * whatever it likes (encodeResponse frames) to the socket, or nothing. For client tests that need
 * a server to misbehave in one precise way.
 */
/** Listens on a free loopback port; close() destroys the tracked sockets and closes the server. */
export async function listening(server: net.Server, sockets: Set<net.Socket>, scheme = '') {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `${scheme}127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export async function binaryStandIn(answer: (req: Request, socket: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const decoder = new FrameDecoder(1 << 22);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.on('data', (chunk: Buffer) => decoder.push(chunk, (p) => answer(decodeRequest(p.slice()), s)));
  });
  return listening(server, sockets);
}
