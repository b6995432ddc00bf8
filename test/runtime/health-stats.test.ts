// Replica health, interval statistics, and copying state from a named replica on demand
// (RSL's GetReplicasInformation, GetStatisticsSnapshot, CopyStateFromReplica).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import { setContracts } from '../../src/core/contracts.js';
import { SynodError } from '../../src/runtime/errors.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);

test('health, statistics intervals, and copyStateFrom a named replica', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-health-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const machines = [1, 2, 3].map(() => new CounterMachine());
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'h', dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
      }),
    ),
  );
  try {
    const leader = await readyLeader(replicas);
    leader.statistics(); // start a fresh interval
    for (let i = 1; i <= 30; i++) await leader.propose(enc(`w${i}:1`));
    const stats = leader.statistics();
    assert.ok(stats.slotsExecuted >= 30 && stats.commandsExecuted === 30, JSON.stringify(stats));
    assert.equal(stats.proposals, 32, 'the 30 writes, and the registration of the replica\'s own session and its reservation (an ownSession command)');
    assert.ok(stats.votingTime.count >= 30 && stats.votingTime.p99Ms >= stats.votingTime.p50Ms && stats.votingTime.maxMs >= stats.votingTime.p99Ms);
    assert.ok(stats.log.commits > 0 && stats.log.appends > 0 && stats.log.bytesWritten > 0 && stats.log.commitLatency.count > 0);
    const idle = leader.statistics();
    assert.equal(idle.commandsExecuted, 0, 'an interval snapshot counts from the previous call');
    assert.equal(idle.votingTime.count, 0);

    // Health: every peer connected, acknowledging the commit point, no failures.
    const commit = leader.status().commitSlot;
    await new Promise((r) => setTimeout(r, 200)); // a heartbeat round or two
    const health = leader.health();
    const peers = replicas.filter((r) => r !== leader).map((r) => String(r.id));
    assert.deepEqual(Object.keys(health).sort(), peers.sort());
    for (const p of peers) {
      assert.equal(health[p]!.connected, true);
      assert.equal(health[p]!.consecutiveFailures, 0);
      assert.ok((health[p]!.lastAckedSlot ?? -1) >= commit, `peer ${p} acked ${health[p]!.lastAckedSlot} < ${commit}`);
    }
    const follower = replicas.find((r) => r !== leader)!;
    assert.equal(Object.values(follower.health()).every((h) => h.lastAckedSlot === null), true, 'progress is the leader view');

    // copyStateFrom: a follower that gets no protocol messages falls behind; it copies the
    // leader's state (a snapshot taken and shipped on demand) and is equal to the leader at that slot.
    const lagging = replicas.find((r) => r !== leader && r !== follower)!;
    network.setDropFilter((_from, to, frame) => to === lagging.id && frame[0] === MESSAGE_FORMAT_VERSION);
    for (let i = 31; i <= 50; i++) await leader.propose(enc(`w${i}:1`));
    const behind = lagging.status().appliedSlot;
    assert.ok(behind < leader.status().appliedSlot);
    const slot = await lagging.copyStateFrom(leader.id, { timeoutMs: 10_000 });
    assert.ok(slot > behind, `installed slot ${slot} above ${behind}`);
    assert.equal(lagging.status().appliedSlot, slot);
    assert.equal(machines[lagging.id - 1]!.total, 50);
    assert.deepEqual(machines[lagging.id - 1]!.applied, machines[leader.id - 1]!.applied);
    assert.equal(lagging.counters().snapshotsInstalled, 1);
    await assert.rejects(lagging.copyStateFrom(99), (e: unknown) => e instanceof SynodError && e.code === 'SYNOD_COPY_STATE');
    network.setDropFilter(null);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
