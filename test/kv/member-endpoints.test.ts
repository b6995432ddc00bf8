// A replica added with POST /v1/members is known to the other replicas by its peer address only
// (the log carried nothing else), and followers learned HTTP and binary addresses from their
// --initial-http / --initial-binary alone: once the new replica led, a follower that did not run
// the add answered 503 "replica 4 leads but its HTTP address is unknown here" instead of
// forwarding, named no binary address in its STATUS, and listed "-" for its peer and HTTP address.
// Now a primary announces its own client addresses through the log (SynodReplica.advertiseEndpoints),
// and an add may carry the operator's (`"http"`, `"binary"` in the body): docs/kv.md.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KvNode } from '../../src/kv/node.js';
import { encodeRequest, KIND_STATUS, ST_OK } from '../../src/kv/protocol.js';
import { hostPort } from '../../src/transport/types.js';
import { sleep, until } from '../runtime/wait.js';
import { inprocCluster, rawSession, request, type HttpAnswer } from './helpers.js';

/** Generous for a loaded 2-core machine: an add (catch-up, configuration change) and a transfer. */
const STEP_MS = 30_000;

test('a follower that did not run the add forwards to the added replica once it leads, and names its addresses', { timeout: 120_000 }, async () => {
  const c = await inprocCluster(3);
  let joiner: KvNode | null = null;
  try {
    const leader = await c.leader();
    joiner = await c.startJoiner(4, { binary: true });
    const added = await request(leader.http.address(), 'POST', `/v1/members?timeoutMs=${STEP_MS}`, JSON.stringify({ id: 4, peer: '127.0.0.1:4' }));
    assert.equal(added.status, 200, added.body);
    // A transfer is a hint (replica 4 may not see itself a member yet): ask again until it leads.
    const j = joiner;
    // Whichever replica leads is asked (an election on a loaded machine may have moved the lead
    // off the one that ran the add; a fresh-clone CI run timed out waiting on that one alone).
    await until('every replica follows replica 4', async () => {
      if (j.replica.isLeader() && c.nodes.every((n) => n.replica.status().leader === 4)) return true;
      const current = c.nodes.find((n) => n.replica.isLeader());
      if (current) {
        const transfer = await request(current.http.address(), 'POST', '/v1/leader/transfer?to=4');
        assert.notEqual(transfer.status, 400, transfer.body);
        await sleep(500);
      }
      return false;
    }, STEP_MS);
    // Neither ran the add; the old leader did, but only its peer address was recorded there too.
    const follower = c.nodes.find((n) => n !== leader)!;
    // The new leader announces its addresses with its first proposals: allow a few rounds.
    let last: HttpAnswer | null = null;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      last = await request(follower.http.address(), 'PUT', '/v1/kv/after-the-add', 'v');
      if (last.status === 200) break;
      await sleep(100);
    }
    assert.equal(last!.status, 200, `a write sent to follower ${follower.replica.id} while replica 4 leads: ${last!.status} ${last!.body}`);
    const got = await request(j.http.address(), 'GET', '/v1/kv/after-the-add');
    assert.equal(got.body, 'v');
    const status = (await request(follower.http.address(), 'GET', '/v1/status')).json();
    assert.equal(status.leaderHttp, hostPort(j.http.address()));
    const four = status.members.find((m: { id: number }) => m.id === 4);
    assert.deepEqual({ peer: four?.peer, http: four?.http }, { peer: '127.0.0.1:4', http: hostPort(j.http.address()) }, `follower ${follower.replica.id} lists replica 4 as ${JSON.stringify(four)}`);
    // The binary protocol: STATUS names the leader's binary address (a KvClient goes there).
    const s = await rawSession(follower.binary!.address());
    s.send(encodeRequest({ kind: KIND_STATUS, requestId: 1 }));
    const answer = await s.next();
    s.close();
    assert.equal(answer.status, ST_OK);
    assert.equal(JSON.parse(new TextDecoder().decode(answer.body)).leaderAddress, hostPort(j.binary!.address()));
  } finally {
    await joiner?.close().catch(() => {});
    await c.close();
  }
});

test('an add that names the new replica\'s client addresses makes them known on every replica at once', { timeout: 120_000 }, async () => {
  const c = await inprocCluster(3);
  let joiner: KvNode | null = null;
  try {
    const leader = await c.leader();
    joiner = await c.startJoiner(4, { binary: true });
    const http = hostPort(joiner.http.address());
    const binary = hostPort(joiner.binary!.address());
    const bad = await request(leader.http.address(), 'POST', '/v1/members', JSON.stringify({ id: 4, peer: '127.0.0.1:4', http: 'no-port' }));
    assert.equal(bad.status, 400, bad.body);
    const added = await request(leader.http.address(), 'POST', `/v1/members?timeoutMs=${STEP_MS}`, JSON.stringify({ id: 4, peer: '127.0.0.1:4', http, binary }));
    assert.equal(added.status, 200, added.body);
    // Replica 4 does not lead: only the add carried its addresses.
    for (const n of c.nodes) {
      await until(`replica ${n.replica.id} lists replica 4's addresses`, async () => {
        const four = (await request(n.http.address(), 'GET', '/v1/members')).json().members.find((m: { id: number }) => m.id === 4);
        return four?.peer === '127.0.0.1:4' && four?.http === http;
      }, STEP_MS);
    }
    assert.equal(joiner.replica.isLeader(), false);
  } finally {
    await joiner?.close().catch(() => {});
    await c.close();
  }
});
