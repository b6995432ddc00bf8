// Membership changes over HTTP (POST/DELETE /v1/members) whose leader shuts down while the change
// is proposed and not yet known to govern. docs/kv.md: 503 means certainly not applied, 504
// outcome unknown (SAFETY.md, Client outcomes); the CLI turns 503 into exit 3 ("certainly not
// applied"), so an operator would take a removal that went through for one that did not.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inprocCluster, request } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a removal proposed and then cut short by the leader shutting down is answered 504 (outcome unknown), not 503', { timeout: 60_000 }, async () => {
  const c = await inprocCluster(3);
  try {
    const leader = await c.leader();
    const oldId = leader.replica.id;
    const others = c.nodes.filter((n) => n !== leader);
    // The followers get the leader's messages (so they accept its proposals and follow it), but
    // their answers are lost: the leader cannot learn that its change was chosen.
    c.network.setDropFilter((_from, to) => to === oldId);
    const pending = request(leader.http.address(), 'DELETE', `/v1/members?id=${oldId}&timeoutMs=20000`);
    await sleep(300); // proposed, accepted by both followers, and waiting
    await leader.close(); // SIGTERM
    const a = await pending.catch((e: Error) => ({ status: 0, body: e.message }));
    c.network.setDropFilter(null);
    // The two followers had accepted the change: it was chosen, and it takes effect.
    const until = Date.now() + 15_000;
    while (others.some((n) => n.replica.status().members.includes(oldId)) && Date.now() < until) await sleep(50);
    assert.deepEqual(others.map((n) => n.replica.status().members.includes(oldId)), [false, false], 'the removal took effect');
    assert.equal(a.status, 504, `a removal that took effect was answered ${a.status} ${a.body}`);
  } finally {
    await c.close();
  }
});
