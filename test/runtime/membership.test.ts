import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import { SynodError } from '../../src/runtime/errors.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);
const addr = { host: '127.0.0.1', port: 1 };
const core = { pipelineWindowSlots: 8 };

/** The session registered (through the log) for each test client, by the client's label. */
const sessions = new Map<number, number>();

/** Writes through whoever leads, retrying on leader changes with the same session. */
async function write(replicas: () => SynodReplica[], clientId: number, seq: number, acked: string[]) {
  const value = `c${clientId}-${seq}:1`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const leader = await readyLeader(replicas());
    try {
      if (!sessions.has(clientId)) sessions.set(clientId, await leader.openSession({ timeoutMs: 2000 }));
      await leader.propose(enc(value), { clientId: sessions.get(clientId)!, seq, floor: seq, timeoutMs: 2000 });
      acked.push(value);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  throw new Error(`${value} never acknowledged`);
}

test('membership: add a replica as a learner, promote it, remove another (the leader), transfer leadership', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-members-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const machines = new Map<number, CounterMachine>();
  const start = (id: number, join = false) => {
    const m = new CounterMachine();
    machines.set(id, m);
    return SynodReplica.start({
      id, clusterId: 'm', dataDir: `${dir}/r${id}`, members, join, listen: addr, stateMachine: m,
      transport: network.createTransport({ replicaId: id }), logBackend: 'memory', core,
    });
  };
  let replicas = await Promise.all([1, 2, 3].map((id) => start(id)));
  const acked: string[] = [];
  try {
    for (let seq = 1; seq <= 20; seq++) await write(() => replicas, 1, seq, acked);
    // A joiner follows the log without a vote, then becomes a member.
    const r4 = await start(4, true);
    replicas.push(r4);
    const leader = await readyLeader(replicas);
    await assert.rejects(r4.propose(enc('x:1')), /not the leader|no leader/);
    const writer = (async () => {
      for (let seq = 21; seq <= 40; seq++) await write(() => replicas, 1, seq, acked);
    })();
    await leader.addMember(4, addr);
    await writer;
    assert.deepEqual(leader.status().members, [1, 2, 3, 4]);
    await until('the new member to apply everything', () => machines.get(4)!.applied.length === acked.length);
    // Removal: refuse what would leave no live quorum; allow a healthy one, even of the leader itself.
    const lead = await readyLeader(replicas);
    await lead.removeMember(lead.id);
    replicas = replicas.filter((r) => r !== lead);
    await lead.close();
    for (let seq = 41; seq <= 60; seq++) await write(() => replicas, 1, seq, acked);
    const next = await readyLeader(replicas);
    assert.equal(next.status().members.includes(lead.id), false);
    // Leadership transfer under load.
    const target = replicas.find((r) => r !== next)!;
    const load = (async () => {
      for (let seq = 61; seq <= 90; seq++) await write(() => replicas, 2, seq, acked);
    })();
    next.transferLeadership(target.id);
    await load;
    await until('the transfer target to lead', () => target.status().role === 'leader');
    // Every acknowledged write exactly once on every member, in the same order.
    await until('convergence', () => replicas.every((r) => machines.get(r.id)!.applied.length === acked.length));
    const reference = machines.get(replicas[0]!.id)!.applied;
    for (const r of replicas) assert.deepEqual(machines.get(r.id)!.applied, reference);
    for (const v of acked) assert.equal(reference.filter((x) => x === v).length, 1, `${v} exactly once`);
    // Removing a member when the rest could not form a live quorum is refused.
    const cur = await readyLeader(replicas);
    const others = replicas.filter((r) => r !== cur);
    await others[0]!.close();
    replicas = replicas.filter((r) => r !== others[0]);
    await assert.rejects(cur.removeMember(others[1]!.id), (e: unknown) => e instanceof SynodError && e.code === 'SYNOD_MEMBERSHIP');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('membership: a leader deposed while a learner catches up fails the add at once with NotLeaderError', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-members-deposed-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'm', dataDir: `${dir}/r${id}`, members, listen: addr, stateMachine: new CounterMachine(),
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory', core,
      }),
    ),
  );
  try {
    const leader = await readyLeader(replicas);
    // Replica 4 is never started: it cannot catch up, so the add waits for it (60 s by default).
    const started = Date.now();
    const adding = leader.addMember(4, addr, { caughtUpSlots: 0 });
    adding.catch(() => {});
    await until('the address of 4 is replicated (the add is waiting for it to catch up)', () => replicas.every((r) => r.status().appliedSlot >= leader.status().commitSlot && leader.status().commitSlot > 0), 5_000);
    await new Promise((r) => setTimeout(r, 200));
    const target = replicas.find((r) => r !== leader)!;
    leader.transferLeadership(target.id);
    await assert.rejects(adding, (e: unknown) => (e as SynodError).code === 'SYNOD_NOT_LEADER');
    assert.ok(Date.now() - started < 15_000, `the add failed when the leader was deposed, not at its deadline (${Date.now() - started} ms)`);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
