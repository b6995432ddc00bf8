// replaceMember(old, new, address, {timeoutMs, caughtUpSlots}): one deadline for the add and the
// removal, and the removal waits (within it) for the live, caught-up quorum it needs instead of
// refusing at once. Right after its own add, the leader's progress figure for the new member can
// lag (it is learned from the member's answers), and with another member down that refused the
// removal half: "removing replica 3 would leave 1 of 3 members live and caught up: no quorum".
// A removal that really would leave no such quorum is still refused, at the deadline.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KvNode } from '../../src/kv/node.js';
import { encodeCommand } from '../../src/kv/codec.js';
import { SynodError } from '../../src/runtime/errors.js';
import { inprocCluster } from './helpers.js';

const put = (k: string) => encodeCommand({ op: 'put', key: new TextEncoder().encode(k), value: new TextEncoder().encode('v') });

/**
 * A 3-member cluster with a log well past the removal's 64-slot bar (so that a stale progress
 * figure for the new member counts), joiner 4 started, and one member down: a removal's remaining
 * members are then the leader, the down one and replica 4. `replace` replaces the last live
 * follower (`old`) by 4; the members must end as the leader, the down one and 4.
 */
async function replaceWithOneDown(replace: (leader: KvNode, old: number) => Promise<void>): Promise<void> {
  const c = await inprocCluster(3);
  let joiner: KvNode | null = null;
  try {
    const leader = await c.leader();
    const [down, old] = c.nodes.filter((n) => n !== leader).map((n) => n.replica.id) as [number, number];
    for (let i = 0; i < 300; i++) await leader.replica.propose(put(`k${i}`));
    joiner = await c.startJoiner(4);
    c.network.partition([[leader.replica.id, old, 4]]);
    await replace(leader, old);
    assert.deepEqual(leader.replica.status().members, [leader.replica.id, down, 4].sort((a, b) => a - b));
  } finally {
    c.network.heal();
    await joiner?.close().catch(() => {});
    await c.close();
  }
}

test('replaceMember right after its add waits for the new member\'s progress instead of refusing the removal', { timeout: 120_000 }, async () => {
  await replaceWithOneDown((leader, old) => leader.replica.replaceMember(old, 4, { host: '127.0.0.1', port: 4 }, { timeoutMs: 30_000 }));
});

test('removeMember (DELETE /v1/members) right after an add, with another member down, waits out the stale progress figure instead of refusing', { timeout: 120_000 }, async () => {
  await replaceWithOneDown(async (leader, old) => {
    await leader.replica.addMember(4, { host: '127.0.0.1', port: 4 }, { timeoutMs: 30_000 });
    await leader.replica.removeMember(old, { timeoutMs: 30_000 });
  });
});

test('a removal that would really leave no live quorum is still refused, once the deadline passes', { timeout: 60_000 }, async () => {
  const c = await inprocCluster(3);
  try {
    const leader = await c.leader();
    const [a] = c.nodes.filter((n) => n !== leader).map((n) => n.replica.id) as [number];
    c.network.partition([[leader.replica.id, a]]); // b down: removing a would leave the leader and b
    const t0 = performance.now();
    await assert.rejects(leader.replica.removeMember(a, { timeoutMs: 1500, waitForQuorum: true }), (e: unknown) => {
      assert.ok(e instanceof SynodError && e.code === 'SYNOD_MEMBERSHIP', String(e));
      assert.match((e as Error).message, /would leave 1 of 2 members live and caught up: no quorum/);
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms >= 1400, `refused after ${ms} ms, before the deadline`);
    // Without waitForQuorum (DELETE /v1/members): refused after a short grace for stale progress
    // figures (2 s), not the whole timeout.
    const t1 = performance.now();
    await assert.rejects(leader.replica.removeMember(a, { timeoutMs: 20_000 }), /no quorum/);
    const graceMs = performance.now() - t1;
    assert.ok(graceMs >= 1900 && graceMs < 10_000, `refused after ${graceMs} ms`);
    assert.deepEqual(leader.replica.status().members, [1, 2, 3]);
  } finally {
    c.network.heal();
    await c.close();
  }
});
