// A follower's forward to a leader that has been deposed ends when the follower learns of the new
// leader, not after the forward timeout (7 s). The black-box harness saw write gaps of about that
// length whenever the leader was cut off: every client whose request a follower had forwarded to
// the old leader waited out the timeout.
//
// Here the leader's HTTP address, as the followers know it, is a black hole (accepts, never
// answers: an HTTP proxy whose link is cut), and the leader is then cut off from the others.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { request } from './helpers.js';

test('a forward to a deposed leader is answered 504 once the follower knows the new leader, well before the forward timeout', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-fwd-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const httpAddrs = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  const held: net.Socket[] = [];
  const hole = net.createServer((s) => held.push(s));
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  try {
    for (let id = 1; id <= 3; id++) {
      httpAddrs.set(id, { host: '127.0.0.1', port: 0 });
      const node = await KvNode.start({ id, clusterId: 'fwd', dataDir: join(dir, `r${id}`), members, httpAddresses: httpAddrs, transport: network.createTransport({ replicaId: id }), logBackend: 'memory' });
      httpAddrs.set(id, node.http.address());
      nodes.push(node);
    }
    const deadline = Date.now() + 15_000;
    let leader: KvNode | undefined;
    while (Date.now() < deadline && !leader) {
      const l = nodes.find((n) => n.replica.status().role === 'leader');
      if (l && nodes.every((n) => n.replica.status().leader === l.replica.id)) leader = l;
      else await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(leader, 'no leader elected');
    const oldId = leader.replica.id;
    const follower = nodes.find((n) => n !== leader)!;
    const a = await request(follower.http.address(), 'PUT', '/v1/kv/before', 'x');
    assert.equal(a.status, 200, a.body);

    const address = hole.address() as net.AddressInfo;
    httpAddrs.set(oldId, { host: '127.0.0.1', port: address.port }); // the followers' way to it is cut
    const started = Date.now();
    const pending = request(follower.http.address(), 'PUT', '/v1/kv/during', 'y');
    await new Promise((r) => setTimeout(r, 200)); // the forward is sent and waits
    network.partition([nodes.filter((n) => n !== leader).map((n) => n.replica.id)]); // the old leader is cut off
    const b = await pending;
    const elapsedMs = Date.now() - started;
    assert.equal(b.status, 504, `a write forwarded and then cut off has an unknown outcome: ${b.status} ${b.body}`);
    assert.match(b.body, /no longer leads/);
    assert.ok(elapsedMs < 4_000, `answered after ${elapsedMs} ms: the forward waited for its timeout`);
    assert.notEqual(follower.replica.status().leader, oldId);
  } finally {
    for (const s of held) s.destroy();
    hole.close();
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await rm(dir, { recursive: true, force: true });
  }
});
