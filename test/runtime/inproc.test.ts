import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import { NotLeaderError } from '../../src/runtime/errors.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function cluster(n: number, network: MemoryNetwork, dir: string, machines: CounterMachine[]) {
  const members = new Map(Array.from({ length: n }, (_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
  const replicas: SynodReplica[] = [];
  for (let id = 1; id <= n; id++) {
    machines[id - 1] ??= new CounterMachine();
    replicas.push(
      await SynodReplica.start({
        id,
        clusterId: 'test',
        dataDir: join(dir, `r${id}`),
        members,
        stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }),
        logBackend: 'memory',
        snapshotIntervalSlots: 20,
        compactionMarginSlots: 10,
        leaderSnapshotIntervalFactor: 1, // these tests watch the leader's periodic snapshots
      }),
    );
  }
  return replicas;
}

test('three in-process replicas elect a leader, replicate, snapshot, and agree', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-inproc-'));
  const network = new MemoryNetwork();
  const machines: CounterMachine[] = [];
  const replicas = await cluster(3, network, dir, machines);
  try {
    const leader = await readyLeader(replicas);
    // Waves of concurrent proposals: batched into slots, pipelined across the window.
    for (let wave = 0; wave < 40; wave++) {
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => leader.propose(enc(`add:${i % 3}`))));
      assert.equal(results.length, 5);
    }
    const follower = replicas.find((r) => r !== leader)!;
    await assert.rejects(follower.propose(enc('add:1')), NotLeaderError);
    const read = await leader.read(enc(''), { consistency: 'linearizable' });
    assert.equal(dec(read.result), String(machines[0]!.total === 0 ? machines.find((m) => m.total > 0)!.total : machines[leader.id - 1]!.total));
    // Everyone converges to the same applied commands.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !machines.every((m) => m.applied.length === 200)) await new Promise((r) => setTimeout(r, 20));
    for (const m of machines) assert.deepEqual(m.applied, machines[0]!.applied);
    // Snapshots are written in the background: give the periodic one a moment to land.
    const until = Date.now() + 5000;
    while (Date.now() < until && leader.status().snapshotSlot < 20) await new Promise((r) => setTimeout(r, 20));
    const st = leader.status();
    assert.ok(st.snapshotSlot >= 20, `a snapshot was taken (snapshot slot ${st.snapshotSlot})`);
    assert.ok(st.log.headLsn > 1, 'the log head moved past the compacted prefix');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('run-time knobs: snapshots can be disallowed and allowed again; the election timeout changes with validation', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-knobs-'));
  const network = new MemoryNetwork();
  const machines: CounterMachine[] = [];
  const replicas = await cluster(3, network, dir, machines);
  try {
    const leader = await readyLeader(replicas);
    for (const r of replicas) r.setSnapshotsAllowed(false);
    for (let wave = 0; wave < 30; wave++) await leader.propose(enc('add:1'));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(leader.status().snapshotSlot, 0, 'no periodic snapshot while disallowed');
    leader.setSnapshotsAllowed(true);
    await leader.propose(enc('add:1'));
    const until = Date.now() + 5000;
    while (Date.now() < until && leader.status().snapshotSlot === 0) await new Promise((r) => setTimeout(r, 20));
    assert.ok(leader.status().snapshotSlot >= 20, 'snapshots resume once allowed');
    assert.throws(() => leader.setElectionTimeout(10), /electionTimeoutMinMs must be >= leaseMs/);
    leader.setElectionTimeout(900, 1200);
    await leader.propose(enc('add:1'));
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
