// Exactly-once writes over HTTP: POST /v1/sessions, then Synod-Session / Synod-Seq (/ Synod-Floor)
// on writes. A retry of a (session, seq) gets the original answer and is applied once, on any
// replica and after a leader change; an unknown session is refused (410) and not executed;
// malformed headers are 400. Each check uses an operation whose second execution would answer
// differently (a CAS from absent, a DELETE's `existed`, a PUT retried with another body), so it
// fails if the headers were ignored, dropped by forwarding, or the table were not replicated.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAIN_JS } from '../../src/cli/cluster-procs.js';
import { hostPort } from '../../src/transport/types.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import type { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { inprocCluster, request, type InprocCluster } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function openSession(at: PeerAddress): Promise<number> {
  const r = await request(at, 'POST', '/v1/sessions');
  assert.equal(r.status, 200, r.body);
  const id = r.json().session;
  assert.ok(Number.isSafeInteger(id) && id >= 1, r.body);
  return id;
}

const headers = (session: number, seq: number, floor?: number): Record<string, string> => ({
  'synod-session': String(session),
  'synod-seq': String(seq),
  ...(floor === undefined ? {} : { 'synod-floor': String(floor) }),
});

const casBody = (expected: string | null, value: string) => JSON.stringify({ expected, value });

interface AnswerLosingProxy {
  address: PeerAddress;
  /** 'drop': close the connection (lost mid-request); '504': answer 504, as a follower whose forward broke after sending. */
  mode: 'drop' | '504';
  lost: () => number;
  close: () => Promise<void>;
}

/**
 * An HTTP endpoint that passes each request to `target` and, for writes, once the answer has
 * arrived, loses it (see `mode`): the write was applied but the client cannot know. POST
 * /v1/sessions is relayed normally, so a client's first write goes here.
 */
async function answerLosingProxy(target: () => PeerAddress): Promise<AnswerLosingProxy> {
  let lost = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const t = target();
      const up = http.request({ host: t.host, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
        if (req.url === '/v1/sessions') {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        answer.resume();
        answer.on('end', () => {
          lost++;
          if (proxy.mode === 'drop') return res.socket?.destroy();
          const body = JSON.stringify({ error: { code: 'SYNOD_OUTCOME_UNKNOWN', message: 'test proxy: the answer was lost' } });
          res.writeHead(504, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
      });
      up.on('error', () => res.socket?.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as AddressInfo;
  const proxy: AnswerLosingProxy = {
    address: { host: '127.0.0.1', port: a.port },
    mode: 'drop',
    lost: () => lost,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  return proxy;
}

/** Runs the synod CLI (asynchronously: the cluster lives in this process's event loop). */
function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN_JS, ...args], { timeout: 30_000, env: { ...process.env, SYNOD_ENDPOINTS: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end();
  });
}

describe('HTTP exactly-once writes (sessions) on an in-process 3-replica cluster', () => {
  let c: InprocCluster;
  let leader: KvNode;
  let followers: KvNode[];
  const addr = (n: KvNode) => c.http.get(n.replica.id)!;

  before(async () => {
    c = await inprocCluster(3);
    leader = await c.leader();
    followers = c.nodes.filter((n) => n !== leader);
  });
  after(async () => {
    await c?.close();
  });

  test('POST /v1/sessions opens a session through the log, on the leader or forwarded by a follower', async () => {
    const a = await openSession(addr(leader));
    const viaFollower = await request(addr(followers[0]!), 'POST', '/v1/sessions');
    assert.equal(viaFollower.status, 200, viaFollower.body);
    assert.equal(viaFollower.headers['x-synod-served-by'], String(leader.replica.id));
    const b = viaFollower.json().session;
    assert.notEqual(a, b);
    const wrongMethod = await request(addr(leader), 'GET', '/v1/sessions');
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'POST');
  });

  test('a retry of the same (session, seq) returns the original answer and is applied once', async () => {
    const s = await openSession(addr(leader));
    const swappedBefore = leader.machine.stats().casSwapped;
    // CAS from absent: a second execution would answer 409 {"current":"a"}.
    const cas = () => request(addr(leader), 'POST', '/v1/cas/once-cas', casBody(null, 'a'), headers(s, 1));
    const first = await cas();
    assert.deepEqual([first.status, first.json()], [200, { ok: true }], first.body);
    const retry = await cas();
    assert.deepEqual([retry.status, retry.json()], [200, { ok: true }], retry.body);
    // The same retry through a follower (forwarded with its headers).
    const forwarded = await request(addr(followers[1]!), 'POST', '/v1/cas/once-cas', casBody(null, 'a'), headers(s, 1));
    assert.deepEqual([forwarded.status, forwarded.json()], [200, { ok: true }], forwarded.body);
    assert.equal(forwarded.headers['x-synod-served-by'], String(leader.replica.id));
    assert.equal(leader.machine.stats().casSwapped, swappedBefore + 1, 'the CAS ran once');
    // A new seq does run: the key is taken now.
    const next = await request(addr(leader), 'POST', '/v1/cas/once-cas', casBody(null, 'b'), headers(s, 2));
    assert.deepEqual([next.status, next.json()], [409, { current: 'a' }]);

    // DELETE: a second execution would say existed: false.
    const del = () => request(addr(followers[0]!), 'DELETE', '/v1/kv/once-cas', undefined, headers(s, 3));
    assert.deepEqual((await del()).json(), { ok: true, existed: true });
    assert.deepEqual((await del()).json(), { ok: true, existed: true });
    // A retry arriving while the first copy is in flight gets the same single execution.
    const putsBefore = leader.machine.stats().puts;
    const [p1, p2] = await Promise.all([
      request(addr(leader), 'PUT', '/v1/kv/once-put', 'first', headers(s, 4)),
      request(addr(followers[0]!), 'PUT', '/v1/kv/once-put', 'first', headers(s, 4)),
    ]);
    assert.deepEqual([p1.status, p2.status], [200, 200], p1.body + p2.body);
    // A "retry" carrying another body is not executed either: the table answers for (session, seq).
    assert.equal((await request(addr(leader), 'PUT', '/v1/kv/once-put', 'second', headers(s, 4))).status, 200);
    assert.equal((await request(addr(leader), 'GET', '/v1/kv/once-put')).body, 'first');
    assert.equal(leader.machine.stats().puts, putsBefore + 1, 'the PUT ran once');
  });

  test('with several writes in flight, Synod-Floor keeps the results above it for retries', async () => {
    const s = await openSession(addr(leader));
    // seq 2 lands first while seq 1 is still "unanswered" (floor 1): seq 1's result stays.
    assert.equal((await request(addr(leader), 'POST', '/v1/cas/floor-a', casBody(null, 'x'), headers(s, 2, 1))).status, 200);
    assert.equal((await request(addr(leader), 'POST', '/v1/cas/floor-b', casBody(null, 'x'), headers(s, 1, 1))).status, 200);
    const retry1 = await request(addr(leader), 'POST', '/v1/cas/floor-b', casBody(null, 'x'), headers(s, 1, 1));
    assert.deepEqual([retry1.status, retry1.json()], [200, { ok: true }], retry1.body);
    // Seq 3 acknowledges everything below it (default floor = seq): seq 1 is forgotten, and its
    // retry is refused rather than executed again.
    assert.equal((await request(addr(leader), 'PUT', '/v1/kv/floor-c', 'x', headers(s, 3))).status, 200);
    const stale = await request(addr(leader), 'POST', '/v1/cas/floor-b', casBody(null, 'x'), headers(s, 1));
    assert.equal(stale.status, 410, stale.body);
    assert.equal(stale.json().error.code, 'SYNOD_SESSION_EXPIRED');
  });

  test('an unknown session is refused with 410 SYNOD_SESSION_EXPIRED and nothing is executed', async () => {
    const unknown = 987_654_321;
    for (const at of [leader, followers[0]!]) {
      const put = await request(addr(at), 'PUT', '/v1/kv/ghost', 'boo', headers(unknown, 1));
      assert.equal(put.status, 410, put.body);
      assert.equal(put.json().error.code, 'SYNOD_SESSION_EXPIRED');
      assert.match(put.json().error.message, /not executed/);
      const cas = await request(addr(at), 'POST', '/v1/cas/ghost', casBody(null, 'boo'), headers(unknown, 2));
      assert.equal(cas.status, 410, cas.body);
    }
    assert.equal((await request(addr(leader), 'GET', '/v1/kv/ghost')).status, 404);
  });

  test('malformed session headers are 400 with a clear message, and nothing is proposed', async () => {
    const s = await openSession(addr(leader));
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ 'synod-session': 'abc', 'synod-seq': '1' }, /Synod-Session must be a positive integer/],
      [{ 'synod-session': String(s), 'synod-seq': '0' }, /Synod-Seq must be a positive integer/],
      [{ 'synod-session': String(s), 'synod-seq': '-1' }, /Synod-Seq/],
      [{ 'synod-session': String(s), 'synod-seq': '1.5' }, /Synod-Seq/],
      [{ 'synod-session': String(s), 'synod-seq': '01' }, /Synod-Seq/],
      [{ 'synod-session': String(s), 'synod-seq': '9007199254740993' }, /Synod-Seq/],
      [{ 'synod-session': String(s), 'synod-seq': ['1', '2'] }, /sent once/],
      [{ 'synod-session': String(s) }, /go together/],
      [{ 'synod-seq': '1' }, /go together/],
      [{ 'synod-floor': '1' }, /go together/],
      [{ 'synod-session': String(s), 'synod-seq': '3', 'synod-floor': '4' }, /may not exceed/],
      [{ 'synod-session': String(s), 'synod-seq': '3', 'synod-floor': 'x' }, /Synod-Floor must be a non-negative integer/],
    ];
    for (const at of [leader, followers[1]!]) {
      for (const [h, pattern] of cases) {
        for (const [method, path, body] of [
          ['PUT', '/v1/kv/malformed', 'v'],
          ['DELETE', '/v1/kv/malformed', undefined],
          ['POST', '/v1/cas/malformed', casBody(null, 'v')],
        ] as const) {
          const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
            const req = http.request({ ...addr(at), method, path, agent: false, headers: h }, (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (x: Buffer) => chunks.push(x));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            });
            req.on('error', reject);
            req.end(body);
          });
          assert.equal(r.status, 400, `${method} ${JSON.stringify(h)}: ${r.body}`);
          const e = JSON.parse(r.body).error;
          assert.equal(e.code, 'SYNOD_BAD_SESSION');
          assert.match(e.message, pattern, JSON.stringify(h));
        }
      }
    }
    assert.equal((await request(addr(leader), 'GET', '/v1/kv/malformed')).status, 404);
    // The session is untouched: its seq 1 still runs once.
    assert.equal((await request(addr(leader), 'PUT', '/v1/kv/malformed', 'ok', headers(s, 1))).status, 200);
  });

  test('HttpKvClient with sessions retries a write whose answer was lost and gets the original result', async () => {
    const proxy = await answerLosingProxy(() => addr(leader));
    const endpoints = [`http://${hostPort(proxy.address)}`, `http://${hostPort(addr(followers[0]!))}`];
    const exactly = new HttpKvClient({ endpoints, timeoutMs: 15_000, sessions: true });
    const plain = new HttpKvClient({ endpoints, timeoutMs: 15_000 });
    try {
      // Without sessions the lost answer is final: outcome unknown.
      await assert.rejects(plain.write('POST', '/v1/cas/lost-plain', casBody(null, 'v')), (e: unknown) => e instanceof HttpStatusError && e.status === 504 && !e.certain);
      assert.equal((await request(addr(leader), 'GET', '/v1/kv/lost-plain')).body, 'v', 'it was applied');
      // With sessions: the CAS is applied via the proxy, its answer lost, and the retry (on the
      // next endpoint, a follower) gets the original 200, not 409 {"current":"v"}.
      const lostBefore = proxy.lost();
      const a = await exactly.write('POST', '/v1/cas/lost', casBody(null, 'v'), [409]);
      assert.deepEqual([a.status, JSON.parse(a.body.toString('utf8'))], [200, { ok: true }]);
      assert.equal(proxy.lost(), lostBefore + 1, 'the first try went through the answer-losing proxy');
      assert.equal((await request(addr(leader), 'GET', '/v1/kv/lost')).body, 'v');
      // The same when the answer is a 504 (outcome unknown) instead of a broken connection.
      proxy.mode = '504';
      const again = new HttpKvClient({ endpoints, timeoutMs: 15_000, sessions: true });
      try {
        const b = await again.write('DELETE', '/v1/kv/lost');
        assert.deepEqual([b.status, JSON.parse(b.body.toString('utf8'))], [200, { ok: true, existed: true }]);
        assert.equal(proxy.lost(), lostBefore + 2);
      } finally {
        again.close();
      }
      proxy.mode = 'drop';
      // The CLI with --exactly-once does the same (and without it reports an unknown outcome, exit 4).
      const list = endpoints.join(',');
      const once = await synod(['cas', '--absent', 'lost-cli', 'v', '--exactly-once', '--endpoints', list]);
      assert.equal(once.code, 0, once.stderr + once.stdout);
      assert.match(once.stdout, /OK \(swapped\)/);
      const blind = await synod(['cas', '--absent', 'lost-cli-2', 'v', '--endpoints', list]);
      assert.equal(blind.code, 4, blind.stderr + blind.stdout);
    } finally {
      exactly.close();
      plain.close();
      await proxy.close();
    }
  });

  test('a retry after a leader change, forwarded through a follower, gets the original answer', async () => {
    const s = await openSession(addr(followers[0]!));
    const before = leader;
    const first = await request(addr(before), 'POST', '/v1/cas/moved', casBody(null, 'one'), headers(s, 1));
    assert.deepEqual([first.status, first.json()], [200, { ok: true }], first.body);
    const target = followers[1]!.replica.id;
    // On a loaded 2-core machine an election may undo a transfer: ask again (at most 3 times) until
    // the target leads, so that the old leader really is a follower when the retry goes through it.
    for (let attempt = 0; attempt < 3; attempt++) {
      const t = await request(addr(c.nodes.find((n) => n.replica.id !== target && n !== before)!), 'POST', `/v1/leader/transfer?to=${target}`);
      assert.equal(t.status, 200, t.body);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && c.nodes.find((n) => n.replica.status().role === 'leader')?.replica.id !== target) await sleep(20);
      leader = await c.leader();
      if (leader.replica.id === target) break;
    }
    assert.equal(leader.replica.id, target);
    followers = c.nodes.filter((n) => n !== leader);
    // The old leader is a follower now: it forwards the retry to the new leader, whose copy of the
    // replicated session table answers it.
    const retry = await request(addr(before), 'POST', '/v1/cas/moved', casBody(null, 'one'), headers(s, 1));
    assert.deepEqual([retry.status, retry.json()], [200, { ok: true }], retry.body);
    assert.equal(retry.headers['x-synod-served-by'], String(target));
    const next = await request(addr(before), 'POST', '/v1/cas/moved', casBody(null, 'two'), headers(s, 2));
    assert.deepEqual([next.status, next.json()], [409, { current: 'one' }]);
  });
});

describe('HTTP sessions expire', () => {
  let c: InprocCluster;
  before(async () => {
    // 2 s of stamped idle time: long enough not to expire between two steps on a loaded machine.
    c = await inprocCluster(3, { sessionExpiryMs: 2_000 });
  });
  after(async () => {
    await c?.close();
  });

  test('an expired session is refused (410) and HttpKvClient opens a new one for its next write', async () => {
    const leader = await c.leader();
    const at = c.http.get(leader.replica.id)!;
    const s = await openSession(at);
    const client = new HttpKvClient({ endpoints: [`http://${hostPort(at)}`], timeoutMs: 15_000, sessions: true });
    try {
      assert.equal((await client.write('PUT', '/v1/kv/exp-client', '1')).status, 200);
      const first = client.sessionId;
      await sleep(3_000);
      const expired = await request(at, 'PUT', '/v1/kv/exp', 'late', headers(s, 1));
      assert.equal(expired.status, 410, expired.body);
      assert.equal(expired.json().error.code, 'SYNOD_SESSION_EXPIRED');
      assert.equal((await request(at, 'GET', '/v1/kv/exp')).status, 404, 'not executed');
      // The client's session expired too: its write is refused once, then sent under a new session.
      assert.equal((await client.write('PUT', '/v1/kv/exp-client', '2')).status, 200);
      assert.notEqual(client.sessionId, first);
      assert.equal((await request(at, 'GET', '/v1/kv/exp-client')).body, '2');
    } finally {
      client.close();
    }
  });
});
