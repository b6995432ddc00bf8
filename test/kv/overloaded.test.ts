// A write refused at the leader's admission (SYNOD_OVERLOADED: proposalQueueCommandsMax commands
// already wait for room in the pipeline window) is certainly not applied, and both client ports say
// so: HTTP 503 + Retry-After (relayed as is by a follower that forwards), the binary port
// UNAVAILABLE with a message that names SYNOD_OVERLOADED; KvClient takes it as certain and retries
// on the same connection (test/kv/client-callbacks.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvClient, KvUnavailableError } from '../../src/kv/client.js';
import { encodeCommand } from '../../src/kv/codec.js';
import { decodeMessage, MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import { decodeSessionIdBody, encodeRequest, KIND_REGISTER, KIND_WRITE, OVERLOADED_PREFIX, ST_OK, ST_UNAVAILABLE } from '../../src/kv/protocol.js';
import { until } from '../runtime/wait.js';
import { inprocCluster, rawSession, request, type HttpAnswer } from './helpers.js';

test('overloaded leader: HTTP 503 + Retry-After (direct and forwarded), binary UNAVAILABLE naming SYNOD_OVERLOADED, KvClient certain; the admitted writes commit', async () => {
  // One slot of window, two commands may wait behind it.
  const c = await inprocCluster(3, { core: { pipelineWindowSlots: 1 }, proposalQueueCommandsMax: 2 });
  try {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const at = c.http.get(leader.replica.id)!;
    const bin = c.binary.get(leader.replica.id)!;
    // Sessions first, while votes pass: the HTTP port's own, a raw binary one, a KvClient's.
    assert.equal((await request(at, 'PUT', '/v1/kv/warm', 'up')).status, 200);
    const raw = await rawSession(bin);
    raw.send(encodeRequest({ kind: KIND_REGISTER, requestId: 1, timeoutMs: 5000 }));
    const registered = await raw.next();
    assert.equal(registered.status, ST_OK);
    const session = decodeSessionIdBody(registered.body);
    const kv = new KvClient({ endpoints: [`${bin.host}:${bin.port}`], timeoutMs: 600, attemptTimeoutMs: 300 });
    await kv.put('warm', 'client');

    // The followers' votes are lost (their disks stall); heartbeats pass, the leader stays.
    c.network.setDropFilter((_from, _to, frame) => frame[0] === MESSAGE_FORMAT_VERSION && decodeMessage(frame).type === 'accepted');
    const proposals = leader.replica.counters().proposals;
    const admitted: Array<Promise<HttpAnswer>> = [request(at, 'PUT', '/v1/kv/k1', 'v1')];
    await until('k1 holds the window', () => leader.replica.counters().proposals > proposals && leader.replica.status().proposalQueue.commands === 0);
    admitted.push(request(at, 'PUT', '/v1/kv/k2', 'v2'), request(at, 'PUT', '/v1/kv/k3', 'v3'));
    await until('two writes wait', () => leader.replica.status().proposalQueue.commands === 2);
    assert.equal((await request(at, 'GET', '/v1/status')).json().proposalQueue.commands, 2, '/v1/status shows the queue');

    const direct = await request(at, 'PUT', '/v1/kv/k4', 'v4');
    assert.equal(direct.status, 503, direct.body);
    assert.equal(direct.json().error.code, 'SYNOD_OVERLOADED');
    assert.equal(direct.headers['retry-after'], '1');
    const forwarded = await request(c.http.get(follower.replica.id)!, 'PUT', '/v1/kv/k5', 'v5');
    assert.equal(forwarded.status, 503, forwarded.body);
    assert.equal(forwarded.json().error.code, 'SYNOD_OVERLOADED');
    assert.equal(forwarded.headers['retry-after'], '1');

    const put = encodeCommand({ op: 'put', key: new TextEncoder().encode('k6'), value: new TextEncoder().encode('v6') });
    raw.send(encodeRequest({ kind: KIND_WRITE, requestId: 2, clientId: session, seq: 1, floor: 1, timeoutMs: 5000, command: put }));
    const answer = await raw.next();
    const message = new TextDecoder().decode(answer.body);
    assert.equal(answer.status, ST_UNAVAILABLE, message);
    assert.ok(message.startsWith(OVERLOADED_PREFIX) && /proposalQueueCommandsMax 2/.test(message), message);

    await assert.rejects(kv.put('k7', 'v7'), (e: unknown) => e instanceof KvUnavailableError && e.certain && /SYNOD_OVERLOADED/.test(e.message));

    const metrics = (await request(at, 'GET', '/metrics')).body;
    assert.match(metrics, /^synod_proposal_queue_commands 2$/m);
    assert.match(metrics, /^synod_proposals_overloaded_total [1-9]\d*$/m);

    c.network.setDropFilter(null);
    assert.deepEqual((await Promise.all(admitted)).map((a) => a.status), [200, 200, 200]);
    for (const [key, want] of [['k1', 200], ['k3', 200], ['k4', 404], ['k5', 404], ['k6', 404], ['k7', 404]] as const) {
      assert.equal((await request(at, 'GET', `/v1/kv/${key}`)).status, want, key);
    }
    kv.close();
    raw.close();
  } finally {
    await c.close();
  }
});
