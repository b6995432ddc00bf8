// What the load generator talks to. One interface, three implementations, so that the same
// workload shape (lanes, keys, values, read ratio) runs against:
//   - DirectTarget: the leader's SynodReplica in this process (propose()/read(): the engine alone);
//   - BinaryTarget: KvClients over the binary protocol (many requests in flight per connection);
//   - EtcdTarget:   etcd's HTTP/JSON gRPC gateway (/v3/kv/put, /v3/kv/range), HTTP/1.1 keep-alive,
//                   one request in flight per socket (the gateway has no pipelining), so a lane is
//                   a socket there: the lanes × in-flight shape is the same, the multiplexing is not.

import * as http from 'node:http';
import { KvClient } from '../kv/client.js';
import { decodeResult, encodeCommand, encodeQuery } from '../kv/codec.js';
import type { SynodReplica } from '../runtime/replica.js';
import type { BenchConsistency } from './params.js';

/** How a Target reports an operation: once, with null or the error (a write) or the value (a read). */
export type PutDone = (error: unknown) => void;
export type GetDone = (error: unknown, value: Uint8Array | null) => void;

export interface Target {
  /**
   * Calls `done(null)` once the write is acknowledged (committed and applied by the leader), or
   * `done(error)`. `key` and `value` are valid only during the call: copy (encode) them before
   * returning (the generator reuses one value buffer for every write). Callbacks rather than
   * promises: no promise per operation on the generator's hot path. `done` is never called from
   * within put() itself.
   */
  put(lane: number, key: Uint8Array, value: Uint8Array, done: PutDone): void;
  /** Calls `done(null, value)` (null if absent) or `done(error, null)`. */
  get(lane: number, key: Uint8Array, consistency: BenchConsistency, done: GetDone): void;
  close(): void;
}

/** A promise's outcome to a Target callback. */
function settle<T>(promise: Promise<T>, done: (error: unknown, value: T | null) => void): void {
  promise.then(
    (v) => done(null, v),
    (e: unknown) => done(e ?? new Error('rejected'), null),
  );
}

/** get() as a promise (the verification after the run). */
export function getAsync(target: Target, lane: number, key: Uint8Array, consistency: BenchConsistency): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => target.get(lane, key, consistency, (e, v) => (e !== null ? reject(e) : resolve(v))));
}

/** A typed failure with a stable code, for the error counts of the report. */
export class BenchOpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function errorCode(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : (e as Error)?.name ?? 'Error';
}

// ---------------------------------------------------------------- direct (in-process engine)

/**
 * Each client is a session (clientId, seq, floor) as the binary server would pass them, so the
 * session table sees what it sees in production.
 */
const NOT_LEADER_RETRIES_MAX = 200;
const NOT_LEADER_BACKOFF_MS = 25;

export class DirectTarget implements Target {
  /** Operations retried because leadership moved during the run. */
  notLeaderRetries = 0;
  /** clientId 0 until the session is registered (openSession(), as the binary server's REGISTER does). */
  private readonly sessions: Array<{ clientId: number; opening: Promise<number> | null; seq: number; outstanding: Set<number> }>;

  constructor(
    private readonly replica: () => SynodReplica,
    clients: number,
    private readonly lanesPerClient: number,
  ) {
    this.sessions = Array.from({ length: clients }, () => ({ clientId: 0, opening: null, seq: 0, outstanding: new Set<number>() }));
  }

  put(lane: number, key: Uint8Array, value: Uint8Array, done: PutDone): void {
    let command: Uint8Array;
    try {
      command = encodeCommand({ op: 'put', key, value }); // before any await: `value` is reused by the caller
    } catch (e) {
      queueMicrotask(() => done(e));
      return;
    }
    settle(this.propose(lane, command), done);
  }

  private async propose(lane: number, command: Uint8Array): Promise<void> {
    const s = this.sessions[Math.floor(lane / this.lanesPerClient)]!;
    if (s.clientId === 0) {
      s.opening ??= this.retryingNotLeader(() => this.replica().openSession());
      s.clientId = await s.opening;
    }
    const seq = ++s.seq;
    s.outstanding.add(seq);
    let floor = seq;
    for (const o of s.outstanding) if (o < floor) floor = o; // at most `inflight` entries
    try {
      // A retry keeps (clientId, seq): the session table applies it at most once.
      const r = decodeResult(await this.retryingNotLeader(() => this.replica().propose(command, { clientId: s.clientId, seq, floor })));
      if (r.kind !== 'ok') throw new BenchOpError('SYNOD_BENCH_UNEXPECTED', `put answered ${r.kind}`);
    } finally {
      s.outstanding.delete(seq);
    }
  }

  get(_lane: number, key: Uint8Array, consistency: BenchConsistency, done: GetDone): void {
    settle<Uint8Array | null>(this.read(key, consistency), done);
  }

  private async read(key: Uint8Array, consistency: BenchConsistency): Promise<Uint8Array | null> {
    const query = encodeQuery({ op: 'get', key });
    const r = decodeResult((await this.retryingNotLeader(() => this.replica().read(query, { consistency }))).result);
    if (r.kind === 'not-found') return null;
    if (r.kind === 'ok') return r.value ?? new Uint8Array(0);
    throw new BenchOpError('SYNOD_BENCH_UNEXPECTED', `get answered ${r.kind}`);
  }

  /** Leadership moved (an election under load): find the new leader and try again, as a client would. */
  private async retryingNotLeader<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (errorCode(e) !== 'SYNOD_NOT_LEADER' || attempt >= NOT_LEADER_RETRIES_MAX) throw e;
        this.notLeaderRetries++;
        await new Promise((r) => setTimeout(r, NOT_LEADER_BACKOFF_MS)); // then op() asks replica() for the leader again
      }
    }
  }

  close(): void {}
}

// ---------------------------------------------------------------- binary protocol

/**
 * Writes and leader reads go through `connections` clients (each follows the leader). Local reads
 * may be served by any replica, so they go through `connections` more clients pinned round robin to
 * every endpoint: the cluster's read capacity, not one replica's. With several load workers, each
 * has its share of the connections; `firstConnection` (their global number) keeps the pinning
 * round robin over all of them.
 */
export class BinaryTarget implements Target {
  private readonly clients: KvClient[];
  private readonly pinned: KvClient[];

  constructor(endpoints: string[], connections: number, localReads: boolean, firstConnection = 0) {
    this.clients = Array.from({ length: connections }, () => new KvClient({ endpoints, timeoutMs: 20_000 }));
    this.pinned = localReads ? Array.from({ length: connections }, (_, i) => new KvClient({ endpoints: [endpoints[(firstConnection + i) % endpoints.length]!], timeoutMs: 20_000 })) : [];
  }

  put(lane: number, key: Uint8Array, value: Uint8Array, done: PutDone): void {
    this.clients[lane % this.clients.length]!.putWith(key, value, done);
  }

  get(lane: number, key: Uint8Array, consistency: BenchConsistency, done: GetDone): void {
    const pool = consistency === 'local' && this.pinned.length > 0 ? this.pinned : this.clients;
    pool[lane % pool.length]!.getWith(key, consistency, done);
  }

  close(): void {
    for (const c of [...this.clients, ...this.pinned]) c.close();
  }
}

// ---------------------------------------------------------------- etcd (gRPC gateway, JSON)

export class EtcdTarget implements Target {
  private readonly agent: http.Agent;
  private readonly endpoints: Array<{ host: string; port: number }>;

  constructor(endpoints: string[], lanes: number) {
    this.endpoints = endpoints.map((e) => {
      const [host, port] = e.replace(/^https?:\/\//, '').split(':');
      return { host: host!, port: Number(port) };
    });
    // One socket per lane: HTTP/1.1 carries one request at a time per socket.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: lanes, maxFreeSockets: lanes });
  }

  /** Every request goes to the first endpoint: etcd forwards proposals to its leader itself. */
  private call(path: string, body: object): Promise<Record<string, unknown>> {
    const text = JSON.stringify(body);
    const ep = this.endpoints[0]!;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: ep.host, port: ep.port, method: 'POST', path, agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const answer = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) return reject(new BenchOpError(`ETCD_HTTP_${res.statusCode}`, answer.slice(0, 200)));
            try {
              resolve(JSON.parse(answer) as Record<string, unknown>);
            } catch (e) {
              reject(new BenchOpError('ETCD_BAD_JSON', (e as Error).message));
            }
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(20_000, () => req.destroy(new BenchOpError('ETCD_TIMEOUT', 'no answer within 20 s')));
      req.on('error', (e) => reject(e instanceof BenchOpError ? e : new BenchOpError(`ETCD_${(e as NodeJS.ErrnoException).code ?? 'ERROR'}`, e.message)));
      req.end(text);
    });
  }

  put(_lane: number, key: Uint8Array, value: Uint8Array, done: PutDone): void {
    settle(
      this.call('/v3/kv/put', { key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') }).then(() => undefined),
      done,
    );
  }

  get(_lane: number, key: Uint8Array, consistency: BenchConsistency, done: GetDone): void {
    settle<Uint8Array | null>(this.range(key, consistency), done);
  }

  private async range(key: Uint8Array, consistency: BenchConsistency): Promise<Uint8Array | null> {
    const r = await this.call('/v3/kv/range', { key: Buffer.from(key).toString('base64'), serializable: consistency === 'local' });
    const kvs = r.kvs as Array<{ value?: string }> | undefined;
    if (!kvs || kvs.length === 0) return null;
    return new Uint8Array(Buffer.from(kvs[0]!.value ?? '', 'base64'));
  }

  close(): void {
    this.agent.destroy();
  }
}
