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
// second test). A removed replica that was down through all of that hears no notice when it comes
// back: its first prepare gets a notMember from each member, naming a configuration newer than any
// it knows without it, and it stops campaigning (the third test; the fourth: a stale answer is not
// news).
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

/** Removes replica 3 from [1, 2, 3] while it hears nothing, then lets the window for it pass. */
function removeWhileDown(plantedBug?: 'member-ignores-non-member'): { c: Cluster; run: (ms: number, ids: number[]) => void } {
  const c = new Cluster([1, 2, 3], { pipelineWindowSlots: 4, ...(plantedBug ? { plantedBug } : {}) });
  c.elect(1);
  const settle = (cut: boolean): void => {
    for (let round = 0; round < 100; round++) {
      let moved = 0;
      for (const id of [1, 2, 3]) {
        if (c.node(id).unpersisted.length > 0) {
          c.persistAll(id);
          moved++;
        }
      }
      if (cut) c.take((m) => m.to === 3 || m.from === 3);
      moved += c.deliver();
      if (moved === 0) return;
    }
    throw new Error('did not settle');
  };
  const run = (ms: number, ids: number[]): void => {
    for (const end = c.nowMs + ms; c.nowMs < end; ) {
      c.nowMs += 50;
      for (const id of ids) c.tick(id);
      settle(!ids.includes(3));
    }
  };
  c.take((m) => m.to === 3);
  assert.equal(c.step(1, (r, now) => assert.equal(r.proposeConfig([1, 2], now), null)).rejected.length, 0);
  settle(true);
  run(200, [1, 2]); // the removal governs
  for (const id of [1, 2]) c.step(id, (r) => r.compact(r.status.chosenPrefix));
  run(20 * 600 + 200, [1, 2]); // the departed window: both forget replica 3
  assert.deepEqual([1, 2].map((id) => c.node(id).replica.departedPeers), [[], []]);
  assert.deepEqual(c.node(3).replica.status.members, [1, 2, 3], 'replica 3 still takes itself for a member');
  return { c, run };
}

test('a replica removed while it was down is told so by the members when it campaigns, and stops', () => {
  const { c, run } = removeWhileDown();
  c.clear();
  run(1000, [1, 2, 3]); // one election timeout at most: replica 3 campaigns and is answered
  const prepares = c.out(3).send.filter((m) => m.type === 'prepare');
  assert.ok(prepares.length > 0, 'replica 3 campaigned once back');
  const notices = [1, 2].flatMap((id) => c.out(id).send.filter((m) => m.type === 'notMember' && m.to === 3));
  assert.ok(notices.length >= 1, 'a member answered with its configuration');
  const removal = c.node(3).replica.status.removal;
  assert.ok(removal !== null, 'replica 3 took the notice');
  assert.deepEqual(removal.members, [1, 2]);
  assert.equal(c.node(3).replica.status.role, 'follower');
  const refused = c.step(3, (r, now) => assert.match(r.campaign(now) ?? '', /removed from the configuration: replica [12] holds a configuration from slot \d+ of members 1,2/));
  assert.deepEqual(refused.send, [], 'a refused campaign sends nothing');
  c.clear();
  run(5000, [1, 2, 3]); // many election timeouts
  assert.equal(c.out(3).send.filter((m) => m.type === 'prepare').length, 0, 'replica 3 campaigned again');
  assert.equal(c.node(1).replica.status.role, 'leader');
});

test('planted: members that ignore a non-member\'s prepare (as before session 23) leave it campaigning for good', () => {
  const { c, run } = removeWhileDown('member-ignores-non-member');
  c.clear();
  run(5000, [1, 2, 3]);
  assert.ok(c.out(3).send.filter((m) => m.type === 'prepare').length >= 5, 'replica 3 campaigns every election timeout');
  assert.equal(c.node(3).replica.status.removal, null);
});

test('a notMember that is not news (a configuration no newer than the candidate knows, or naming it) is ignored', () => {
  const c = new Cluster([1, 2, 3], { pipelineWindowSlots: 4 });
  // Replica 3 campaigns in [1, 2, 3] (from slot 1); a lagging member answers with what it knows.
  c.step(3, (r, now) => assert.equal(r.campaign(now), null));
  assert.equal(c.node(3).replica.status.role, 'candidate');
  for (const notice of [
    { configFromSlot: 1, members: [1, 2] }, // as old as replica 3's own
    { configFromSlot: 9, members: [1, 2, 3] }, // newer, but names it
  ]) {
    c.node(3).receive({ type: 'notMember', from: 1, to: 3, ...notice }, c.nowMs);
    assert.equal(c.node(3).replica.status.removal, null, JSON.stringify(notice));
    assert.equal(c.node(3).replica.status.role, 'candidate', JSON.stringify(notice));
  }
  // News: a newer configuration without it.
  c.node(3).receive({ type: 'notMember', from: 1, to: 3, configFromSlot: 9, members: [1, 2] }, c.nowMs);
  assert.deepEqual(c.node(3).replica.status.removal, { configFromSlot: 9, members: [1, 2], by: 1 });
  assert.equal(c.node(3).replica.status.role, 'follower');
});

test('a replica told of its removal forgets the notice once it learns a configuration as new (here: one that keeps it)', () => {
  const c = new Cluster([1, 2, 3], { pipelineWindowSlots: 4 });
  c.elect(1);
  c.node(3).receive({ type: 'notMember', from: 2, to: 3, configFromSlot: 3, members: [1, 2] }, c.nowMs);
  assert.notEqual(c.node(3).replica.status.removal, null);
  // The leader chooses [1, 3] at slot 2 (it governs from 6 > 3) and replica 3 learns it.
  assert.equal(c.step(1, (r, now) => assert.equal(r.proposeConfig([1, 3], now), null)).rejected.length, 0);
  c.stabilize();
  for (let i = 0; i < 4; i++) {
    c.nowMs += 50;
    for (const id of [1, 2, 3]) c.tick(id);
    c.stabilize();
  }
  assert.ok(c.node(3).replica.configs.at(-1)!.fromSlot >= 3);
  assert.equal(c.node(3).replica.status.removal, null, 'the notice is void: replica 3 knows a configuration as new');
});
