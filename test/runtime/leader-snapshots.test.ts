// A leader takes snapshots leaderSnapshotIntervalFactor times less often than its followers: its
// capture pauses every write of the cluster, a follower's only that follower.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

setContracts(true);
const enc = (s: string) => new TextEncoder().encode(s);

async function snapshotCounts(leaderSnapshotIntervalFactor: number | undefined): Promise<{ leader: number; followers: number[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-leader-snap-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const machines = [1, 2, 3].map(() => new CounterMachine());
  const replicas: SynodReplica[] = [];
  try {
    for (const id of [1, 2, 3]) {
      replicas.push(
        await SynodReplica.start({
          id, clusterId: 'leader-snap', dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!,
          transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
          snapshotIntervalSlots: 10, compactionMarginSlots: 5,
          ...(leaderSnapshotIntervalFactor === undefined ? {} : { leaderSnapshotIntervalFactor }),
        }),
      );
    }
    const leader = await readyLeader(replicas);
    // One slot each, spaced so that a snapshot (written and fsynced in the background) is done
    // before the next is due even on a busy machine: the counts then follow the intervals.
    for (let i = 0; i < 240; i++) {
      await leader.propose(enc('add:1'));
      await new Promise((r) => setTimeout(r, 3));
    }
    await until('every replica applied every command', () => machines.every((m) => m.applied.length === 240));
    await new Promise((r) => setTimeout(r, 100)); // snapshots in flight land
    return { leader: leader.counters().snapshotsTaken, followers: replicas.filter((r) => r !== leader).map((r) => r.counters().snapshotsTaken) };
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

test('the leader snapshots leaderSnapshotIntervalFactor (default 4) times less often than its followers', { timeout: 30_000 }, async () => {
  // 240 slots, a snapshot due every 10 slots on a follower (~24) but every 40 on the leader: at
  // most 240 / 40 + 1 (the first comes early by the replica id's share).
  const byDefault = await snapshotCounts(undefined);
  for (const f of byDefault.followers) assert.ok(f >= 10, `a follower took ${f} snapshots`);
  assert.ok(byDefault.leader >= 2 && byDefault.leader <= 7, `leader ${byDefault.leader}, followers ${byDefault.followers}`);
  const even = await snapshotCounts(1);
  assert.ok(even.leader >= 10, `factor 1: leader ${even.leader}, followers ${even.followers}`);
});

test('leaderSnapshotIntervalFactor below 1 is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-leader-snap-bad-'));
  try {
    const network = new MemoryNetwork();
    await assert.rejects(
      SynodReplica.start({ id: 1, clusterId: 'x', dataDir: join(dir, 'r1'), members: new Map([[1, { host: '127.0.0.1', port: 1 }]]), stateMachine: new CounterMachine(), transport: network.createTransport({ replicaId: 1 }), logBackend: 'memory', leaderSnapshotIntervalFactor: 0.5 }),
      /leaderSnapshotIntervalFactor must be a number >= 1/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
