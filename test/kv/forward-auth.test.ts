// A follower forwards the client's Authorization header and the leader checks it again. While
// tokens are rotated (docs/security.md: replicas restarted one at a time with the new token
// file), a follower may accept a token that the leader no longer does: the client must then get
// the leader's 401 as documented, with `WWW-Authenticate: Bearer` (docs/kv.md, Status codes).

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

test("a token the follower accepts and the leader refuses gets the leader's 401 with WWW-Authenticate", { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-fwd-auth-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const httpAddrs = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  const shared = { authorization: 'Bearer shared-token-0123456789' };
  try {
    for (let id = 1; id <= 3; id++) {
      httpAddrs.set(id, { host: '127.0.0.1', port: 0 });
      // Every replica takes the shared token, and one of its own (mid-rotation, in effect).
      const node = await KvNode.start({ id, clusterId: 'fwd-auth', dataDir: join(dir, `r${id}`), members, httpAddresses: httpAddrs, transport: network.createTransport({ replicaId: id }), logBackend: 'memory', clientSecurity: { tokens: ['shared-token-0123456789', `only-replica-${id}-0123456789`] } });
      httpAddrs.set(id, node.http.address());
      nodes.push(node);
    }
    let leader: KvNode | undefined;
    const deadline = Date.now() + 15_000;
    while (!leader) {
      const l = nodes.find((n) => n.replica.status().role === 'leader');
      if (l && nodes.every((n) => n.replica.status().leader === l.replica.id) && (await request(l.http.address(), 'PUT', '/v1/kv/warm', 'x', shared)).status === 200) leader = l;
      else {
        assert.ok(Date.now() < deadline, 'no leader elected');
        await sleep(20);
      }
    }
    const follower = nodes.find((n) => n !== leader)!;
    const a = await request(follower.http.address(), 'PUT', '/v1/kv/k', 'v', { authorization: `Bearer only-replica-${follower.replica.id}-0123456789` });
    assert.equal(a.status, 401, a.body);
    assert.equal(a.headers['x-synod-served-by'], String(leader.replica.id), 'answered by the leader');
    assert.equal(a.headers['www-authenticate'], 'Bearer realm="synod"', 'the 401 says how to authenticate');
  } finally {
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await rm(dir, { recursive: true, force: true });
  }
});
