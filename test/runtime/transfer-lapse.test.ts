// A leadership transfer that does not happen lapses: the target is down, or its application
// vetoes leading. Before, the leader refused every proposal and read from the transfer on and kept
// heartbeating, so nobody campaigned: the cluster wrote nothing until another transfer.
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

/** A counter whose replica may refuse to become primary. */
class Vetoing extends CounterMachine {
  veto = false;
  canBecomePrimary(): boolean {
    return !this.veto;
  }
}

async function writeWithin(replicas: SynodReplica[], ms: number): Promise<SynodReplica> {
  const deadline = Date.now() + ms;
  for (;;) {
    const leader = await readyLeader(replicas, Math.max(1, deadline - Date.now()));
    try {
      await leader.propose(enc('add:1'), { timeoutMs: 1000 });
      return leader;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

for (const why of ['down', 'vetoes'] as const) {
  test(`a transfer to a member that ${why === 'down' ? 'is down' : 'vetoes leading'} lapses, and the cluster writes again`, async () => {
    const dir = await mkdtemp(join(tmpdir(), `synod-transfer-${why}-`));
    const network = new MemoryNetwork();
    const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
    const machines = new Map([1, 2, 3].map((id) => [id, new Vetoing()] as const));
    const replicas = await Promise.all(
      [1, 2, 3].map((id) =>
        SynodReplica.start({
          id, clusterId: `transfer-${why}`, dataDir: join(dir, `r${id}`), members, stateMachine: machines.get(id)!,
          transport: network.createTransport({ replicaId: id }), logBackend: 'memory', logger: () => {},
          core: { electionTimeoutMinMs: 300, electionTimeoutMaxMs: 400 },
        }),
      ),
    );
    const open = new Set(replicas);
    try {
      const leader = await writeWithin(replicas, 10_000);
      const target = replicas.find((r) => r !== leader)!;
      if (why === 'down') {
        await target.close();
        open.delete(target);
      } else {
        machines.get(target.id)!.veto = true;
      }
      leader.transferLeadership(target.id);
      await assert.rejects(leader.propose(enc('add:1'), { timeoutMs: 500 }), 'no proposals while the transfer is on');
      const next = await writeWithin([...open], 10_000);
      assert.equal(next.status().role, 'leader');
      if (why === 'vetoes') assert.notEqual(next.id, target.id, 'the vetoing member did not take over');
    } finally {
      await Promise.all([...open].map((r) => r.close()));
      await rm(dir, { recursive: true, force: true });
    }
  });
}
