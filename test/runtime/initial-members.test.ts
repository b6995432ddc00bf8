// The configuration before the log's first change is the member set a data directory first started
// with (recorded in its metadata), not whatever a later start is given: a replica restarted with an
// updated --initial-cluster must replay its log under the quorums its peers used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);
const at = (port: number) => ({ host: '127.0.0.1', port });

test('a restart with other members keeps the first configuration recorded at the first start, and says so', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-initial-members-'));
  const start = (members: Map<number, { host: string; port: number }>, logged: string[] = []) =>
    SynodReplica.start({
      id: 1, clusterId: 'im', dataDir: join(dir, 'r1'), members, stateMachine: new CounterMachine(),
      transport: new MemoryNetwork().createTransport({ replicaId: 1 }), logBackend: 'file',
      logger: (level, msg) => logged.push(`${level} ${msg}`),
    });
  let replica = await start(new Map([[1, at(1)]]));
  try {
    await readyLeader([replica]);
    await replica.propose(enc('a:1'));
    await replica.close();
    // Restarted with a member that never joined: a quorum of [1, 2] cannot be reached alone.
    const logged: string[] = [];
    replica = await start(new Map([[1, at(1)], [2, at(2)]]), logged);
    assert.deepEqual(replica.status().members, [1], 'the first configuration is the recorded one');
    assert.ok(logged.some((l) => /^warn replica 1 first started with members \[1\]/.test(l)), `a warning names the recorded members: ${logged.join(' | ')}`);
    await readyLeader([replica]);
    assert.equal(new TextDecoder().decode(await replica.propose(enc('a:1'), { timeoutMs: 5_000 })), '2', 'it still leads alone and commits');
  } finally {
    await replica.close();
    await rm(dir, { recursive: true, force: true });
  }
});
