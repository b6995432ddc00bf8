// Membership changes take as long as the new replica's catch-up: SynodReplica.addMember waits up to
// 60 s, but the HTTP client gave every request 15 s and a forwarding follower 7 s (its
// forwardTimeoutMs), so `synod member add` reported "outcome unknown" (exit 4) whenever the catch-up
// took longer, and --timeout changed neither. Now `POST|DELETE /v1/members?timeoutMs=N` sets the
// leader's limit (a follower forwards it and waits that long plus a margin), the CLI sends its
// --timeout (default 60000 for member add/remove) there and waits longer than it for the answer.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvNode } from '../../src/kv/node.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { inprocCluster, type InprocCluster } from '../kv/helpers.js';
import { fakeServer, synod } from './helpers.js';

const url = (a: PeerAddress) => `http://${a.host}:${a.port}`;

describe('membership timeouts', { concurrency: true }, () => {
  describe('a cluster', () => {
    let cluster: InprocCluster;
    let leader: KvNode;
    let follower: KvNode;

    before(async () => {
      // proposeTimeoutMs 1000: a follower forwards with a 3 s limit (proposeTimeoutMs + 2 s).
      cluster = await inprocCluster(3, { proposeTimeoutMs: 1_000 });
      leader = await cluster.leader();
      follower = cluster.nodes.find((n) => n !== leader)!;
      // A learner counts as caught up within 64 slots of the commit point: a young log would let an
      // absent replica "catch up" at once. Sequential writes, one slot each.
      const c = new HttpKvClient({ endpoints: [url(leader.http.address())], timeoutMs: 5_000 });
      for (let i = 0; i < 150; i++) await c.call('PUT', `/v1/kv/k${i}`, 'v');
      c.close();
      assert.ok(leader.replica.status().commitSlot > 140, `commit slot ${leader.replica.status().commitSlot}`);
    });
    after(async () => {
      await cluster?.close();
    });

    // A replica that never catches up: nothing listens for it on the memory network.
    const addNine = (to: KvNode, query: string, requestTimeoutMs = 20_000, id = 9) => {
      const c = new HttpKvClient({ endpoints: [url(to.http.address())], timeoutMs: 1, requestTimeoutMs });
      const started = Date.now();
      return c.send('POST', `/v1/members${query}`, JSON.stringify({ id, peer: `127.0.0.1:${id}` })).then(
        (a) => ({ status: a.status, body: a.body.toString('utf8'), ms: Date.now() - started }),
        (e: HttpStatusError) => ({ status: e.status, body: e.message, ms: Date.now() - started }),
      ).finally(() => c.close());
    };

    test('HTTP: ?timeoutMs= bounds the leader\'s wait; a follower forwards it and waits longer than its own forward limit', { timeout: 60_000 }, async () => {
      const onLeader = await addNine(leader, '?timeoutMs=500', 10_000);
      assert.equal(onLeader.status, 409, JSON.stringify(onLeader));
      assert.match(onLeader.body, /replica 9 did not catch up in time/);
      assert.ok(onLeader.ms < 5_000, `answered after ${onLeader.ms} ms`);
      // 4 s is past the follower's forwardTimeoutMs (3 s here): before, a forwarded change was cut off with 504.
      const viaFollower = await addNine(follower, '?timeoutMs=4000');
      assert.equal(viaFollower.status, 409, JSON.stringify(viaFollower));
      assert.match(viaFollower.body, /did not catch up in time/);
      assert.ok(viaFollower.ms >= 3_900, `answered after ${viaFollower.ms} ms`);
      for (const bad of ['0', '-1', '1.5', 'abc', '3600001', '']) {
        const a = await addNine(leader, `?timeoutMs=${bad}`);
        assert.equal(a.status, 400, `timeoutMs=${bad}: ${JSON.stringify(a)}`);
        assert.match(a.body, /timeoutMs must be an integer in 1\.\.3600000/);
      }
      const c = new HttpKvClient({ endpoints: [url(leader.http.address())], timeoutMs: 1 });
      const removal = await c.send('DELETE', '/v1/members?id=3&timeoutMs=x');
      c.close();
      assert.equal(removal.status, 400);
      assert.deepEqual(leader.replica.status().members, [1, 2, 3]);
    });

    test('synod member add --timeout: the leader gives up at that limit (exit 2, members unchanged), not the client at 15 s (exit 4)', { timeout: 60_000 }, async () => {
      const r = await synod(['member', 'add', '8', '127.0.0.1:8', '--endpoints', url(follower.http.address()), '--timeout', '1500'], { timeoutMs: 40_000 });
      assert.equal(r.code, 2, JSON.stringify(r));
      assert.match(r.stderr, /refused \(HTTP 409 SYNOD_MEMBERSHIP\): replica 8 did not catch up in time \(within --timeout 1500 ms; the members are unchanged/);
      assert.ok(r.ms < 12_000, `took ${r.ms} ms`);
      const bad = await synod(['member', 'remove', '3', '--endpoints', url(leader.http.address()), '--timeout', '3600001']);
      assert.equal(bad.code, 2, JSON.stringify(bad));
      assert.match(bad.stderr, /--timeout must be 1\.\.3600000 ms/);
      assert.deepEqual(leader.replica.status().members, [1, 2, 3]);
    });
  });

  describe('the CLI\'s wait', () => {
    test('synod member add waits for a change that takes longer than 15 s (the client\'s old fixed request limit)', { timeout: 60_000 }, async () => {
      const slow = await fakeServer((req, res) => {
        const answer = () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true, members: req.method === 'POST' ? [1, 2, 3, 4] : [1, 2, 3] }));
        };
        if (req.method === 'POST') setTimeout(answer, 16_000);
        else answer();
      });
      try {
        const r = await synod(['member', 'add', '4', '127.0.0.1:7004', '--endpoints', slow.url, '--timeout', '30000'], { timeoutMs: 45_000 });
        assert.equal(r.code, 0, JSON.stringify(r));
        assert.match(r.stdout, /OK: replica 4 is a member; members now 1,2,3,4/);
        assert.deepEqual(slow.requests.map((q) => `${q.method} ${q.url}`), ['POST /v1/members?timeoutMs=30000']);
        const def = await synod(['member', 'remove', '4', '--endpoints', slow.url], { timeoutMs: 45_000 });
        assert.equal(def.code, 0, JSON.stringify(def));
        assert.equal(slow.requests.at(-1)!.url, '/v1/members?id=4&timeoutMs=60000', 'the default: the server\'s own 60 s');
      } finally {
        await slow.close();
      }
    });
  });
});
