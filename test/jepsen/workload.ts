// The clients: N workers doing get, put and compare-and-set on a small set of contended keys,
// each op recorded (invoke, completion, outcome) with src/check's Recorder.
//
// - Keys are used for a limited time (`keyLifetimeMs`, Jepsen's "independent" keys): every
//   generation brings fresh keys, so each key's sub-history stays small however long the run is,
//   and the checker's per-key search stays cheap.
// - Every written value is unique ("w3-117"), which keeps the checker's search narrow.
// - Some workers use raw HTTP, some the project's TS client (src/kv/http-client.ts), which
//   retries 503 on the next endpoint and reports 504 / a lost connection as unknown, and some the
//   binary protocol's client (src/kv/client.ts: sessions, exactly-once retries, NOT_LEADER hints):
//   KvUnavailableError fails (never applied), any other error is indeterminate.
// - A ledger (a set workload): some ops are puts to keys written exactly once ("L/3/17"). After
//   the run every acknowledged one must be on every replica and no key recorded as failed may be.
// - Scans (`scanShare` of the ops) of the current generation's keys, a page at a time (a limit,
//   sometimes after a key), over HTTP (GET /v1/scan) or the binary client. The checker projects
//   each completed scan into a read of every key it covered (src/check/scans.ts).
// - Outcomes follow SAFETY.md: 2xx, 404 on GET and 409 on CAS complete; 503 and a refused
//   connection fail; a 504, a timeout or a broken connection is indeterminate.
//
// The planted bug for the "checker bites" test: `readConsistency: 'local'` sends GETs with
// ?consistency=local to a random replica and records them as if they were linearizable.

import { classifyError, classifyHttp, type KvOp, type OpHandle, type Outcome, type Recorder, type ScanObservation } from '../../src/check/index.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import { KvClient, KvUnavailableError } from '../../src/kv/client.js';
import type { Prng } from '../../src/sim/prng.js';
import { httpRequest } from './cluster.js';

export interface WorkloadOptions {
  recorder: Recorder;
  prng: Prng;
  /** The replicas to talk to now (membership changes move them). */
  endpoints: () => string[];
  clients: number;
  /** Of them, how many use the TS client over HTTP (the first ones). */
  tsClients: number;
  /** Of them, how many use the binary protocol's client (the next ones; the rest raw HTTP). */
  binaryClients: number;
  /** The binary addresses of the replicas to talk to now, "host:port". */
  binaryEndpoints: () => string[];
  keysPerGeneration: number;
  keyLifetimeMs: number;
  /** One request's time limit; past it the op is indeterminate. */
  requestTimeoutMs: number;
  /** Pause between a worker's ops (uniform in [0, thinkMsMax]). */
  thinkMsMax: number;
  /** Share of ops that are ledger puts. */
  ledgerShare: number;
  /** Share of ops that are scans (taken from the gets' share). */
  scanShare: number;
  readConsistency: 'linearizable' | 'local';
  /** The harness clock (the recorder's). */
  nowMs: () => number;
}

export interface LedgerEntry {
  key: string;
  opId: number;
}

export class Workload {
  private stopping = false;
  private readonly workers: Promise<void>[] = [];
  readonly ledger: LedgerEntry[] = [];
  /** Scans that completed, for the checker (a failed or unknown scan read nothing). */
  readonly scans: ScanObservation[] = [];
  /** Scans tried, completed or not. */
  scansTried = 0;
  private readonly keysUsed = new Set<string>();
  private readonly startMs: number;
  private readonly tsClients: HttpKvClient[] = [];
  /** Ops settled ok, by the kind of client that ran them (to show each kind got work done). */
  readonly okByClient = { http: 0, ts: 0, binary: 0 };

  constructor(private readonly o: WorkloadOptions) {
    this.startMs = o.nowMs();
  }

  start(): void {
    for (let w = 0; w < this.o.clients; w++) {
      const prng = this.o.prng.fork();
      const ts = w < this.o.tsClients ? new HttpKvClient({ endpoints: this.o.endpoints(), timeoutMs: 2_000, requestTimeoutMs: this.o.requestTimeoutMs }) : null;
      if (ts) this.tsClients.push(ts);
      const binary = !ts && w < this.o.tsClients + this.o.binaryClients ? new BinaryWorkerClient(this.o.binaryEndpoints, this.o.requestTimeoutMs) : null;
      this.workers.push(this.worker(w, prng, ts, binary));
    }
  }

  /** Stop issuing; wait for the ops in flight (each is bounded by requestTimeoutMs). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
    for (const c of this.tsClients) c.close();
  }

  /** Every register key the run used (not the ledger's). */
  keys(): string[] {
    return [...this.keysUsed].sort();
  }

  private keysNow(): string[] {
    const gen = Math.floor((this.o.nowMs() - this.startMs) / this.o.keyLifetimeMs);
    const keys: string[] = [];
    for (let i = 0; i < this.o.keysPerGeneration; i++) keys.push(`k${gen}-${i}`);
    return keys;
  }

  private async worker(w: number, prng: Prng, ts: HttpKvClient | null, binary: BinaryWorkerClient | null): Promise<void> {
    const process = `w${w}`;
    const lastSeen = new Map<string, string | null>();
    let seq = 0;
    let ledgerSeq = 0;
    const opsMax = 10_000_000;
    for (let n = 0; n < opsMax && !this.stopping; n++) {
      const keys = this.keysNow();
      const key = prng.pick(keys);
      this.keysUsed.add(key);
      const roll = prng.next();
      const endpoints = this.o.endpoints();
      const endpoint = prng.pick(endpoints.length > 0 ? endpoints : ['http://127.0.0.1:1']);
      const kind = ts ? 'ts' : binary ? 'binary' : 'http';
      if (roll >= this.o.ledgerShare && roll < this.o.ledgerShare + this.o.scanShare) {
        if (await this.scan(process, prng, keys, binary?.current() ?? null, endpoint)) this.okByClient[kind]++;
        if (this.o.thinkMsMax > 0) await sleep(prng.int(0, this.o.thinkMsMax));
        continue;
      }
      let op: KvOp;
      if (roll < this.o.ledgerShare) {
        const lk = `L/${w}/${ledgerSeq++}`;
        op = { f: 'put', key: lk, value: 'x' };
      } else if (roll < this.o.ledgerShare + 0.4) {
        op = { f: 'get', key };
      } else if (roll < this.o.ledgerShare + 0.7) {
        op = { f: 'put', key, value: `w${w}-${seq++}` };
      } else {
        const expected = lastSeen.has(key) && prng.chance(0.8) ? lastSeen.get(key)! : null;
        op = { f: 'cas', key, expected, value: `w${w}-${seq++}` };
      }
      if (ts && endpoints.length > 0) syncEndpoints(ts, endpoints);
      const tracked = track(this.o.recorder.invoke(process, op));
      const h = tracked.handle;
      if (op.f === 'put' && op.key.startsWith('L/')) this.ledger.push({ key: op.key, opId: h.id });
      const seen = ts ? await this.viaClient(ts, h, op) : binary ? await this.viaBinary(binary.current(), h, op) : await this.viaHttp(endpoint, h, op);
      if (seen !== undefined) lastSeen.set(op.key, seen);
      if (tracked.outcome() === 'ok') this.okByClient[kind]++;
      // Back off after a certain failure (a dead replica refuses at once): a worker spinning on
      // refusals would fill the history with them and starve the others of CPU.
      if (tracked.outcome() === 'fail') await sleep(prng.int(50, 150));
      else if (this.o.thinkMsMax > 0) await sleep(prng.int(0, this.o.thinkMsMax));
    }
    binary?.close();
  }

  /**
   * One page of the generation's keys (`k<gen>-`): through the binary client, or GET /v1/scan (the
   * TS HTTP client has no scan). Kept only when it completed; true then.
   */
  private async scan(process: string, prng: Prng, keys: string[], binary: KvClient | null, endpoint: string): Promise<boolean> {
    const prefix = keys[0]!.slice(0, keys[0]!.indexOf('-') + 1);
    const limit = prng.int(2, keys.length + 2);
    const after = prng.chance(0.3) ? prng.pick(keys) : null;
    this.scansTried++;
    const invokeMs = this.o.nowMs();
    try {
      let entries: Array<[string, string]>;
      let more: boolean;
      if (binary) {
        const r = await binary.scan(prefix, limit, { consistency: this.o.readConsistency, ...(after === null ? {} : { after }) });
        entries = r.entries.map(([k, v]) => [Buffer.from(k).toString('utf8'), Buffer.from(v).toString('utf8')]);
        more = r.more;
      } else {
        const q = new URLSearchParams({ prefix, limit: String(limit) });
        if (after !== null) q.set('after', after);
        if (this.o.readConsistency === 'local') q.set('consistency', 'local');
        const a = await httpRequest(endpoint, 'GET', `/v1/scan?${q.toString()}`, undefined, this.o.requestTimeoutMs);
        if (a.status !== 200) return false;
        const body = JSON.parse(a.body) as { entries: Array<{ key: string; value: string }>; more: boolean };
        entries = body.entries.map((e) => [e.key, e.value]);
        more = body.more;
      }
      this.scans.push({ process, prefix, after, limit, invokeMs, completeMs: this.o.nowMs(), entries, more });
      return true;
    } catch {
      return false;
    }
  }

  /** The binary protocol's client. Returns the key's value the op observed, when it observed one. */
  private async viaBinary(client: KvClient, h: OpHandle, op: KvOp): Promise<string | null | undefined> {
    try {
      switch (op.f) {
        case 'get': {
          const v = await client.get(op.key, { consistency: this.o.readConsistency });
          const value = v === null ? null : Buffer.from(v).toString('utf8');
          h.ok({ value });
          return value;
        }
        case 'put':
          await client.put(op.key, op.value);
          h.ok();
          return op.value;
        case 'cas': {
          const r = await client.cas(op.key, op.expected, op.value);
          if (r.swapped) {
            h.ok({ swapped: true });
            return op.value;
          }
          const current = r.current === null ? null : Buffer.from(r.current).toString('utf8');
          h.ok({ swapped: false, current });
          return current;
        }
        case 'delete':
          throw new Error('the workload does not delete');
      }
    } catch (e) {
      // Certain only when no replica took it (no leader reachable in time); a session that
      // expired, a deadline passed while retrying, or anything else may have been applied.
      if (e instanceof KvUnavailableError) h.fail();
      else h.info();
      return undefined;
    }
  }

  /** Raw HTTP. Returns the key's value the op observed, when it observed one. */
  private async viaHttp(endpoint: string, h: OpHandle, op: KvOp): Promise<string | null | undefined> {
    const path = op.f === 'cas' ? `/v1/cas/${encodeURIComponent(op.key)}` : `/v1/kv/${encodeURIComponent(op.key)}`;
    const t = this.o.requestTimeoutMs;
    try {
      switch (op.f) {
        case 'get': {
          const q = this.o.readConsistency === 'local' ? '?consistency=local' : '';
          const a = await httpRequest(endpoint, 'GET', path + q, undefined, t);
          return settleGet(h, a.status, a.body);
        }
        case 'put': {
          const a = await httpRequest(endpoint, 'PUT', path, op.value, t);
          h.http(a.status);
          return a.status === 200 ? op.value : undefined;
        }
        case 'cas': {
          const a = await httpRequest(endpoint, 'POST', path, JSON.stringify({ expected: op.expected, value: op.value }), t);
          return settleCas(h, op.value, a.status, a.body);
        }
        case 'delete':
          throw new Error('the workload does not delete');
      }
    } catch (e) {
      h.error(e);
      return undefined;
    }
  }

  /** The project's TS client: 503 and refused connections are retried inside, then thrown. */
  private async viaClient(client: HttpKvClient, h: OpHandle, op: KvOp): Promise<string | null | undefined> {
    const path = op.f === 'cas' ? `/v1/cas/${encodeURIComponent(op.key)}` : `/v1/kv/${encodeURIComponent(op.key)}`;
    try {
      switch (op.f) {
        case 'get': {
          const q = this.o.readConsistency === 'local' ? '?consistency=local' : '';
          const a = await client.send('GET', path + q);
          return settleGet(h, a.status, a.body.toString('utf8'));
        }
        case 'put': {
          const a = await client.send('PUT', path, op.value);
          h.http(a.status);
          return a.status === 200 ? op.value : undefined;
        }
        case 'cas': {
          const a = await client.send('POST', path, JSON.stringify({ expected: op.expected, value: op.value }));
          return settleCas(h, op.value, a.status, a.body.toString('utf8'));
        }
        case 'delete':
          throw new Error('the workload does not delete');
      }
    } catch (e) {
      if (e instanceof HttpStatusError) {
        // status 0: unreachable before sending (certain); 503: never proposed; 504: unknown.
        if (e.certain) h.fail();
        else h.info();
      } else h.error(e);
      return undefined;
    }
  }
}

/**
 * A binary client over the replicas running now: KvClient's configured endpoints are fixed, so a
 * new one is made (a new session) when membership changes move them, between two ops.
 */
class BinaryWorkerClient {
  private client: KvClient | null = null;
  private endpoints = '';

  constructor(
    private readonly endpointsNow: () => string[],
    private readonly timeoutMs: number,
  ) {}

  current(): KvClient {
    const list = this.endpointsNow();
    const key = list.join(',');
    if (this.client === null || key !== this.endpoints) {
      this.client?.close();
      this.endpoints = key;
      this.client = new KvClient({ endpoints: list.length > 0 ? list : ['127.0.0.1:1'], timeoutMs: this.timeoutMs, attemptTimeoutMs: Math.min(2_000, this.timeoutMs) });
    }
    return this.client;
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}

/**
 * Points the TS client at the replicas running now. Its endpoint list is a plain array it reads
 * on every attempt (and appends to on redirects), so it is updated in place between requests.
 */
function syncEndpoints(client: HttpKvClient, endpoints: readonly string[]): void {
  const list = client.endpoints;
  if (list.length === endpoints.length && list.every((e, i) => e === endpoints[i])) return;
  list.splice(0, list.length, ...endpoints);
}

/** The handle, and what it was settled as (the recorder does not say, and its history() is O(n)). */
function track(raw: OpHandle): { handle: OpHandle; outcome: () => Outcome | null } {
  let outcome: Outcome | null = null;
  const handle: OpHandle = {
    id: raw.id,
    op: raw.op,
    ok: (r) => {
      raw.ok(r);
      outcome = 'ok';
    },
    fail: () => {
      raw.fail();
      outcome = 'fail';
    },
    info: () => {
      raw.info();
      outcome = 'info';
    },
    http: (status, body) => {
      raw.http(status, body);
      outcome = classifyHttp(raw.op, status, body).outcome;
    },
    error: (e) => {
      raw.error(e);
      outcome = classifyError(e).outcome;
    },
  };
  return { handle, outcome: () => outcome };
}

function settleGet(h: OpHandle, status: number, body: string): string | null | undefined {
  if (status === 200) {
    h.http(200, { value: body });
    return body;
  }
  h.http(status, parseJson(body));
  return status === 404 ? null : undefined;
}

function settleCas(h: OpHandle, value: string, status: number, body: string): string | null | undefined {
  const parsed = parseJson(body);
  h.http(status, parsed);
  if (status === 200) return value;
  if (status === 409 && parsed.current !== undefined) return parsed.current;
  return undefined;
}

function parseJson(body: string): { current?: string | null } {
  try {
    const v = JSON.parse(body) as unknown;
    return typeof v === 'object' && v !== null ? (v as { current?: string | null }) : {};
  } catch {
    return {};
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
