// The power-loss tests' check() (power-loss-cluster.ts) when a membership change is chosen but
// does not govern yet. A configuration chosen at slot i governs from i + W: a leader cut between
// the two leaves the change to its successor, which recovers it and fills the slots up to i + W
// with no-ops — while check() waits for the members to converge. Here every replica is cut the
// moment a removal is chosen (before the no-ops), then restarted, then checked. The members list
// must be the one the replicas reached, compared at one commit slot: check() read the leader's
// list before its wait, and then compared the replicas with a list older than their slots
// ('replica 1's members differ from leader 1's: [1, 2] vs [1, 2, 3]', the shape of '[1, 4, 5] vs
// the leader's [1, 2, 4, 5]' seen once in power-loss-members), or waited for a replica the change
// had removed, which hears no commit notices after it (a 30 s convergence timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import { Prng } from '../../src/sim/prng.js';
import { check, newTotals, PowerLossCluster, Workload } from './power-loss-cluster.js';
import { readyLeader, sleep } from './wait.js';

setContracts(true);

const IDS = [1, 2, 3] as const;

async function removalChosenThenCut(seed: number, diskLost: boolean): Promise<void> {
  const prng = new Prng(seed);
  const cluster = new PowerLossCluster({ clusterId: 'power-loss-check', seed, prng, totals: newTotals(), fault: null, ids: IDS });
  let workload: Workload | null = null;
  try {
    await Promise.all(IDS.map((id) => cluster.start(id)));
    workload = new Workload(cluster);
    const leader = await readyLeader(cluster.live().map((l) => l.replica), 15_000);
    await sleep(200);
    const gone = IDS.find((id) => id !== leader.id)!;
    if (diskLost) cluster.retire(gone);
    const removing = leader.removeMember(gone, { timeoutMs: 10_000 }).then(
      () => 'acknowledged',
      (e: unknown) => String(e),
    );
    // The moment the removal is chosen (the leader's configurations gain an epoch), before it governs.
    while (leader.status().configs.length < 2) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.ok(leader.status().members.includes(gone), 'the removal is chosen and does not govern yet');
    const ids = [...cluster.lives.keys()];
    for (const id of ids) cluster.cut(id);
    assert.notEqual(await removing, 'acknowledged', 'the call was cut short');
    await workload.pause();
    await Promise.all(ids.map((id) => cluster.start(id)));
    const { members } = await check(cluster, workload, `removal of ${gone} chosen, all cut before it governed`);
    // Chosen, so in effect after the restart (the new leader recovered it and filled the gap).
    assert.deepEqual(members, IDS.filter((id) => id !== gone));
  } finally {
    await workload?.stop();
    await cluster.stop();
  }
}

test('check() after a removal chosen before a power cut of every replica: the removed replica\'s disk lost', { timeout: 60_000 }, async () => {
  await removalChosenThenCut(1, true);
});

test('check() after a removal chosen before a power cut of every replica: the removed replica restarts', { timeout: 60_000 }, async () => {
  await removalChosenThenCut(2, false);
});
