// A member removed from the configuration learns that it was (docs/api.md: "A removed replica
// never campaigns"). A configuration chosen at slot i governs from i + W; the leader fills the slots
// up to it, and the replica being removed votes on them (they are still the old configuration's),
// but the commit notices after its last vote went only to the peers of the configurations from the
// leader's chosen prefix on: the removed replica never heard that slot i + W - 1 was chosen, so it
// stayed at a chosen prefix below it, took itself for a member (status().members said so), and once
// the leader's heartbeats stopped, campaigned every election timeout for good. Seen while checking
// the power-loss check (a removed replica at commit 100, a candidate, its members [1, 2, 3], while
// the leader was at 101 with [2, 3]). Once compaction prunes the old configuration, every replica
// remembers the removed one (`departed`) for 20 longest election timeouts, then forgets it (the
// second test). Still open: a removed replica that was down through all of that hears nothing
// when it comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import { Cluster } from './harness.js';

setContracts(true);

test('a removed follower hears the commit that makes its removal govern, then takes itself for no member and never campaigns', () => {
  const c = new Cluster([1, 2, 3], { pipelineWindowSlots: 4 });
  c.elect(1);
  assert.equal(c.step(1, (r, now) => assert.equal(r.proposeConfig([1, 2], now), null)).rejected.length, 0);
  c.stabilize();
  const ticks = (n: number): void => {
    for (let i = 0; i < n; i++) {
      c.nowMs += 50;
      for (const id of [1, 2, 3]) c.tick(id);
      c.stabilize();
    }
  };
  ticks(4); // a few heartbeats: the leader fills the window with no-ops and the removal governs
  const leader = c.node(1).replica.status;
  assert.deepEqual(leader.members, [1, 2]);
  const removed = c.node(3).replica.status;
  assert.equal(removed.chosenPrefix, leader.chosenPrefix, 'the removed replica learned every slot its old configuration decided');
  assert.deepEqual(removed.members, [1, 2], 'the removed replica knows it was removed');
  c.clear();
  ticks(40); // 2 s: several election timeouts
  assert.equal(c.out(3).send.filter((m) => m.type === 'prepare').length, 0, 'the removed replica sent prepares');
  assert.deepEqual(c.out(3).roleChanges, [], 'the removed replica changed role');
  assert.equal(c.node(1).replica.status.role, 'leader');
});

test('a removed replica is remembered after compaction prunes its configuration, for 20 election timeouts, by leader and follower alike', () => {
  const c = new Cluster([1, 2, 3], { pipelineWindowSlots: 4 });
  c.elect(1);
  assert.equal(c.step(1, (r, now) => assert.equal(r.proposeConfig([1, 2], now), null)).rejected.length, 0);
  c.stabilize();
  const tick = (): void => {
    c.nowMs += 50;
    for (const id of [1, 2]) c.tick(id);
    c.stabilize();
  };
  for (let i = 0; i < 4; i++) tick(); // the removal governs
  const versions = [1, 2].map((id) => c.node(id).replica.departedVersion);
  for (const id of [1, 2]) {
    const r = c.node(id).replica;
    assert.equal(r.mayFetchLog(3), true, `replica ${id}: a member of a configuration it holds`);
    c.step(id, (replica) => replica.compact(replica.status.chosenPrefix)); // prunes [1, 2, 3]
    assert.deepEqual(r.departedPeers, [3], `replica ${id} remembers the removed replica`);
    assert.equal(r.mayFetchLog(3), true, `replica ${id} still answers its catch-up`);
  }
  assert.deepEqual([1, 2].map((id) => c.node(id).replica.departedVersion > versions[id - 1]!), [true, true], 'the change is announced');
  const windowMs = 20 * 600; // DEPARTED_NOTICE_TIMEOUTS × the default electionTimeoutMaxMs
  c.clear();
  const start = c.nowMs;
  while (c.nowMs - start < windowMs - 100) tick();
  assert.ok(c.out(1).send.some((m) => m.type === 'heartbeat' && m.to === 3), 'the leader sent it commit notices in the window');
  assert.deepEqual([1, 2].map((id) => c.node(id).replica.mayFetchLog(3)), [true, true], 'remembered until the window ends');
  const before = [1, 2].map((id) => c.node(id).replica.departedVersion);
  for (let i = 0; i < 4; i++) tick();
  for (const id of [1, 2]) {
    const r = c.node(id).replica;
    assert.deepEqual(r.departedPeers, [], `replica ${id} forgot it`);
    assert.equal(r.mayFetchLog(3), false, `replica ${id} no longer answers its catch-up (a follower too)`);
    assert.ok(r.departedVersion > before[id - 1]!, `replica ${id} announced the change`);
  }
  c.clear();
  tick();
  assert.equal(c.out(1).send.filter((m) => m.to === 3).length, 0, 'no more notices to it');
});
