// A member removed by a leader that was itself added later (and took over by a transfer) must
// learn that its removal governs and stop campaigning (docs/api.md: "A removed replica never
// campaigns"). Seen walking docs/operations.md by hand: add 4, `leader transfer 4`, `member remove 1`:
// replica 1 stayed a candidate at commit 78 for good, its ballot rising every election timeout,
// while 2, 3, 4 went on at 141 with members [2, 3, 4].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { sleep, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const addr = { host: '127.0.0.1', port: 1 };

test('a replica removed by a leader added later hears that its removal governs and never campaigns', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-removed-'));
  const network = new MemoryNetwork();
  const initial = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const start = (id: number, joining = false) =>
    SynodReplica.start({
      id, clusterId: 'r', dataDir: `${dir}/r${id}`, members: initial, join: joining, listen: addr, stateMachine: new CounterMachine(),
      transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
    });
  const replicas = new Map<number, SynodReplica>();
  try {
    for (const id of [1, 2, 3]) replicas.set(id, await start(id));
    let leader: SynodReplica | undefined;
    await until('a leader', () => (leader = [...replicas.values()].find((r) => r.status().role === 'leader')) !== undefined, 20_000);
    await leader!.propose(enc('w1:1'), { timeoutMs: 5_000 });
    replicas.set(4, await start(4, true));
    await leader!.addMember(4, addr);
    const four = replicas.get(4)!;
    for (let attempt = 0; four.status().role !== 'leader'; attempt++) {
      const l = [...replicas.values()].find((r) => r.status().role === 'leader');
      if (l && l !== four) {
        try {
          l.transferLeadership(4);
        } catch {
          // not the leader any more: ask the next one
        }
      }
      await sleep(300);
      assert.ok(attempt < 60, 'replica 4 never led');
    }
    await four.removeMember(1);
    const one = replicas.get(1)!;
    await until('replica 1 to learn that its removal governs', () => !one.status().members.includes(1), 10_000).catch(() => {});
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      seen.add(one.status().role);
      await sleep(20);
    }
    assert.deepEqual(one.status().members, four.status().members, `replica 1's members (commit ${one.status().commitSlot}; the leader's ${four.status().commitSlot})`);
    assert.ok(!seen.has('candidate'), `replica 1 campaigned after its removal (roles seen: ${[...seen]})`);
    assert.equal(four.status().role, 'leader');
  } finally {
    await Promise.all([...replicas.values()].map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
