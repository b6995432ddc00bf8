// A follower forwards the client's Authorization header and the leader checks it again. While
// tokens are rotated (docs/security.md: replicas restarted one at a time with the new token
// file), a follower may accept a token that the leader no longer does: the client must then get
// the leader's 401 as documented, with `WWW-Authenticate: Bearer` (docs/kv.md, Status codes).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inprocCluster, request } from './helpers.js';

test("a token the follower accepts and the leader refuses gets the leader's 401 with WWW-Authenticate", { timeout: 60_000 }, async () => {
  // Every replica takes the shared token, and one of its own (mid-rotation, in effect).
  const c = await inprocCluster(3, { clientSecurity: (id) => ({ tokens: ['shared-token-0123456789', `only-replica-${id}-0123456789`] }) });
  try {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const a = await request(follower.http.address(), 'PUT', '/v1/kv/k', 'v', { authorization: `Bearer only-replica-${follower.replica.id}-0123456789` });
    assert.equal(a.status, 401, a.body);
    assert.equal(a.headers['x-synod-served-by'], String(leader.replica.id), 'answered by the leader');
    assert.equal(a.headers['www-authenticate'], 'Bearer realm="synod"', 'the 401 says how to authenticate');
  } finally {
    await c.close();
  }
});
