// Membership calls used in unusual but reasonable ways (found by a review of the runtime's API):
// adding a replica that was never started, two adds at once, an invalid id, a second close().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const addr = { host: '127.0.0.1', port: 1 };

async function cluster(name: string) {
  const dir = await mkdtemp(join(tmpdir(), `synod-${name}-`));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const started: SynodReplica[] = [];
  const start = async (id: number, join = false) => {
    const r = await SynodReplica.start({
      id, clusterId: name, dataDir: join_(dir, `r${id}`), members, join, listen: addr, stateMachine: new CounterMachine(),
      transport: network.createTransport({ replicaId: id }), logBackend: 'memory', logger: () => {},
    });
    started.push(r);
    return r;
  };
  const replicas = await Promise.all([1, 2, 3].map((id) => start(id)));
  const leader = await readyLeader(replicas);
  const close = async () => {
    await Promise.all(started.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  };
  return { leader, replicas, start, close };
}
const join_ = join;

test('addMember of a replica that never answered is not promoted, even on a cluster of few slots', async () => {
  const c = await cluster('add-absent');
  try {
    await c.leader.propose(enc('add:1'));
    assert.ok(c.leader.status().commitSlot < 64, 'fewer slots than the default caughtUpSlots');
    await assert.rejects(c.leader.addMember(9, addr, { timeoutMs: 1500 }), /replica 9 did not catch up/);
    assert.deepEqual(c.leader.status().members, [1, 2, 3]);
    assert.equal(new TextDecoder().decode(await c.leader.propose(enc('add:1'))), '2', 'the cluster still writes');
  } finally {
    await c.close();
  }
});

test('two addMember calls at once both take effect', async () => {
  const c = await cluster('add-two');
  try {
    await c.start(4, true);
    await c.start(5, true);
    await Promise.all([c.leader.addMember(4, addr, { timeoutMs: 15_000 }), c.leader.addMember(5, addr, { timeoutMs: 15_000 })]);
    const leader = await readyLeader([c.leader]);
    assert.deepEqual([...leader.status().members].sort(), [1, 2, 3, 4, 5]);
  } finally {
    await c.close();
  }
});

test('addMember refuses an invalid id or address before proposing anything; the leader keeps serving', async () => {
  const c = await cluster('add-invalid');
  try {
    for (const id of [0, -1, 1024, 2.5, Number.NaN]) await assert.rejects(c.leader.addMember(id, addr), /a replica id is an integer in 1\.\.1023/);
    await assert.rejects(c.leader.addMember(7, { host: '', port: 1 }), /needs a host and a port/);
    await assert.rejects(c.leader.addMember(7, { host: 'h', port: 70_000 }), /needs a host and a port/);
    assert.equal(new TextDecoder().decode(await c.leader.propose(enc('add:1'))), '1');
    assert.equal(c.leader.status().role, 'leader');
  } finally {
    await c.close();
  }
});

test('a second close() resolves only when the first has finished', async () => {
  const c = await cluster('close-twice');
  try {
    let firstDone = false;
    void c.leader.close().then(() => (firstDone = true));
    await c.leader.close();
    assert.equal(firstDone, true);
  } finally {
    await c.close();
  }
});

test('readIndex() waits as read() does, without the query; queryLocal() then reads the state applied', async () => {
  const c = await cluster('read-index');
  try {
    const dec = (b: Uint8Array) => new TextDecoder().decode(b);
    await c.leader.propose(enc('add:5'));
    const commit = c.leader.status().commitSlot;
    const slot = await c.leader.readIndex({ consistency: 'linearizable' });
    assert.ok(slot >= commit, `read index ${slot} below the commit slot ${commit} seen before the read`);
    assert.equal(dec(c.leader.queryLocal(new Uint8Array(0))), '5');
    const follower = c.replicas.find((r) => r !== c.leader)!;
    await assert.rejects(follower.readIndex({ consistency: 'linearizable' }), (e: Error) => e.name === 'NotLeaderError');
    // local with minSlot: waits for the slot, as read() does; past maxWaitMs a StaleReadError.
    const local = await follower.readIndex({ consistency: 'local', minSlot: commit, maxWaitMs: 5_000 });
    assert.ok(local >= commit);
    assert.equal(dec(follower.queryLocal(new Uint8Array(0))), '5');
    await assert.rejects(follower.readIndex({ consistency: 'local', minSlot: commit + 1_000 }), (e: Error) => e.name === 'StaleReadError');
    await assert.rejects(c.leader.readIndex({ consistency: 'LOCAL' as 'local' }), /consistency must be/);
  } finally {
    await c.close();
  }
});

test('read() refuses an unknown consistency instead of reading linearizably', async () => {
  const c = await cluster('read-consistency');
  try {
    await assert.rejects(c.leader.read(new Uint8Array(0), { consistency: 'LOCAL' as 'local' }), /consistency must be/);
  } finally {
    await c.close();
  }
});
