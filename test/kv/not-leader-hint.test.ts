// A follower's NOT_LEADER answer names the leader's binary address in the form a client parses:
// HOST:PORT, and [HOST]:PORT for an IPv6 host (bare, '::1:7001' was not an address KvClient
// could parse or learn), as its STATUS answer's leaderAddress does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvBinaryServer } from '../../src/kv/binary-server.js';
import { KvMachine } from '../../src/kv/machine.js';
import { encodeCommand } from '../../src/kv/codec.js';
import { decodeNotLeader, encodeRequest, KIND_STATUS, KIND_WRITE, ST_NOT_LEADER, ST_OK } from '../../src/kv/protocol.js';
import type { SynodReplica } from '../../src/runtime/replica.js';
import { rawSession } from './helpers.js';

test('NOT_LEADER and STATUS name an IPv6 leader as [host]:port', async () => {
  const follower = {
    id: 1,
    isLeader: () => false,
    leaderId: () => 2,
    status: () => ({ id: 1, role: 'follower', leader: 2, commitSlot: 0, appliedSlot: 0 }),
    endpointOf: () => undefined, // no client address announced through the log
  } as unknown as SynodReplica;
  for (const [host, expected] of [['::1', '[::1]:7001'], ['127.0.0.1', '127.0.0.1:7001'], ['db-2.example', 'db-2.example:7001']] as const) {
    const server = new KvBinaryServer({
      replica: follower,
      machine: new KvMachine({}),
      listen: { host: '127.0.0.1', port: 0 },
      binaryAddresses: new Map([[2, { host, port: 7001 }]]),
    });
    await server.start();
    try {
      const s = await rawSession(server.address());
      const command = encodeCommand({ op: 'put', key: new TextEncoder().encode('k'), value: new TextEncoder().encode('v') });
      s.send(encodeRequest({ kind: KIND_WRITE, requestId: 1, clientId: 1, seq: 1, floor: 1, timeoutMs: 1000, command }));
      const answer = await s.next();
      assert.equal(answer.status, ST_NOT_LEADER);
      assert.deepEqual(decodeNotLeader(answer.body), { leader: 2, address: expected });
      s.send(encodeRequest({ kind: KIND_STATUS, requestId: 2 }));
      const status = await s.next();
      assert.equal(status.status, ST_OK);
      assert.equal(JSON.parse(new TextDecoder().decode(status.body)).leaderAddress, expected);
      s.close();
    } finally {
      await server.close();
    }
  }
});
