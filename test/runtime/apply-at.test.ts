// StateMachine.applyAt / prefetchAt: a machine that has them gets the commands of encoded batches
// (a follower's accepts, a replayed log, the leader's own batches once encoded) where they lie in
// the batch's bytes, and must end in the same state as one fed through apply().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import type { ApplyContext } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);

/** The counter, with applyAt and prefetchAt that check what they are given and count their calls. */
class CounterAtMachine extends CounterMachine {
  applies = 0;
  appliesAt = 0;
  prefetchedAt = 0;
  /** Every applyAt's slot and command, to compare with the prefetchAt lists of that slot. */
  prefetchedCommands: string[] = [];
  override apply(command: Uint8Array): Uint8Array {
    this.applies++;
    return super.apply(command);
  }
  applyAt(bytes: Uint8Array, offset: number, length: number, _context: ApplyContext): Uint8Array {
    assert.ok(offset >= 0 && length >= 0 && offset + length <= bytes.length, 'the command lies inside the bytes');
    this.appliesAt++;
    // Through super.apply: the command's bytes, as apply() would have had them.
    return super.apply(bytes.subarray(offset, offset + length));
  }
  prefetchAt(bytes: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): void {
    assert.ok(count > 1 && offsets.length >= count && lengths.length >= count);
    this.prefetchedAt++;
    for (let i = 0; i < count; i++) this.prefetchedCommands.push(new TextDecoder().decode(bytes.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
  }
}

test('followers, a replayed log and the leader\'s own large batches apply through applyAt (prefetchAt before a slot of several), to the same state on every replica', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-apply-at-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const core = { electionTimeoutMinMs: 20_000, electionTimeoutMaxMs: 40_000 };
  const start = (id: number, machine: CounterAtMachine) =>
    SynodReplica.start({ id, clusterId: 'apply-at', dataDir: join(dir, `r${id}`), members, stateMachine: machine, transport: network.createTransport({ replicaId: id }), logBackend: 'file', logger: () => {}, core });
  const machines = [1, 2, 3].map(() => new CounterAtMachine());
  const replicas = await Promise.all([1, 2, 3].map((id) => start(id, machines[id - 1]!)));
  let restarted: SynodReplica | null = null;
  try {
    replicas[0]!.campaign();
    const leader = await readyLeader(replicas);
    const s = await leader.openSession();
    await leader.propose(enc('a:1'), { clientId: s, seq: 1, floor: 1 });
    // Many in one turn: one slot of several commands (prefetchAt), with a retry of one of them.
    const burst = Array.from({ length: 40 }, (_, i) => leader.propose(enc(`b:${i + 1}`), { clientId: s, seq: i + 2, floor: 1 }));
    burst.push(leader.propose(enc('b:3'), { clientId: s, seq: 4, floor: 1 })); // the same (clientId, seq): runs once
    await Promise.all(burst);
    const total = 1 + (40 * 41) / 2;
    await until('every replica applied everything', () => machines.every((m) => m.total === total));
    const lead = machines[leader.id - 1]!;
    const followers = machines.filter((m) => m !== lead);
    // The leader holds a batch of its own by its encoding once its log record is made (if the
    // encoding was cached: four commands or more), and applies those through applyAt too.
    assert.equal(lead.applies + lead.appliesAt, 41);
    assert.ok(lead.appliesAt >= 4, `the burst's large slots through applyAt on the leader too (${lead.appliesAt})`);
    for (const f of followers) {
      assert.deepEqual([f.applies, f.appliesAt], [0, 41], 'a follower applies accepted batches through applyAt only');
      assert.deepEqual(f.applied, lead.applied);
      assert.ok(f.prefetchedAt >= 1, 'a slot of several commands was prefetched');
      // The slot's commands as they lie in the batch (the runtime's own commands, client 0, too).
      const clients = f.prefetchedCommands.filter((c) => /^[ab]:\d+$/.test(c));
      assert.ok(clients.length >= 2);
      for (const c of clients) assert.ok(lead.applied.includes(c), `prefetched ${c} is one of the commands`);
    }
    // A follower restarted from its log replays it through applyAt.
    const follower = replicas.find((r) => r !== leader)!;
    await follower.close();
    const fresh = new CounterAtMachine();
    restarted = await start(follower.id, fresh);
    await until('the restarted follower caught up', () => fresh.total === total);
    assert.equal(fresh.applies, 0);
    assert.ok(fresh.appliesAt > 0);
    assert.deepEqual(fresh.applied.slice(-41), lead.applied.slice(-41));
  } finally {
    await Promise.all([...replicas, ...(restarted ? [restarted] : [])].map((r) => r.close())); // close() again is a no-op
    await rm(dir, { recursive: true, force: true });
  }
});
