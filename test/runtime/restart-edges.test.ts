// A replica's life across restarts (found by a review of start-up, snapshots, installs and the
// metadata file): sequences of restarts that must neither lose what was acknowledged nor hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { isStorageError } from '../../src/storage/errors.js';
import type { ReplicaOptions } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const addr = { host: '127.0.0.1', port: 1 };

function options(dir: string, network: MemoryNetwork, id: number, ids: number[], more: Partial<ReplicaOptions> = {}): ReplicaOptions {
  return {
    id, clusterId: 'restart-edges', dataDir: join(dir, `r${id}`), members: new Map(ids.map((m) => [m, addr] as const)),
    stateMachine: new CounterMachine(), transport: network.createTransport({ replicaId: id }), logBackend: 'file', logger: () => {}, ...more,
  };
}

for (const taken of ['with a snapshot', 'with only a log'] as const) {
  test(`a data directory ${taken} but no meta file is refused at start, not taken for a new one`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'synod-restart-meta-'));
    const open: SynodReplica[] = [];
    const start = async () => {
      const r = await SynodReplica.start(options(dir, new MemoryNetwork(), 1, [1]));
      open.push(r);
      return r;
    };
    try {
      const replica = await start();
      await readyLeader([replica]);
      for (let i = 0; i < 5; i++) await replica.propose(enc('add:1'));
      if (taken === 'with a snapshot') await replica.takeSnapshot();
      await replica.close();
      const dataDir = join(dir, 'r1');
      await copyFile(join(dataDir, 'meta'), join(dir, 'meta.saved'));
      await unlink(join(dataDir, 'meta'));

      // Taken for new, it voted again from ballot 0 over its own log: the next write answered 1,
      // the five acknowledged ones were gone.
      await assert.rejects(start(), (e: unknown) => {
        assert.ok(isStorageError(e, 'SYNOD_STORAGE_CORRUPT'), `a clear refusal, got ${String(e)}`);
        assert.match((e as Error).message, /no meta file/);
        return true;
      });
      assert.ok(!(await readdir(dataDir)).includes('meta'), 'the refused start wrote no new meta file');

      // Nothing was changed: with its meta file back, the replica has all it acknowledged.
      await copyFile(join(dir, 'meta.saved'), join(dataDir, 'meta'));
      const back = await start();
      await readyLeader([back]);
      assert.equal(dec(await back.propose(enc('add:1'))), '6');
    } finally {
      await Promise.all(open.map((r) => r.close()));
      await rm(dir, { recursive: true, force: true });
    }
  });
}
