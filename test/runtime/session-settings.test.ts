// Session settings go through the log: replicas restarted with other settings replay their logs
// exactly as they ran live (a retry refused as expired stays refused, on every replica), and the
// new settings take effect at the slot where the new primary proposed them. Before, a replica
// replaying under its new command-line expiry executed the retries the old expiry had refused,
// and its state diverged (seen as a flaky test/runtime/sessions.test.ts in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SessionExpiredError } from '../../src/runtime/errors.js';
import { replayDataDir } from '../../src/runtime/replay.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, sleep, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const SHORT_MS = 1_500;

function start(dir: string, machines: CounterMachine[], sessionExpiryMs: number): Promise<SynodReplica[]> {
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  return Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'settings', dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }), logBackend: 'file', sessionExpiryMs, logger: () => {},
      }),
    ),
  );
}

test('replicas restarted with another session expiry replay as they ran live; the new expiry applies from the slot it was proposed at', { timeout: 90_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-settings-'));
  let machines = [1, 2, 3].map(() => new CounterMachine());
  let replicas = await start(dir, machines, SHORT_MS);
  try {
    let leader = await readyLeader(replicas, 15_000);
    const s = await leader.openSession();
    assert.equal(dec(await leader.propose(enc('a:1'), { clientId: s, seq: 1, floor: 1 })), '1');
    await sleep(SHORT_MS + 300);
    // Refused under the short expiry; the log holds these refused retries.
    await assert.rejects(leader.propose(enc('a:1'), { clientId: s, seq: 1, floor: 1 }), SessionExpiredError);
    await assert.rejects(leader.propose(enc('b:1'), { clientId: s, seq: 2, floor: 1 }), SessionExpiredError);
    const applied = leader.status().appliedSlot;
    await until('every replica applied everything', () => replicas.every((r) => r.status().appliedSlot >= applied), 15_000);
    // No snapshots: after the restart every replica replays the whole log, now started with a
    // one-hour expiry on its command line.
    await Promise.all(replicas.map((r) => r.close()));
    machines = [1, 2, 3].map(() => new CounterMachine());
    replicas = await start(dir, machines, 3_600_000);
    leader = await readyLeader(replicas, 15_000);
    await until('the replay', () => machines.every((m) => m.total >= 1), 15_000);
    await sleep(300);
    for (const m of machines) {
      assert.equal(m.total, 1, 'the retries refused live stay refused in the replay');
      assert.deepEqual(m.applied, ['a:1']);
    }
    // The new primary proposed the one-hour expiry: a session now outlives the short one.
    const t = await leader.openSession();
    assert.equal(dec(await leader.propose(enc('c:1'), { clientId: t, seq: 1, floor: 1 })), '2');
    await sleep(SHORT_MS + 300);
    assert.equal(dec(await leader.propose(enc('d:1'), { clientId: t, seq: 2, floor: 1 })), '3');
    await until('every replica at 3', () => machines.every((m) => m.total === 3), 15_000);
    // A few more writes, so that the chosen prefix a follower records on disk passes d:1 (it is
    // recorded lazily, with later writes).
    for (let i = 0; i < 5; i++) await leader.propose(enc(`e${i}:1`), { clientId: t, seq: 3 + i, floor: 3 + i });
    // Offline replay decides alike: the refused retries stay refused there too.
    const applied2 = leader.status().appliedSlot;
    await until('every replica applied everything', () => replicas.every((r) => r.status().appliedSlot >= applied2), 15_000);
    await Promise.all(replicas.map((r) => r.close()));
    replicas = [];
    const offline = new CounterMachine();
    await replayDataDir({ dataDir: join(dir, 'r2'), stateMachine: offline });
    assert.ok(offline.applied.length >= 3, `replayed ${offline.applied.length} commands`);
    assert.deepEqual(offline.applied, machines[1]!.applied.slice(0, offline.applied.length), 'the offline replay is a prefix of what ran live');
    assert.deepEqual(offline.applied.slice(0, 3), ['a:1', 'c:1', 'd:1']);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
