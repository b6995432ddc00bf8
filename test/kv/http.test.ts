import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inprocCluster, rawExchange, request, type InprocCluster } from './helpers.js';
import type { KvNode } from '../../src/kv/node.js';

describe('HTTP API on an in-process 3-replica cluster', () => {
  let c: InprocCluster;
  let leader: KvNode;
  let followers: KvNode[];
  const addr = (n: KvNode) => c.http.get(n.replica.id)!;

  before(async () => {
    c = await inprocCluster(3, { valueBytesMax: 64 * 1024 });
    leader = await c.leader();
    followers = c.nodes.filter((n) => n !== leader);
  });
  after(async () => {
    await c?.close();
  });

  test('put, get, delete on the leader; 404 for an absent key', async () => {
    assert.equal((await request(addr(leader), 'GET', '/v1/kv/absent')).status, 404);
    const put = await request(addr(leader), 'PUT', '/v1/kv/alpha', 'one');
    assert.equal(put.status, 200, put.body);
    const got = await request(addr(leader), 'GET', '/v1/kv/alpha');
    assert.equal(got.status, 200);
    assert.equal(got.body, 'one');
    const del = await request(addr(leader), 'DELETE', '/v1/kv/alpha');
    assert.equal(del.status, 200);
    assert.deepEqual(del.json(), { ok: true, existed: true });
    const gone = await request(addr(leader), 'GET', '/v1/kv/alpha');
    assert.equal(gone.status, 404);
    assert.equal(gone.json().error.code, 'SYNOD_KV_NOT_FOUND');
  });

  test('a follower forwards writes and linearizable reads; local reads are served in place', async () => {
    const [f1, f2] = followers as [KvNode, KvNode];
    const put = await request(addr(f1), 'PUT', '/v1/kv/fwd', 'via-follower');
    assert.equal(put.status, 200, put.body);
    assert.equal(put.headers['x-synod-served-by'], String(leader.replica.id));
    const lin = await request(addr(f2), 'GET', '/v1/kv/fwd');
    assert.equal(lin.status, 200);
    assert.equal(lin.body, 'via-follower');
    const lease = await request(addr(f2), 'GET', '/v1/kv/fwd?consistency=lease');
    assert.equal(lease.body, 'via-follower');
    const deadline = Date.now() + 5000;
    let local;
    do local = await request(addr(f2), 'GET', '/v1/kv/fwd?consistency=local');
    while (local.status !== 200 && Date.now() < deadline);
    assert.equal(local.body, 'via-follower');
    assert.equal(local.headers['x-synod-served-by'], undefined, 'a local read is not forwarded');
  });

  test('percent-encoded keys: one path segment, UTF-8', async () => {
    const key = encodeURIComponent('dir/ключ ✓');
    assert.equal((await request(addr(leader), 'PUT', `/v1/kv/${key}`, 'unicode')).status, 200);
    assert.equal((await request(addr(leader), 'GET', `/v1/kv/${key}`)).body, 'unicode');
    const scan = await request(addr(leader), 'GET', `/v1/scan?prefix=${encodeURIComponent('dir/')}`);
    assert.deepEqual(scan.json().entries, [{ key: 'dir/ключ ✓', value: 'unicode' }]);
    // The prefix is decoded strictly, with "+" a space as before.
    assert.equal((await request(addr(leader), 'PUT', `/v1/kv/${encodeURIComponent('dir/a b')}`, 'space')).status, 200);
    const plus = await request(addr(leader), 'GET', `/v1/scan?prefix=dir%2F%D0%BA&limit=1`);
    assert.deepEqual(plus.json(), { entries: [{ key: 'dir/ключ ✓', value: 'unicode' }], more: false });
    assert.deepEqual((await request(addr(leader), 'GET', '/v1/scan?prefix=dir%2Fa+b')).json().entries, [{ key: 'dir/a b', value: 'space' }]);
  });

  test('compare-and-set: 200 when swapped, 409 with the current value otherwise', async () => {
    const cas = (body: unknown) => request(addr(followers[0]!), 'POST', '/v1/cas/lock', JSON.stringify(body), { 'content-type': 'application/json' });
    assert.equal((await cas({ expected: null, value: 'a' })).status, 200);
    const clash = await cas({ expected: null, value: 'b' });
    assert.equal(clash.status, 409);
    assert.deepEqual(clash.json(), { current: 'a' });
    assert.equal((await cas({ expected: 'a', value: 'b' })).status, 200);
    const wrong = await cas({ expected: 'a', value: 'c' });
    assert.deepEqual([wrong.status, wrong.json()], [409, { current: 'b' }]);
    const absent = await request(addr(leader), 'POST', '/v1/cas/nokey', JSON.stringify({ expected: 'x', value: 'y' }));
    assert.deepEqual([absent.status, absent.json()], [409, { current: null }]);
  });

  test('scan with a prefix and a limit', async () => {
    for (const k of ['s/1', 's/2', 's/3', 't/1']) assert.equal((await request(addr(leader), 'PUT', `/v1/kv/${encodeURIComponent(k)}`, k)).status, 200);
    const page = await request(addr(followers[1]!), 'GET', '/v1/scan?prefix=s%2F&limit=2');
    assert.equal(page.status, 200);
    assert.deepEqual(page.json(), { entries: [{ key: 's/1', value: 's/1' }, { key: 's/2', value: 's/2' }], more: true });
  });

  test('scan answers are bounded in bytes: a page stops early with more, and ?after= continues from its last key', async () => {
    // valueBytesMax 64 KiB: a page holds two entries of the largest size (133,136 bytes), so two
    // of these 60,013-byte entries and not three.
    const value = (i: number) => String(i).repeat(60_000);
    for (let i = 0; i < 5; i++) assert.equal((await request(addr(leader), 'PUT', `/v1/kv/big%2F${i}`, value(i))).status, 200);
    const page = async (after: string | null) => {
      const r = await request(addr(followers[0]!), 'GET', `/v1/scan?prefix=big%2F&limit=100${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
      assert.equal(r.status, 200, r.body.slice(0, 200));
      const j = r.json() as { entries: Array<{ key: string; value: string }>; more: boolean };
      for (const e of j.entries) assert.equal(e.value, value(Number(e.key.slice(4))));
      return [j.entries.map((e) => e.key), j.more];
    };
    assert.deepEqual(await page(null), [['big/0', 'big/1'], true]);
    assert.deepEqual(await page('big/1'), [['big/2', 'big/3'], true]);
    assert.deepEqual(await page('big/3'), [['big/4'], false]);
    assert.equal((await request(addr(leader), 'GET', '/v1/scan?after=%FF')).status, 400, 'after is decoded strictly, like the prefix');
    for (let i = 0; i < 5; i++) assert.equal((await request(addr(leader), 'DELETE', `/v1/kv/big%2F${i}`)).status, 200);
  });

  test('status and metrics', async () => {
    const st = (await request(addr(followers[0]!), 'GET', '/v1/status')).json();
    assert.equal(st.id, followers[0]!.replica.id);
    assert.equal(st.role, 'follower');
    assert.equal(st.leader, leader.replica.id);
    assert.ok(st.ballot > 0);
    assert.ok(st.commitIndex >= 1 && st.appliedIndex >= 1);
    assert.equal(st.members.length, 3);
    assert.ok(st.members.every((m: { http: string; peer: string }) => typeof m.http === 'string' && typeof m.peer === 'string'));
    const m = await request(addr(leader), 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'] ?? '', /text\/plain/);
    assert.match(m.body, /^synod_is_leader 1$/m);
    assert.match(m.body, /^synod_member 1$/m);
    assert.match(m.body, /^synod_removal_notified 0$/m);
    assert.match(m.body, /^synod_kv_keys \d+$/m);
    // Log counters: the leader has written and synced (a PUT was acknowledged above).
    assert.match(m.body, /^synod_log_syncs_total [1-9]\d*$/m);
    assert.match(m.body, /^synod_log_bytes_written_total [1-9]\d*$/m);
    assert.match(m.body, /^synod_http_requests_total\{method="PUT",code="200"\} \d+$/m);
    // Latency histograms: cumulative buckets ending at +Inf = count, observed on the leader.
    for (const name of ['synod_log_commit_duration_seconds', 'synod_voting_duration_seconds']) {
      assert.match(m.body, new RegExp(`^# TYPE ${name} histogram$`, 'm'));
      const buckets = [...m.body.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, 'gm'))];
      assert.equal(buckets.length, 18, `${name}: 17 bounds and +Inf`);
      const counts = buckets.map((b) => Number(b[2]));
      for (let i = 1; i < counts.length; i++) assert.ok(counts[i]! >= counts[i - 1]!, `${name}: buckets are cumulative`);
      assert.equal(buckets.at(-1)![1], '+Inf');
      const count = Number(m.body.match(new RegExp(`^${name}_count (\\d+)$`, 'm'))![1]);
      assert.ok(count >= 1, `${name}: observed (${count})`);
      assert.equal(counts.at(-1), count);
      assert.ok(Number(m.body.match(new RegExp(`^${name}_sum (\\S+)$`, 'm'))![1]) > 0);
    }
  });

  test('bad input gets a clear answer and the replica keeps serving', async () => {
    const a = addr(followers[0]!);
    const cases: Array<[string, string, string | Buffer | undefined, number, RegExp]> = [
      ['GET', '/v1/kv/%E0%A4%A', undefined, 400, /percent-encoding/],
      ['GET', '/v1/kv/%ZZ', undefined, 400, /percent-encoding/],
      ['PUT', '/v1/kv/a/b', 'x', 400, /one path segment/],
      ['PUT', '/v1/kv/', 'x', 400, /empty/],
      ['POST', '/v1/cas/k', '{not json', 400, /not valid JSON/],
      ['POST', '/v1/cas/k', '[1,2]', 400, /JSON object/],
      ['POST', '/v1/cas/k', '{"value":"v"}', 400, /expected/],
      ['POST', '/v1/cas/k', '{"expected":null,"value":5}', 400, /"value"/],
      ['PUT', `/v1/kv/${'k'.repeat(1025)}`, 'x', 413, /key/],
      ['PUT', '/v1/kv/big', Buffer.alloc(64 * 1024 + 1, 0x61), 413, /value|at most/],
      ['GET', '/v1/nothing-here', undefined, 404, /no route/],
      ['PATCH', '/v1/kv/k', 'x', 405, /not allowed/],
      ['GET', '/v1/kv/k?consistency=eventual', undefined, 400, /consistency/],
      ['GET', '/v1/scan?limit=0', undefined, 400, /limit/],
      ['GET', '/v1/scan?limit=abc', undefined, 400, /limit/],
      ['POST', '/v1/members', '{}', 400, /peer address/],
      ['POST', '/v1/members', 'not json', 400, /JSON/],
      // JSON that is not an object: null used to be a 500 (parsed.id on null threw).
      ['POST', '/v1/members', 'null', 400, /must be a JSON object/],
      ['POST', '/v1/members', '[]', 400, /must be a JSON object/],
      ['POST', '/v1/members', '"x"', 400, /must be a JSON object/],
      ['POST', '/v1/cas/k', 'null', 400, /must be a JSON object/],
      // An id that is not a JSON number (Number() took "4", [4] and true).
      ['POST', '/v1/members', '{"id":"4","peer":"127.0.0.1:7004"}', 400, /replica id/],
      ['POST', '/v1/members', '{"id":[4],"peer":"127.0.0.1:7004"}', 400, /replica id/],
      ['POST', '/v1/members', '{"id":true,"peer":"127.0.0.1:7004"}', 400, /replica id/],
      // Text that is not UTF-8 is refused as in the key, not turned into U+FFFD.
      ['GET', '/v1/scan?prefix=%FF', undefined, 400, /percent-encoding in prefix "%FF"/],
      ['GET', '/v1/scan?limit=5&prefix=a%ED%A0%80', undefined, 400, /percent-encoding in prefix/],
      ['POST', '/v1/cas/k', '{"expected":null,"value":"\\ud800"}', 400, /"value" holds a lone UTF-16 surrogate/],
      ['POST', '/v1/cas/k', '{"expected":"x\\udc00","value":"v"}', 400, /"expected" holds a lone UTF-16 surrogate/],
      ['POST', '/v1/cas/k', Buffer.from('{"expected":null,"value":"\xff"}', 'latin1'), 400, /CAS body is not valid UTF-8/],
      ['DELETE', '/v1/members?id=abc', undefined, 400, /replica id/],
    ];
    for (const [method, path, body, status, pattern] of cases) {
      const r = await request(a, method, path, body);
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.json().error.message, pattern, `${method} ${path}`);
    }
    // A value over the limit sent without Content-Length (chunked) is refused while streaming.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ ...a, method: 'PUT', path: '/v1/kv/chunked', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(Buffer.alloc(40 * 1024));
      req.end(Buffer.alloc(40 * 1024));
    });
    assert.equal(chunked, 413);
    // Malformed HTTP on the wire.
    assert.match(await rawExchange(a, 'NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(await rawExchange(a, 'GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n'), /^HTTP\/1\.1 400/);
    // HTTP spoken to the binary client port.
    assert.match(await rawExchange(c.binary.get(followers[0]!.replica.id)!, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /400 Bad Request[\s\S]*binary client port/);
    // Still serving.
    assert.equal((await request(a, 'PUT', '/v1/kv/after-bad-input', 'fine')).status, 200);
    assert.equal((await request(a, 'GET', '/v1/kv/after-bad-input')).body, 'fine');
  });

  test('forwarding that fails before sending is 503; after sending, 504', async () => {
    const f = followers[0]!;
    const leaderId = leader.replica.id;
    const real = c.http.get(leaderId)!;
    // Nobody listens here: refused before anything is sent.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    // A "leader" that reads the request and drops the connection: the write may have been applied.
    const dropper = http.createServer((req) => req.socket.destroy());
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    try {
      c.http.set(leaderId, { host: '127.0.0.1', port: closedPort });
      const refused = await request(addr(f), 'PUT', '/v1/kv/fw', 'x');
      assert.equal(refused.status, 503, refused.body);
      assert.equal(refused.headers['retry-after'], '1');
      assert.equal(refused.json().error.code, 'SYNOD_FORWARD_FAILED');
      c.http.set(leaderId, { host: '127.0.0.1', port: (dropper.address() as AddressInfo).port });
      const dropped = await request(addr(f), 'PUT', '/v1/kv/fw', 'x');
      assert.equal(dropped.status, 504, dropped.body);
      assert.equal(dropped.json().error.code, 'SYNOD_OUTCOME_UNKNOWN');
    } finally {
      c.http.set(leaderId, real);
      await new Promise<void>((r) => dropper.close(() => r()));
    }
  });

  test('a forwarded request that reaches a non-leader is 503, never forwarded again', async () => {
    const r = await request(addr(followers[0]!), 'PUT', '/v1/kv/loop', 'x', { 'x-synod-forwarded': '9' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json().error.leader, leader.replica.id);
  });

  test('leader transfer through any replica', async () => {
    const target = followers[1]!.replica.id;
    const r = await request(addr(followers[0]!), 'POST', `/v1/leader/transfer?to=${target}`);
    assert.equal(r.status, 200, r.body);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && c.nodes.find((n) => n.replica.status().role === 'leader')?.replica.id !== target) await new Promise((res) => setTimeout(res, 20));
    leader = await c.leader();
    assert.equal(leader.replica.id, target);
    followers = c.nodes.filter((n) => n !== leader);
    assert.equal((await request(addr(followers[0]!), 'PUT', '/v1/kv/after-transfer', 'ok')).status, 200);
  });
});

describe('HTTP API with followerMode redirect', () => {
  let c: InprocCluster;
  before(async () => {
    c = await inprocCluster(3, { followerMode: 'redirect' });
  });
  after(async () => {
    await c?.close();
  });

  test('a follower answers 307 with the leader URL in Location', async () => {
    const leader = await c.leader();
    const f = c.nodes.find((n) => n !== leader)!;
    const r = await request(c.http.get(f.replica.id)!, 'PUT', '/v1/kv/r%20k', 'v');
    assert.equal(r.status, 307);
    const l = c.http.get(leader.replica.id)!;
    assert.equal(r.headers.location, `http://${l.host}:${l.port}/v1/kv/r%20k`);
    const again = await request(r.headers.location!, 'PUT', '/v1/kv/r%20k', 'v');
    assert.equal(again.status, 200);
  });
});
