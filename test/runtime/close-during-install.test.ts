// close() waits for a fetched snapshot being installed: nothing of a closed replica writes to its
// data directory afterwards (it may be reopened at once). Found as a flaky cleanup in CI: a test's
// rm() of the directories met ENOTEMPTY in a snapshots/ directory written after close().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, sleep, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);

test('close() during a snapshot install waits for it, and nothing is written after it resolves', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-close-install-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'close-install', dataDir: join(dir, `r${id}`), members, stateMachine: new CounterMachine(),
        transport: network.createTransport({ replicaId: id }), logBackend: 'file', logger: () => {},
      }),
    ),
  );
  try {
    const leader = await readyLeader(replicas);
    const lagging = replicas.find((r) => r !== leader)!;
    network.setDropFilter((_from, to, frame) => to === lagging.id && frame[0] === MESSAGE_FORMAT_VERSION);
    for (let i = 0; i < 20; i++) await leader.propose(enc('add:1'));

    // Hold the lagging replica's snapshot write until released.
    const store = (lagging as unknown as { snapshots: { save: (...a: unknown[]) => Promise<unknown> } }).snapshots;
    const save = store.save.bind(store);
    let reached = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    store.save = async (...a: unknown[]) => {
      reached = true;
      await gate;
      return save(...a);
    };
    void lagging.copyStateFrom(leader.id, { timeoutMs: 10_000 }).catch(() => {}); // ends with the close
    await until('the install reached the snapshot store', () => reached);

    let closed = false;
    const closing = lagging.close().then(() => (closed = true));
    // Without the wait, close() resolves as soon as the transport and the log are closed (measured
    // 1-134 ms here): a second is plenty.
    await Promise.race([closing, sleep(1000)]);
    assert.equal(closed, false, 'close() waits for the install in progress');
    release();
    await closing;
    const snapshotsDir = join(dir, `r${lagging.id}`, 'snapshots');
    const after = (await readdir(snapshotsDir)).sort();
    await sleep(200);
    assert.deepEqual((await readdir(snapshotsDir)).sort(), after, 'no file appears or goes after close() resolved');
    assert.ok(!after.some((n) => n.endsWith('.tmp')), `the snapshot was finished, not left half-written: ${after.join(', ')}`);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
