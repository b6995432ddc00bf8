// A replica's own session (the one its session-less proposals use, e.g. every plain HTTP PUT of
// the KV server) is reserved through the log: no client may name it on any replica. Before, a
// client writing under it with the seqs the replica would use next made the replica's later
// proposals answer as duplicates, never applied; a huge floor made all of them fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { decodeSnapshotBody, encodeSnapshotBody } from '../../src/runtime/snapshot-body.js';
import { SessionTable } from '../../src/core/sessions.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';
import { counterCluster } from './counter-cluster.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const ownSessionOf = (r: SynodReplica) => (r as unknown as { ownSession: number }).ownSession;

test("no client may name a replica's own session, on any replica, after a snapshot and a restart", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-own-session-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const machines = new Map<number, CounterMachine>();
  const start = (id: number) => {
    const machine = new CounterMachine();
    machines.set(id, machine);
    return SynodReplica.start({
      id, clusterId: 'own-session', dataDir: join(dir, `r${id}`), members, stateMachine: machine,
      transport: network.createTransport({ replicaId: id }), logBackend: 'file', logger: () => {},
    });
  };
  const replicas = await Promise.all([1, 2, 3].map(start));
  try {
    const leader = await readyLeader(replicas);
    await leader.propose(enc('add:1')); // opens the leader's own session
    const own = ownSessionOf(leader);
    assert.ok(own >= 1);
    const applied = leader.status().appliedSlot;
    await until('every replica applied the reservation', () => replicas.every((r) => r.status().appliedSlot >= applied));
    for (const r of replicas) {
      // The next seqs the leader would use, and a floor that would shut the session.
      await assert.rejects(r.propose(enc('add:100'), { clientId: own, seq: 2, floor: 0 }), (e: Error & { code?: string }) => e.code === 'SYNOD_BAD_SESSION' && /a replica's own/.test(e.message));
      await assert.rejects(r.propose(enc('add:100'), { clientId: own, seq: 2 ** 53 - 1, floor: 2 ** 53 - 1 }), /a replica's own/);
    }
    for (let i = 0; i < 3; i++) await leader.propose(enc('add:1'));
    await until('applied everywhere', () => [...machines.values()].every((m) => m.total === 4));

    // A follower's snapshot carries the reservation; restarted from it, it still refuses.
    const follower = replicas.find((r) => r !== leader)!;
    await follower.takeSnapshot();
    await follower.close();
    const restarted = await start(follower.id);
    replicas[replicas.indexOf(follower)] = restarted;
    await assert.rejects(restarted.propose(enc('add:100'), { clientId: own, seq: 5 }), /a replica's own/);
    // A session a client opened is its own to use.
    const mine = await leader.openSession();
    assert.equal(new TextDecoder().decode(await leader.propose(enc('add:1'), { clientId: mine, seq: 1 })), '5');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test("seq or floor without a clientId is refused: it would have named the replica's own session", async () => {
  const c = await counterCluster('own-seq');
  const { leader, machines } = c;
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  try {
    assert.equal(dec(await leader.propose(enc('add:1'))), '1'); // own seq 1
    // Before: seq 3 went under the own session, and the replica's own third call (below) was
    // answered with this one's result, never applied; the floor shut every later own call out.
    const refused = (e: Error & { code?: string }) => e.code === 'SYNOD_BAD_SESSION' && /need a clientId/.test(e.message);
    await assert.rejects(leader.propose(enc('add:1000'), { seq: 3 }), refused);
    await assert.rejects(leader.propose(enc('add:1000'), { floor: 2 ** 40 }), refused);
    // A session named without a seq took one from the own session's counter: refused too.
    const mine = await leader.openSession();
    await assert.rejects(leader.propose(enc('add:1000'), { clientId: mine }), /a clientId needs a seq/);
    assert.equal(dec(await leader.propose(enc('add:2'))), '3');
    assert.equal(dec(await leader.propose(enc('add:4'))), '7'); // own seq 3: applied, its own result
    assert.equal(machines[0]!.total, 7);
  } finally {
    await c.close();
  }
});

test('snapshot body: own sessions round-trip, are absent from older bodies, and are validated', () => {
  const body = { slot: 7, configs: [{ fromSlot: 1, members: [1, 2, 3] }], addresses: [], incarnations: [], sessions: new SessionTable<Uint8Array>(), app: enc('app') };
  assert.deepEqual(decodeSnapshotBody(encodeSnapshotBody({ ...body, ownSessions: [3, 9] })).ownSessions, [3, 9]);
  assert.deepEqual(decodeSnapshotBody(encodeSnapshotBody(body)).ownSessions, []);
  const bytes = encodeSnapshotBody({ ...body, ownSessions: [3] });
  const text = Buffer.from(bytes).toString('latin1').replace('"ownSessions":[3]', '"ownSessions":[0]');
  assert.throws(() => decodeSnapshotBody(new Uint8Array(Buffer.from(text, 'latin1'))), /malformed header/);
});
