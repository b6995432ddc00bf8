// State digests across replicas (SAFETY.md: divergence caught early, as a metric and an alarm).
// Three in-process replicas digest their state every few slots and compare: with the same
// machine they agree; with one replica's machine planted to apply differently, every replica
// reports the difference with it, at error level, and the two honest ones still agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import type { StateMachine } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const DIGEST_EVERY = 8;

/** Counts every command twice: the planted non-determinism. */
class SkewedCounter extends CounterMachine {
  override apply(command: Uint8Array): Uint8Array {
    super.apply(command);
    return super.apply(command);
  }
}

async function run(machines: StateMachine[], commands: number) {
  const dir = await mkdtemp(join(tmpdir(), 'synod-digest-'));
  const network = new MemoryNetwork();
  const members = new Map(machines.map((_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
  const errors: string[][] = machines.map(() => []);
  const replicas: SynodReplica[] = [];
  for (let id = 1; id <= machines.length; id++) {
    replicas.push(
      await SynodReplica.start({
        id, clusterId: 'digest', dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
        logger: (level, msg) => {
          if (level === 'error') errors[id - 1]!.push(msg);
        },
        stateDigestIntervalSlots: DIGEST_EVERY,
        snapshotIntervalSlots: 1_000_000, // no snapshot to skip a digest for
      }),
    );
  }
  try {
    const leader = await readyLeader(replicas);
    for (let i = 0; i < commands; i++) await leader.propose(enc('add:1')); // one slot each
    const target = Math.floor(leader.status().appliedSlot / DIGEST_EVERY) * DIGEST_EVERY;
    // Every replica has digested the last digest slot and heard both peers' digests of it.
    await until(`every replica compared its digest of slot ${target} with both peers`, () =>
      replicas.every((r) => {
        const d = r.status().stateDigest;
        return d !== null && d.slot >= target && d.agree.length + d.differ.length === 2;
      }),
    );
    return { statuses: replicas.map((r) => r.status().stateDigest!), counters: replicas.map((r) => r.counters()), errors };
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

test('replicas with the same machine digest the same state at every digest slot', async () => {
  const { statuses, counters, errors } = await run([new CounterMachine(), new CounterMachine(), new CounterMachine()], 40);
  for (const [i, s] of statuses.entries()) {
    assert.deepEqual(s.differ, [], `replica ${i + 1}: ${JSON.stringify(s)}`);
    assert.deepEqual(s.agree, [1, 2, 3].filter((id) => id !== i + 1));
    assert.equal(s.digest, statuses[0]!.digest);
    assert.equal(s.slot % DIGEST_EVERY, 0);
  }
  for (const c of counters) {
    assert.equal(c.stateDigestMismatches, 0);
    assert.ok(c.stateDigests >= 4, `digests made: ${c.stateDigests}`);
  }
  assert.deepEqual(errors, [[], [], []]);
});

test('a replica whose machine applies differently is reported by every replica, at error level', async () => {
  const { statuses, counters, errors } = await run([new CounterMachine(), new CounterMachine(), new SkewedCounter()], 40);
  assert.deepEqual([statuses[0]!.agree, statuses[0]!.differ], [[2], [3]]);
  assert.deepEqual([statuses[1]!.agree, statuses[1]!.differ], [[1], [3]]);
  assert.deepEqual([statuses[2]!.agree, statuses[2]!.differ], [[], [1, 2]]);
  for (const c of counters) assert.ok(c.stateDigestMismatches > 0);
  for (const [i, lines] of errors.entries()) {
    assert.ok(lines.some((m) => /^state divergence: after slot \d+ this replica's state digest is [0-9a-f]{8} and replica \d's is [0-9a-f]{8}/.test(m)), `replica ${i + 1} logged: ${JSON.stringify(lines)}`);
  }
});
