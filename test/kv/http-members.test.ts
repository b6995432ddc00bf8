// Membership changes over HTTP (POST/DELETE /v1/members) whose leader shuts down while the change
// is proposed and not yet known to govern. docs/kv.md: 503 means certainly not applied, 504
// outcome unknown (SAFETY.md, Client outcomes); the CLI turns 503 into exit 3 ("certainly not
// applied"), so an operator would take a removal that went through for one that did not.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { request } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a removal proposed and then cut short by the leader shutting down is answered 504 (outcome unknown), not 503', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-members-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const httpAddrs = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  try {
    for (let id = 1; id <= 3; id++) {
      httpAddrs.set(id, { host: '127.0.0.1', port: 0 });
      const node = await KvNode.start({ id, clusterId: 'members', dataDir: join(dir, `r${id}`), members, httpAddresses: httpAddrs, transport: network.createTransport({ replicaId: id }), logBackend: 'memory' });
      httpAddrs.set(id, node.http.address());
      nodes.push(node);
    }
    let leader: KvNode | undefined;
    const deadline = Date.now() + 15_000;
    while (!leader) {
      const l = nodes.find((n) => n.replica.status().role === 'leader');
      if (l && nodes.every((n) => n.replica.status().leader === l.replica.id) && (await request(l.http.address(), 'PUT', '/v1/kv/warm', 'x')).status === 200) leader = l;
      else {
        assert.ok(Date.now() < deadline, 'no leader elected');
        await sleep(20);
      }
    }
    const oldId = leader.replica.id;
    const others = nodes.filter((n) => n !== leader);
    // The followers get the leader's messages (so they accept its proposals and follow it), but
    // their answers are lost: the leader cannot learn that its change was chosen.
    network.setDropFilter((_from, to) => to === oldId);
    const pending = request(leader.http.address(), 'DELETE', `/v1/members?id=${oldId}&timeoutMs=20000`);
    await sleep(300); // proposed, accepted by both followers, and waiting
    await leader.close(); // SIGTERM
    const a = await pending.catch((e: Error) => ({ status: 0, body: e.message }));
    network.setDropFilter(null);
    // The two followers had accepted the change: it was chosen, and it takes effect.
    const until = Date.now() + 15_000;
    while (others.some((n) => n.replica.status().members.includes(oldId)) && Date.now() < until) await sleep(50);
    assert.deepEqual(others.map((n) => n.replica.status().members.includes(oldId)), [false, false], 'the removal took effect');
    assert.equal(a.status, 504, `a removal that took effect was answered ${a.status} ${a.body}`);
  } finally {
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await rm(dir, { recursive: true, force: true });
  }
});
