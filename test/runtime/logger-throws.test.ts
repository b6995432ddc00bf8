// A logger that throws must not stop a replica: the runtime logs from socket, timer and promise
// callbacks, where a throw would be an uncaught exception (the process dies) or a lost drain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

test('replicas whose logger throws on every call elect a leader, commit and snapshot', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-logger-throws-'));
  const network = new MemoryNetwork();
  let calls = 0;
  const transports = [1, 2, 3].map((id) => network.createTransport({ replicaId: id }));
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'logger-throws', dataDir: join(dir, `r${id}`), members, stateMachine: new CounterMachine(),
        transport: transports[id - 1]!, logBackend: 'memory',
        logger: () => {
          calls++;
          throw new Error('broken logger');
        },
      }),
    ),
  );
  try {
    const leader = await readyLeader(replicas);
    // An undecodable message is logged (warn) from the network's delivery callback.
    const other = replicas.find((r) => r !== leader)!;
    transports[other.id - 1]!.send(leader.id, Uint8Array.of(MESSAGE_FORMAT_VERSION, 0xff, 0xff, 0xff));
    for (let i = 0; i < 10; i++) await leader.propose(new TextEncoder().encode('add:1'));
    await leader.takeSnapshot();
    assert.equal(new TextDecoder().decode((await leader.read(new Uint8Array(0))).result), '10');
    assert.ok(calls > 0, 'the logger was called (and threw)');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
