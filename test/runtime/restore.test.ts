// Restoring a backup (docs/operations.md, "Backups"): a snapshot file copied from one replica of a
// cluster starts a NEW cluster (other ids, another cluster id, fresh directories) whose state is
// the backup's; it then serves and writes on from the backup's slot. Bad inputs change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAIN_JS } from '../../src/cli/cluster-procs.js';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { restoreDataDir } from '../../src/runtime/restore.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const run = promisify(execFile);

async function cluster(dir: string, clusterId: string, ids: number[], machines: CounterMachine[]): Promise<SynodReplica[]> {
  const network = new MemoryNetwork();
  const members = new Map(ids.map((id) => [id, { host: '127.0.0.1', port: 7000 + id }] as const));
  return Promise.all(
    ids.map((id, i) =>
      SynodReplica.start({
        id, clusterId, dataDir: join(dir, `r${id}`), members, stateMachine: machines[i]!,
        transport: network.createTransport({ replicaId: id }), logBackend: 'file', logger: () => {},
      }),
    ),
  );
}

test('a backed-up snapshot starts a new cluster with the backup state, which then goes on', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-restore-'));
  const oldMachines = [1, 2, 3].map(() => new CounterMachine());
  let old = await cluster(join(dir, 'old'), 'orders', [1, 2, 3], oldMachines);
  let backup: string;
  let backedUp: { total: number; applied: string[] };
  try {
    const leader = await readyLeader(old);
    for (let i = 1; i <= 30; i++) await leader.propose(enc(`w${i}:${i}`));
    const slot = await leader.takeSnapshot();
    const m = oldMachines[leader.id - 1]!;
    backedUp = { total: m.total, applied: [...m.applied] };
    // The backup: the newest snapshot file, copied out under another name.
    const snaps = join(dir, 'old', `r${leader.id}`, 'snapshots');
    const newest = (await readdir(snaps)).filter((n) => n.startsWith('snap-') && n.endsWith('.snap')).sort().at(-1)!;
    assert.equal(newest, `snap-${String(slot).padStart(16, '0')}.snap`);
    backup = join(dir, 'orders-backup.snap');
    await copyFile(join(snaps, newest), backup);
  } finally {
    await Promise.all(old.map((r) => r.close()));
    old = [];
  }

  // Refusals first: each changes nothing.
  const newMembers = new Map([4, 5, 6].map((id) => [id, { host: '127.0.0.1', port: 7000 + id }] as const));
  const used = join(dir, 'used');
  await mkdir(used);
  await writeFile(join(used, 'something'), 'x');
  await assert.rejects(restoreDataDir({ snapshotFile: backup, dataDir: used, id: 4, clusterId: 'orders-2', members: newMembers }), /is not empty/);
  await assert.rejects(restoreDataDir({ snapshotFile: backup, dataDir: join(dir, 'x'), id: 7, clusterId: 'orders-2', members: newMembers }), /not among the new cluster's members/);
  await assert.rejects(restoreDataDir({ snapshotFile: join(dir, 'nope.snap'), dataDir: join(dir, 'x'), id: 4, clusterId: 'orders-2', members: newMembers }), /cannot read the snapshot file/);
  const corrupt = join(dir, 'corrupt.snap');
  const bytes = await readFile(backup);
  bytes[bytes.length - 40] ^= 0xff; // inside the body: its checksum fails
  await writeFile(corrupt, bytes);
  await assert.rejects(restoreDataDir({ snapshotFile: corrupt, dataDir: join(dir, 'x'), id: 4, clusterId: 'orders-2', members: newMembers }), /checksum mismatch/);
  await assert.rejects(readdir(join(dir, 'x')), /ENOENT/, 'a refused restore leaves no directory');
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.restoring-')), [], 'nor a staging directory');

  // The new cluster: ids 4, 5, 6, cluster id orders-2; replica 4 restored through `synod restore`.
  const newDir = join(dir, 'new');
  const cli = await run(process.execPath, [MAIN_JS, 'restore', '--snapshot', backup, '--data', join(newDir, 'r4'), '--id', '4', '--cluster-id', 'orders-2', '--initial-cluster', '4=127.0.0.1:7004,5=127.0.0.1:7005,6=127.0.0.1:7006']);
  assert.match(cli.stdout, /restored slot \d+ into .*r4 \(replica 4 of cluster 'orders-2'/);
  for (const id of [5, 6]) await restoreDataDir({ snapshotFile: backup, dataDir: join(newDir, `r${id}`), id, clusterId: 'orders-2', members: newMembers });
  await assert.rejects(
    SynodReplica.start({ id: 4, clusterId: 'orders', dataDir: join(newDir, 'r4'), members: newMembers, stateMachine: new CounterMachine(), transport: new MemoryNetwork().createTransport({ replicaId: 4 }), logBackend: 'file' }),
    /belongs to cluster 'orders-2'/,
    'the old cluster id is refused by the restored directory',
  );
  const newMachines = [4, 5, 6].map(() => new CounterMachine());
  const fresh = await cluster(newDir, 'orders-2', [4, 5, 6], newMachines);
  try {
    for (const m of newMachines) assert.deepEqual({ total: m.total, applied: m.applied }, backedUp, 'every new replica starts from the backup');
    const leader = await readyLeader(fresh);
    assert.deepEqual(leader.status().members, [4, 5, 6]);
    const from = leader.status().snapshotSlot;
    await leader.propose(enc('after:100'));
    await until('every new replica applied the write after the restore', () => newMachines.every((m) => m.applied.at(-1) === 'after:100'));
    for (const m of newMachines) assert.equal(m.total, backedUp.total + 100);
    assert.ok(leader.status().appliedSlot > from, 'the log goes on past the backup slot');
    assert.deepEqual(Object.keys(leader.status().incarnations).sort(), ['4', '5', '6'], 'incarnations bound afresh, none from the old cluster');
  } finally {
    await Promise.all(fresh.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
