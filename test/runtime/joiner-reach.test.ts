// A joiner started with the initial members only (what an operator knows from the cluster's
// first day) must catch up even when the leader is a replica added later: its address is in a
// log the joiner has not read yet. The joiner asks a member it can reach for catch-up (any member
// answers with chosen entries), learns the address book from the log, then reaches the leader.
// Found by the nemesis (membership faults): 4 of 8 adds timed out in one 600 s run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const addr = { host: '127.0.0.1', port: 1 };

/**
 * `compacting`: the members' logs are compacted under snapshots (every 10 slots, 2 KiB of log kept
 * in memory), so the member the joiner asks answers it from its durable log or with a snapshot.
 */
async function joinerReach(compacting: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-joiner-'));
  const network = new MemoryNetwork();
  const initial = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const machines = new Map<number, CounterMachine>();
  const start = (id: number, joining = false) => {
    const m = new CounterMachine();
    machines.set(id, m);
    return SynodReplica.start({
      id, clusterId: 'j', dataDir: `${dir}/r${id}`, members: initial, join: joining, listen: addr, stateMachine: m,
      transport: network.createTransport({ replicaId: id }), logBackend: 'memory', core: { pipelineWindowSlots: 8 },
      ...(compacting ? { snapshotIntervalSlots: 10, compactionMarginSlots: 2, logMemoryBytesMax: 2048, logger: () => {} } : {}),
    });
  };
  const replicas = new Map<number, SynodReplica>();
  for (const id of [1, 2, 3]) replicas.set(id, await start(id));
  const leader = async () => {
    let found: SynodReplica | undefined;
    await until('a leader', () => {
      found = [...replicas.values()].find((r) => r.status().role === 'leader');
      return found !== undefined;
    }, 20_000);
    return found!;
  };
  let count = 0;
  const writeSome = async (n: number) => {
    for (let i = 0; i < n; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await (await leader()).propose(enc(`w${count + 1}:1`), { timeoutMs: 2_000 });
          count++;
          break;
        } catch (e) {
          if (attempt > 50) throw e;
          await new Promise((r) => setTimeout(r, 30));
        }
      }
    }
  };
  try {
    await writeSome(10);
    // 4 joins and takes over; 1 leaves. The joiner below knows 1, 2, 3 only.
    replicas.set(4, await start(4, true));
    await (await leader()).addMember(4, addr);
    for (let attempt = 0; replicas.get(4)!.status().role !== 'leader'; attempt++) {
      const l = await leader();
      if (l.id !== 4) {
        try {
          l.transferLeadership(4);
        } catch (e) {
          if (attempt > 20) throw e;
        }
      }
      await new Promise((r) => setTimeout(r, 300));
      if (attempt > 60) throw new Error(`replica 4 never led: ${JSON.stringify([...replicas.values()].map((r) => [r.id, r.status().role, r.status().members]))}`);
    }
    await replicas.get(4)!.removeMember(1);
    await replicas.get(1)!.close();
    replicas.delete(1);
    await writeSome(compacting ? 60 : 10);
    replicas.set(5, await start(5, true));
    await replicas.get(4)!.addMember(5, addr, { timeoutMs: 15_000 });
    await writeSome(10);
    await until('the joiner to apply every write', () => machines.get(5)!.applied.length === count, 20_000);
    assert.deepEqual(machines.get(5)!.applied, machines.get(4)!.applied);
    assert.deepEqual(replicas.get(4)!.status().members, [2, 3, 4, 5]);
  } finally {
    await Promise.all([...replicas.values()].map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

test('a joiner that knows only the initial members catches up from one of them and reaches a leader added later', { timeout: 90_000 }, async () => {
  await joinerReach(false);
});

// Found by test/runtime/power-loss-members.test.ts (seeds 6 and 7: 'replica 6 did not catch up
// in time', the joiner at slot 0 for good, the leader not an initial member): the joiner redirected
// its catch-up to an initial member it could reach, but below its log start a follower answers
// only members and learners (core.mayFetchLog), and only the leader knows its learners; nor was
// the joiner among the follower's transport peers. Now the leader's hello names where it listens,
// so the joiner asks the leader itself.
test('a joiner that knows only the initial members catches up though the members\' logs were compacted', { timeout: 90_000 }, async () => {
  await joinerReach(true);
});
