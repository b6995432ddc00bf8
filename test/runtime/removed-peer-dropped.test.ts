// A removed replica stays a transport peer of the others only while they still send it commit
// notices (the core's `departed` window: 20 longest election timeouts after its configuration was
// pruned), then every replica stops dialing it. Until session 22 the runtime set its peers only on
// a configuration change, a snapshot or an address, so a leader went on dialing a removed (and
// stopped) replica until the next change, and a follower answered its catch-up for good.
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
// A window of 20 × 300 ms = 6 s instead of the default 12 s.
const CORE = { electionTimeoutMinMs: 250, electionTimeoutMaxMs: 300, leaseMs: 200 };
const WINDOW_MS = 20 * CORE.electionTimeoutMaxMs;

test('a removed replica stops being a transport peer once its notice window ends, on leader and follower', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-removed-peer-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, addr] as const));
  const replicas = new Map<number, SynodReplica>();
  try {
    for (const id of [1, 2, 3]) {
      replicas.set(id, await SynodReplica.start({
        id, clusterId: 'r', dataDir: `${dir}/r${id}`, members, listen: addr, stateMachine: new CounterMachine(),
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory', core: CORE,
      }));
    }
    let leader: SynodReplica | undefined;
    await until('a leader', () => (leader = [...replicas.values()].find((r) => r.status().role === 'leader')) !== undefined, 20_000);
    await leader!.propose(enc('w1:1'), { timeoutMs: 5_000 });
    const [removed, follower] = [1, 2, 3].filter((id) => id !== leader!.id).map((id) => replicas.get(id)!);
    await leader!.removeMember(removed!.id);
    await removed!.close(); // the operator stops it (docs/operations.md)
    replicas.delete(removed!.id);
    const removedAt = Date.now();
    const peerOf = (r: SynodReplica) => String(removed!.id) in r.status().peers;
    assert.ok(peerOf(leader!), 'the leader still dials it right after the removal (commit notices)');
    await until('the leader and the follower to stop dialing it', () => !peerOf(leader!) && !peerOf(follower!), WINDOW_MS + 10_000);
    const after = Date.now() - removedAt;
    assert.ok(after >= WINDOW_MS - 1_000, `dropped after ${after} ms, before its window of ${WINDOW_MS} ms`);
    assert.deepEqual(leader!.status().members, [1, 2, 3].filter((id) => id !== removed!.id));
    await leader!.propose(enc('w1:2'), { timeoutMs: 5_000 }); // the cluster serves on
    assert.equal(leader!.status().log.writePath, 'memory');
  } finally {
    await Promise.all([...replicas.values()].map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
