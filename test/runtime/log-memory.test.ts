// The log held in memory is bounded (logMemoryBytesMax): entries leave the protocol core once
// applied, the recent log keeps the records of the latest applied slots, and a peer that lags
// further catches up from the log on disk (no snapshot while the disk log still has the slots).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import type { ReplicaOptions } from '../../src/runtime/api.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);

async function cluster(dir: string, network: MemoryNetwork, machines: CounterMachine[], extra: Partial<ReplicaOptions>) {
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const replicas: SynodReplica[] = [];
  for (const id of [1, 2, 3]) {
    machines[id - 1] = new CounterMachine();
    replicas.push(
      await SynodReplica.start({
        id,
        clusterId: 'log-memory',
        dataDir: join(dir, `r${id}`),
        members,
        stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }),
        logBackend: 'file',
        snapshotIntervalSlots: 1_000_000, // no snapshot: what a lagging peer gets comes from the log
        ...extra,
      }),
    );
  }
  return replicas;
}

/** Waves of proposals: each wave is one or a few slots. */
async function waves(leader: SynodReplica, count: number, tag: string): Promise<void> {
  for (let w = 0; w < count; w++) await Promise.all(Array.from({ length: 4 }, (_, i) => leader.propose(enc(`${tag}${w}-${i}:1`))));
}

test('a follower cut off for a while catches up from the log on disk, not a snapshot; memory stays bounded', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-logmem-'));
  const network = new MemoryNetwork();
  const machines: CounterMachine[] = [];
  // About two slots of records in memory: nearly every catch-up goes to the disk log.
  const replicas = await cluster(dir, network, machines, { logMemoryBytesMax: 400 });
  try {
    const leader = await readyLeader(replicas);
    const [lagging, other] = replicas.filter((r) => r !== leader) as [SynodReplica, SynodReplica];
    await waves(leader, 5, 'a');
    network.partition([[leader.id, other.id]]);
    await waves(leader, 40, 'b');
    network.heal();
    await waves(leader, 3, 'c');
    await until('every replica applied every command', () => machines.every((m) => m.applied.length === 48 * 4));
    for (const m of machines) assert.deepEqual(m.applied, machines[0]!.applied);
    assert.equal(lagging.counters().snapshotsInstalled, 0, 'no snapshot: the log had every slot');
    const fromDisk = replicas.reduce((n, r) => n + r.counters().catchupsFromDisk, 0);
    assert.ok(fromDisk >= 1, 'some catch-up was read back from the log on disk');
    for (const r of replicas) {
      const st = r.status();
      // The core keeps nothing applied; the recent log at most its bound plus one slot.
      assert.ok(st.log.memoryStartSlot > st.appliedSlot - 1, `replica ${r.id}: core holds from slot ${st.log.memoryStartSlot}, applied ${st.appliedSlot}`);
      assert.ok(st.log.memoryBytes <= 400 + 400 / 8 + 1024, `replica ${r.id}: ${st.log.memoryBytes} bytes of log in memory`);
    }
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('a short lag is served from the recent log in memory (no disk read)', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-logmem-'));
  const network = new MemoryNetwork();
  const machines: CounterMachine[] = [];
  const replicas = await cluster(dir, network, machines, {});
  try {
    const leader = await readyLeader(replicas);
    const other = replicas.find((r) => r !== leader)!;
    network.partition([[leader.id, other.id]]);
    await waves(leader, 10, 'a');
    network.heal();
    await waves(leader, 2, 'b');
    await until('every replica applied every command', () => machines.every((m) => m.applied.length === 12 * 4));
    for (const m of machines) assert.deepEqual(m.applied, machines[0]!.applied);
    assert.equal(replicas.reduce((n, r) => n + r.counters().catchupsFromDisk, 0), 0, 'served from memory');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
