import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KvBadRequestError, KvClient, KvSessionExpiredError, KvUnavailableError } from '../../src/kv/client.js';
import { decodeResult, encodeCommand } from '../../src/kv/codec.js';
import { decodeSessionIdBody, encodeRequest, KIND_REGISTER, KIND_WRITE, ST_BAD_REQUEST, ST_OK, ST_SESSION_EXPIRED } from '../../src/kv/protocol.js';
import { freePorts } from '../../src/cli/cluster-procs.js';
import { inprocCluster, rawSession, type InprocCluster } from './helpers.js';

const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe('binary protocol client on an in-process cluster', () => {
  let c: InprocCluster;
  let eps: string[];
  before(async () => {
    c = await inprocCluster(3);
    await c.leader();
    eps = [...c.binary.values()].map((a) => `${a.host}:${a.port}`);
  });
  after(async () => {
    await c?.close();
  });

  test('put, get, delete, cas, scan; starting from a follower finds the leader', async () => {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const first = c.binary.get(follower.replica.id)!;
    const kv = new KvClient({ endpoints: [`${first.host}:${first.port}`, ...eps] });
    try {
      await kv.put('a', 'one');
      assert.equal(text(await kv.get('a')), 'one');
      assert.equal(await kv.get('missing'), null);
      assert.deepEqual(await kv.cas('a', 'one', 'two'), { swapped: true });
      const clash = await kv.cas('a', 'one', 'three');
      assert.equal(clash.swapped, false);
      assert.equal(!clash.swapped && text(clash.current), 'two');
      assert.deepEqual(await kv.cas('fresh', null, 'x'), { swapped: true });
      assert.equal(await kv.delete('fresh'), true);
      assert.equal(await kv.delete('fresh'), false);
      await kv.put(Uint8Array.of(0x70, 0x00, 0xff), Uint8Array.of(1, 2, 3));
      assert.deepEqual(await kv.get(Uint8Array.of(0x70, 0x00, 0xff)), Uint8Array.of(1, 2, 3));
      const scan = await kv.scan('a', 10);
      assert.deepEqual(scan.entries.map(([k, v]) => [text(k), text(v)]), [['a', 'two']]);
      assert.equal(text(await kv.get('a', { consistency: 'lease' })), 'two');
    } finally {
      kv.close();
    }
  });

  test('batch() takes string keys and values as put() does, and refuses an unknown op at once (certain)', async () => {
    // docs/kv.md shows kv.batch([{ op: 'put', key, value }, ...]) beside put()'s "string or Uint8Array
    // keys and values". A string key was copied into the command byte by byte as NaN, that is 0: the
    // put wrote the key "\0\0" for 'b1', and a delete of 'a1' deleted that key instead. An op that is
    // not a write ('get') failed to encode on every try and ended, 10 s later, as an unknown outcome.
    const kv = new KvClient({ endpoints: eps, timeoutMs: 4_000 });
    try {
      await kv.put('batch-str/a1', 'x');
      const results = await kv.batch([
        { op: 'put', key: 'batch-str/b1', value: 'y' },
        { op: 'cas', key: 'batch-str/c1', expected: null, value: 'z' },
        { op: 'delete', key: 'batch-str/a1' },
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled']);
      assert.equal(text(await kv.get('batch-str/b1')), 'y', 'the put wrote the key it was given');
      assert.equal(text(await kv.get('batch-str/c1')), 'z', 'the cas wrote the key it was given');
      assert.equal(await kv.get('batch-str/a1'), null, 'the delete deleted the key it was given');
      const started = Date.now();
      const [bad] = await kv.batch([{ op: 'get', key: 'batch-str/b1' } as never]);
      assert.equal(bad!.status, 'rejected');
      const reason = (bad as PromiseRejectedResult).reason as Error;
      assert.ok(reason instanceof KvBadRequestError, `an unknown op is a bad request, got ${reason}`);
      assert.ok(Date.now() - started < 1_000, 'refused at once, not retried until the deadline');
    } finally {
      kv.close();
    }
  });

  test('scan: a page stops early past the scan byte limit, within the client\'s frame limit, and `after` continues from its last key', async () => {
    // Three values of 1 MiB: one answer of all three (3 MiB) was over the client's frame limit
    // (2 x valueBytesMax + 64 KiB), and the scan failed with SYNOD_TRANSPORT_FRAME_TOO_LARGE.
    const kv = new KvClient({ endpoints: eps, timeoutMs: 4_000 });
    try {
      const mib = (i: number) => new Uint8Array(1 << 20).fill(i);
      for (let i = 0; i < 3; i++) await kv.put(`mib/${i}`, mib(i));
      const first = await kv.scan('mib/', 10);
      assert.deepEqual([first.entries.map(([k]) => text(k)), first.more], [['mib/0', 'mib/1'], true]);
      assert.deepEqual(first.entries[1]![1], mib(1));
      const next = await kv.scan('mib/', 10, { after: first.entries[1]![0] });
      assert.deepEqual([next.entries.map(([k]) => text(k)), next.more], [['mib/2'], false]);
      for (let i = 0; i < 3; i++) await kv.delete(`mib/${i}`);
    } finally {
      kv.close();
    }
  });

  test('many requests in flight on one connection, batched writes', async () => {
    const kv = new KvClient({ endpoints: eps });
    try {
      const n = 500;
      await Promise.all(Array.from({ length: n }, (_, i) => kv.put(`many/${i}`, `v${i}`)));
      const results = await kv.batch(Array.from({ length: 50 }, (_, i) => ({ op: 'put' as const, key: new TextEncoder().encode(`batch/${i}`), value: new Uint8Array([i]) })));
      assert.ok(results.every((r) => r.status === 'fulfilled'));
      const got = await Promise.all(Array.from({ length: n }, (_, i) => kv.get(`many/${i}`)));
      got.forEach((v, i) => assert.equal(text(v), `v${i}`));
      const page = await kv.scan('batch/', 100);
      assert.equal(page.entries.length, 50);
    } finally {
      kv.close();
    }
  });

  test('exactly-once: a retried (clientId, seq) is applied once and answered with the original result', async () => {
    const leader = await c.leader();
    const s = await rawSession(c.binary.get(leader.replica.id)!);
    try {
      const cas = encodeCommand({ op: 'cas', key: new TextEncoder().encode('once'), expected: null, value: new TextEncoder().encode('first') });
      // A session nobody registered: SESSION_EXPIRED, never executed.
      s.send(encodeRequest({ kind: KIND_WRITE, requestId: 9, clientId: 4242, seq: 1, floor: 1, timeoutMs: 5000, command: cas }));
      assert.equal((await s.next()).status, ST_SESSION_EXPIRED);
      // REGISTER: the session id comes from the log.
      s.send(encodeRequest({ kind: KIND_REGISTER, requestId: 10, timeoutMs: 5000 }));
      const registered = await s.next();
      assert.equal(registered.status, ST_OK);
      const session = decodeSessionIdBody(registered.body);
      const req = (requestId: number) => encodeRequest({ kind: KIND_WRITE, requestId, clientId: session, seq: 1, floor: 1, timeoutMs: 5000, command: cas });
      s.send(req(1));
      const a1 = await s.next();
      assert.equal(a1.status, ST_OK);
      assert.equal(decodeResult(a1.body).kind, 'ok');
      s.send(req(2)); // the same command again: were it executed twice, the CAS would fail
      const a2 = await s.next();
      assert.equal(a2.status, ST_OK);
      assert.equal(decodeResult(a2.body).kind, 'ok', 'the retry got the original answer');
      // A different seq is a new command: this CAS now fails.
      s.send(encodeRequest({ kind: KIND_WRITE, requestId: 3, clientId: session, seq: 2, floor: 2, timeoutMs: 5000, command: cas }));
      assert.equal(decodeResult((await s.next()).body).kind, 'cas-failed');
      // Garbage frames are answered BAD_REQUEST and the connection goes on.
      s.send(Uint8Array.of(0, 0, 0, 6, 9, 0, 0, 0, 7, 1));
      const bad = await s.next();
      assert.equal(bad.status, ST_BAD_REQUEST);
      assert.equal(bad.requestId, 7);
      // A malformed write (the server's fast path decodes writes in place): BAD_REQUEST with its id.
      s.send(Uint8Array.of(0, 0, 0, 10, KIND_WRITE, 0, 0, 0, 8, 1, 2, 3, 4, 5));
      const truncated = await s.next();
      assert.deepEqual([truncated.status, truncated.requestId, new TextDecoder().decode(truncated.body)], [ST_BAD_REQUEST, 8, 'truncated WRITE header']);
      s.send(encodeRequest({ kind: KIND_WRITE, requestId: 11, clientId: 0, seq: 1, floor: 0, timeoutMs: 5000, command: cas }));
      const noSession = await s.next();
      assert.deepEqual([noSession.status, noSession.requestId], [ST_BAD_REQUEST, 11]);
      s.send(encodeRequest({ kind: KIND_WRITE, requestId: 12, clientId: session, seq: 3, floor: 3, timeoutMs: 5000, command: cas }));
      assert.equal((await s.next()).requestId, 12, 'and the connection goes on');
    } finally {
      s.close();
    }
  });

  test('typed errors: bad keys, oversized values, nobody listening', async () => {
    const kv = new KvClient({ endpoints: eps });
    try {
      await assert.rejects(kv.put('', 'x'), KvBadRequestError);
      await assert.rejects(kv.put('k'.repeat(1025), 'x'), KvBadRequestError);
      await assert.rejects(kv.put('big', new Uint8Array((1 << 20) + 1)), KvBadRequestError);
    } finally {
      kv.close();
    }
    const [port] = await freePorts(1);
    const dead = new KvClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 300 });
    await assert.rejects(dead.put('k', 'v'), (e: unknown) => e instanceof KvUnavailableError && e.certain === true);
    dead.close();
  });

  test('the leader stops: the client follows the new leader and every acknowledged write reads back', async () => {
    const kv = new KvClient({ endpoints: eps, timeoutMs: 15_000 });
    const acked = new Map<string, string>();
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `fail/${w}/${i}`;
        try {
          await kv.put(key, `v${i}`);
          acked.set(key, `v${i}`);
        } catch {
          // unknown or unavailable: not acknowledged
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    const leader = await c.leader();
    await leader.close();
    const survivors = c.nodes.filter((n) => n !== leader);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !survivors.some((n) => n.replica.status().role === 'leader')) await new Promise((r) => setTimeout(r, 20));
    const before = acked.size;
    await new Promise((r) => setTimeout(r, 700));
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.size > before, `writes went on after the leader stopped (${before} -> ${acked.size})`);
    for (const [k, v] of acked) assert.equal(text(await kv.get(k)), v, k);
    kv.close();
  });
});

describe('KvClient sessions (REGISTER) on a cluster with a short session expiry', () => {
  let c: InprocCluster;
  before(async () => {
    c = await inprocCluster(3, { sessionExpiryMs: 300 });
  });
  after(async () => {
    await c.close();
  });

  test('registers on its first write; after SESSION_EXPIRED that write fails and the next one registers anew', async () => {
    await c.leader();
    const kv = new KvClient({ endpoints: [...c.binary.values()].map((a) => `${a.host}:${a.port}`) });
    try {
      assert.equal(kv.clientId, 0, 'no session before the first write');
      await kv.put('s/1', 'a');
      const first = kv.clientId;
      assert.ok(first >= 1);
      await kv.put('s/2', 'b');
      assert.equal(kv.clientId, first, 'one session for every write');
      await new Promise((r) => setTimeout(r, 500)); // idle past the expiry
      await assert.rejects(kv.put('s/3', 'c'), KvSessionExpiredError);
      assert.equal(kv.clientId, 0);
      await kv.put('s/4', 'd');
      assert.ok(kv.clientId > first, `a new session (${kv.clientId}) after ${first}`);
      assert.equal(await kv.get('s/3'), null, 'the refused write was not executed');
      assert.equal(new TextDecoder().decode((await kv.get('s/4'))!), 'd');
    } finally {
      kv.close();
    }
  });
});
