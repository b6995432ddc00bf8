// A leader takes snapshots leaderSnapshotIntervalFactor times less often than its followers: its
// capture pauses every write of the cluster, a follower's only that follower. With
// leaderAdoptsSnapshots (off by default) it makes none at all: it adopts a follower's, making its
// own only when none comes.
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

interface Counts {
  leader: number;
  adopted: number;
  followers: number[];
  /** The leader's snapshot slot at the end. */
  leaderSnapshotSlot: number;
  /** The leader restarted from its data directory alone: the snapshot it found, and what a fresh machine then holds. */
  restartedSnapshotSlot: number;
  restartedTotal: number;
  restartedApplied: number;
  proposed: number;
}

/** The restarted leader restored its latest snapshot (adopted or its own): a consistent machine with the commands up to it. */
function assertRestored(c: Counts): void {
  assert.equal(c.restartedSnapshotSlot, c.leaderSnapshotSlot, 'the restart found the latest snapshot');
  assert.equal(c.restartedTotal, c.restartedApplied, 'one add:1 per applied command');
  assert.ok(c.restartedApplied >= 100 && c.restartedApplied <= c.proposed, `restored ${c.restartedApplied} of ${c.proposed} commands (snapshot slot ${c.leaderSnapshotSlot})`);
}

async function snapshotCounts(leaderSnapshotIntervalFactor: number | undefined, leaderAdoptsSnapshots?: boolean, dropRequests = false): Promise<Counts> {
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
          ...(leaderAdoptsSnapshots === undefined ? {} : { leaderAdoptsSnapshots }),
          ...(leaderSnapshotIntervalFactor === undefined ? {} : { leaderSnapshotIntervalFactor }),
        }),
      );
    }
    const leader = await readyLeader(replicas);
    // Snapshot requests (frame kind 0xf1) lost: no follower ever ships one.
    if (dropRequests) network.setDropFilter((_from, _to, frame) => frame[0] === 0xf1);
    // One slot each, spaced so that a snapshot (written and fsynced in the background) is done
    // before the next is due even on a busy machine: the counts then follow the intervals.
    for (let i = 0; i < 240; i++) {
      await leader.propose(enc('add:1'));
      await new Promise((r) => setTimeout(r, 3));
    }
    let proposed = 240;
    // No snapshot to adopt comes: the leader's own is due once the ask has timed out (3 s).
    const deadline = Date.now() + 10_000;
    while (dropRequests && leader.counters().snapshotsTaken === 0 && Date.now() < deadline) {
      await leader.propose(enc('add:1'));
      proposed++;
      await new Promise((r) => setTimeout(r, 50));
    }
    await until('every replica applied every command', () => machines.every((m) => m.applied.length === proposed));
    // A snapshot still being written lands (else the restart below could find one newer than the
    // status read here; waiting a fixed 100 ms was not enough on a loaded machine).
    for (const r of replicas) await (r as unknown as { snapshotInFlight: Promise<unknown> | null }).snapshotInFlight?.catch(() => {});
    const c = leader.counters();
    const counts = { leader: c.snapshotsTaken, adopted: c.snapshotsAdopted, followers: replicas.filter((r) => r !== leader).map((r) => r.counters().snapshotsTaken), leaderSnapshotSlot: leader.status().snapshotSlot };
    // The leader's data directory alone (the log is in memory here: only its snapshot survives)
    // brings a fresh machine back to the commands that snapshot covers.
    const id = leader.id;
    await leader.close();
    const fresh = new CounterMachine();
    const again = await SynodReplica.start({
      id, clusterId: 'leader-snap', dataDir: join(dir, `r${id}`), members, stateMachine: fresh,
      transport: new MemoryNetwork().createTransport({ replicaId: id }), logBackend: 'memory',
    });
    replicas[id - 1] = again;
    return { ...counts, restartedSnapshotSlot: again.status().snapshotSlot, restartedTotal: fresh.total, restartedApplied: fresh.applied.length, proposed };
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

test('by default the leader snapshots leaderSnapshotIntervalFactor (default 4) times less often than its followers', { timeout: 30_000 }, async () => {
  // 240 slots, a snapshot due every 10 slots on a follower (~24) but every 40 on the leader: at
  // most 240 / 40 + 1 (the first comes early by the replica id's share).
  const byDefault = await snapshotCounts(undefined);
  for (const f of byDefault.followers) assert.ok(f >= 10, `a follower took ${f} snapshots`);
  assert.ok(byDefault.leader >= 2 && byDefault.leader <= 7, `leader ${byDefault.leader}, followers ${byDefault.followers}`);
  assert.equal(byDefault.adopted, 0);
  const even = await snapshotCounts(1);
  assert.ok(even.leader >= 10, `factor 1: leader ${even.leader}, followers ${even.followers}`);
  for (const c of [byDefault, even]) assertRestored(c);
});

test('with leaderAdoptsSnapshots the leader adopts its followers\' snapshots instead of making its own, and restarts from them', { timeout: 30_000 }, async () => {
  const c = await snapshotCounts(undefined, true);
  assert.equal(c.leader, 0, `the leader made ${c.leader} snapshots of its own`);
  // Due every 40 slots from the last snapshot's slot; an adopted one is a follower's latest, up to
  // its interval (10 slots) behind, so the next is due ~30 slots on: 240 / 30 + 1.
  assert.ok(c.adopted >= 2 && c.adopted <= 10, `adopted ${c.adopted}`);
  assert.ok(c.leaderSnapshotSlot >= 120, `the leader's snapshot is recent: slot ${c.leaderSnapshotSlot}`);
  assertRestored(c);
});

test('a leader whose followers send no snapshot makes its own (after SNAPSHOT_FETCH_TIMEOUT_MS)', { timeout: 30_000 }, async () => {
  const c = await snapshotCounts(undefined, true, true);
  assert.equal(c.adopted, 0);
  assert.ok(c.leader >= 1, `the leader made ${c.leader} of its own`);
  assertRestored(c);
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
