// A replica set stopped by a last request (api.md, "Stopping a replica set") refuses every later
// write with StoppedError, which is certain: the command runs nowhere, ever. Both client ports say
// so (HTTP 503, the binary port UNAVAILABLE), where they said outcome unknown (504,
// OUTCOME_UNKNOWN), and a client retried or gave up as if the write might have run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeCommand } from '../../src/kv/codec.js';
import { decodeSessionIdBody, encodeRequest, KIND_REGISTER, KIND_WRITE, ST_OK, ST_UNAVAILABLE } from '../../src/kv/protocol.js';
import { until } from '../runtime/wait.js';
import { inprocCluster, rawSession, request } from './helpers.js';

test('a stopped replica set: writes are answered certain (HTTP 503 SYNOD_STOPPED, binary UNAVAILABLE)', async () => {
  const c = await inprocCluster(3);
  try {
    const leader = await c.leader();
    const at = c.http.get(leader.replica.id)!;
    const bin = c.binary.get(leader.replica.id)!;
    const raw = await rawSession(bin);
    raw.send(encodeRequest({ kind: KIND_REGISTER, requestId: 1, timeoutMs: 5000 }));
    const registered = await raw.next();
    assert.equal(registered.status, ST_OK);
    const session = decodeSessionIdBody(registered.body);

    const last = encodeCommand({ op: 'put', key: new TextEncoder().encode('last'), value: new TextEncoder().encode('1') });
    await leader.replica.propose(last, { last: true });
    await until('every replica stopped', () => c.nodes.every((n) => n.replica.status().stoppedAtSlot !== null));

    const put = await request(at, 'PUT', '/v1/kv/after', 'x');
    assert.equal(put.status, 503, put.body);
    assert.equal(put.json().error.code, 'SYNOD_STOPPED');
    const command = encodeCommand({ op: 'put', key: new TextEncoder().encode('after2'), value: new TextEncoder().encode('x') });
    raw.send(encodeRequest({ kind: KIND_WRITE, requestId: 2, clientId: session, seq: 1, floor: 1, timeoutMs: 5000, command }));
    const answer = await raw.next();
    assert.equal(answer.status, ST_UNAVAILABLE, new TextDecoder().decode(answer.body));
    assert.match(new TextDecoder().decode(answer.body), /stopped at the last request/);
    assert.equal((await request(at, 'GET', '/v1/kv/after')).status, 404, 'it ran nowhere');
    raw.close();
  } finally {
    await c.close();
  }
});
