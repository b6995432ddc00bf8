// Exclusive requests (alone in their slot) and the "last request" (the replica set stops after it,
// durably): RSL's ReplicateRequestExclusiveVote and isLastDecree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeValue, encodeValue } from '../../src/codec/values.js';
import { setContracts } from '../../src/core/contracts.js';
import { sameValue } from '../../src/core/values.js';
import type { ApplyContext } from '../../src/runtime/api.js';
import { StoppedError } from '../../src/runtime/errors.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);

/** The counter, also recording which slot each command ran in. */
class SlotMachine extends CounterMachine {
  slotOf = new Map<string, number>();
  override apply(command: Uint8Array, context?: ApplyContext): Uint8Array {
    this.slotOf.set(new TextDecoder().decode(command), context!.slot);
    return super.apply(command);
  }
  override snapshot(): Uint8Array {
    return enc(JSON.stringify({ total: this.total, applied: this.applied, slots: [...this.slotOf] }));
  }
  override restore(bytes: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(bytes)) as { total: number; applied: string[]; slots: Array<[string, number]> };
    this.total = s.total;
    this.applied = s.applied;
    this.slotOf = new Map(s.slots);
  }
}

async function start(dir: string, network: MemoryNetwork, machines: SlotMachine[]): Promise<SynodReplica[]> {
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  return Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'x', dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }), logBackend: 'file',
      }),
    ),
  );
}

test('codec: a last-request batch round-trips and differs from a plain batch', () => {
  const commands = [{ clientId: 7, seq: 1, floor: 1, payload: enc('x') }];
  const last = decodeValue(encodeValue({ kind: 'batch', commands, last: true }));
  assert.equal(last.kind === 'batch' && last.last, true);
  assert.equal(sameValue(last, { kind: 'batch', commands }), false);
  const plain = decodeValue(encodeValue({ kind: 'batch', commands }));
  assert.equal(plain.kind === 'batch' && plain.last, undefined);
});

test('an exclusive request gets a slot alone; a last request stops the replica set, durably across restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-excl-'));
  const machines = [1, 2, 3].map(() => new SlotMachine());
  let replicas = await start(dir, new MemoryNetwork(), machines);
  try {
    let leader = await readyLeader(replicas);
    // Proposed in one turn, so they would share one slot if batched: the exclusive one does not.
    const wave = Array.from({ length: 21 }, (_, i) => (i === 10 ? 'excl:1' : `w${i}:1`));
    const five = await leader.openSession();
    const six = await leader.openSession();
    await Promise.all(wave.map((v, i) => leader.propose(enc(v), { clientId: five, seq: i + 1, exclusive: v === 'excl:1' })));
    const m = machines[leader.id - 1]!;
    const exclSlot = m.slotOf.get('excl:1')!;
    assert.deepEqual([...m.slotOf].filter(([, s]) => s === exclSlot).map(([v]) => v), ['excl:1'], 'alone in its slot');
    assert.ok([...m.slotOf].some(([v, s]) => v !== 'excl:1' && [...m.slotOf].filter(([, t]) => t === s).length > 1), 'the others were batched');

    // A last request between two groups proposed in one turn: the first group and the last run,
    // the second is refused with a certain StoppedError and runs nowhere.
    const before = ['a1:1', 'a2:1', 'a3:1'].map((v, i) => leader.propose(enc(v), { clientId: six, seq: i + 1 }));
    const last = leader.propose(enc('last:1'), { clientId: six, seq: 4, last: true });
    const after = ['b1:1', 'b2:1'].map((v, i) => leader.propose(enc(v), { clientId: six, seq: i + 5 }).then(() => null, (e: unknown) => e));
    await Promise.all(before);
    await last;
    for (const e of await Promise.all(after)) assert.ok(e instanceof StoppedError && e.certain, `refused with a certain StoppedError: ${String(e)}`);
    const stopSlot = machines[leader.id - 1]!.slotOf.get('last:1')!;
    await until('every replica stopped at the last request', () => replicas.every((r) => r.status().stoppedAtSlot === stopSlot));
    await assert.rejects(leader.propose(enc('late:1')), (e: unknown) => e instanceof StoppedError && e.stoppedAtSlot === stopSlot);
    for (const x of machines) {
      assert.deepEqual(x.applied, machines[0]!.applied);
      assert.equal(x.applied.at(-1), 'last:1', 'nothing executed after the last request');
    }
    // Reads still work on the stopped set.
    assert.equal(new TextDecoder().decode((await leader.read(enc(''))).result), String(machines[0]!.total));

    // Durable: one replica restarts from a snapshot taken after the stop, the others from the log.
    await replicas[0]!.takeSnapshot();
    await Promise.all(replicas.map((r) => r.close()));
    const fresh = [1, 2, 3].map(() => new SlotMachine());
    replicas = await start(dir, new MemoryNetwork(), fresh);
    leader = await readyLeader(replicas);
    await until('replayed up to the stop', () => replicas.every((r) => r.status().stoppedAtSlot === stopSlot));
    await assert.rejects(leader.propose(enc('again:1'), { clientId: six, seq: 9 }), StoppedError);
    for (const x of fresh) assert.deepEqual(x.applied, machines[0]!.applied);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
