// What the load generator talks to. One interface, three implementations, so that the same
// workload shape (lanes, keys, values, read ratio) runs against:
//   - DirectTarget: the leader's SynodReplica in this process (propose()/read(): the engine alone);
//   - BinaryTarget: KvClients over the binary protocol (many requests in flight per connection);
//   - EtcdTarget:   etcd's HTTP/JSON gRPC gateway (/v3/kv/put, /v3/kv/range), HTTP/1.1 keep-alive,
//                   one request in flight per socket (the gateway has no pipelining), so a lane is
//                   a socket there: the lanes × in-flight shape is the same, the multiplexing is not.

import * as http from 'node:http';
import { KvClient } from '../kv/client.js';
import { RES_OK, decodeResult, encodeCommand, encodeQuery } from '../kv/codec.js';
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
  /** Calls `done(null, value)` (null if absent) or `done(error, null)`. `key` as for put(): valid only during the call. */
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

/** A lane-client's session: outstanding seqs and the lowest of them (the floor), kept in O(1) amortized. */
interface DirectSession {
  clientId: number;
  opening: Promise<number> | null;
  seq: number;
  outstanding: Set<number>;
  /** The lowest outstanding seq, or seq + 1 when none is. */
  floor: number;
}

export class DirectTarget implements Target {
  /** Operations retried because leadership moved during the run. */
  notLeaderRetries = 0;
  /** clientId 0 until the session is registered (openSession(), as the binary server's REGISTER does). */
  private readonly sessions: DirectSession[];

  constructor(
    private readonly replica: () => SynodReplica,
    clients: number,
    private readonly lanesPerClient: number,
  ) {
    this.sessions = Array.from({ length: clients }, () => ({ clientId: 0, opening: null, seq: 0, outstanding: new Set<number>(), floor: 1 }));
  }

  /**
   * Through proposeWith() (callbacks), as the binary server calls it: the engine's cost per command,
   * not that of a promise chain per write in the generator.
   */
  put(lane: number, key: Uint8Array, value: Uint8Array, done: PutDone): void {
    let command: Uint8Array;
    try {
      command = encodeCommand({ op: 'put', key, value }); // now: `value` is reused by the caller
    } catch (e) {
      queueMicrotask(() => done(e));
      return;
    }
    const s = this.sessions[Math.floor(lane / this.lanesPerClient)]!;
    if (s.clientId === 0) {
      s.opening ??= this.retryingNotLeader(() => this.replica().openSession());
      s.opening.then(
        (id) => {
          s.clientId = id;
          this.proposeInSession(s, command, done);
        },
        (e: unknown) => done(e),
      );
      return;
    }
    this.proposeInSession(s, command, done);
  }

  private proposeInSession(s: DirectSession, command: Uint8Array, done: PutDone): void {
    const seq = ++s.seq;
    if (s.outstanding.size === 0) s.floor = seq;
    s.outstanding.add(seq);
    this.attempt(s, command, seq, 0, done);
  }

  /** One try; a NOT_LEADER is retried with the same (clientId, seq): the session table applies it at most once. */
  private attempt(s: DirectSession, command: Uint8Array, seq: number, tries: number, done: PutDone): void {
    let inCall = true;
    this.replica().proposeWith(command, { clientId: s.clientId, seq, floor: s.floor }, (error, result) => {
      if (inCall) return queueMicrotask(() => this.settled(s, command, seq, tries, done, error, result)); // a refusal: never call done from within put()
      this.settled(s, command, seq, tries, done, error, result);
    });
    inCall = false;
  }

  private settled(s: DirectSession, command: Uint8Array, seq: number, tries: number, done: PutDone, error: Error | null, result: Uint8Array | null): void {
    if (error !== null && errorCode(error) === 'SYNOD_NOT_LEADER' && tries < NOT_LEADER_RETRIES_MAX) {
      this.notLeaderRetries++;
      setTimeout(() => this.attempt(s, command, seq, tries + 1, done), NOT_LEADER_BACKOFF_MS); // then replica() is the new leader
      return;
    }
    s.outstanding.delete(seq);
    if (seq === s.floor) while (s.floor <= s.seq && !s.outstanding.has(s.floor)) s.floor++;
    if (error !== null) return done(error);
    // RES_OK alone is a PUT's success; anything else is decoded for the message.
    if (result!.length === 1 && result![0] === RES_OK) return done(null);
    let kind: string;
    try {
      kind = decodeResult(result!).kind;
    } catch (e) {
      return done(e);
    }
    done(new BenchOpError('SYNOD_BENCH_UNEXPECTED', `put answered ${kind}`));
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
