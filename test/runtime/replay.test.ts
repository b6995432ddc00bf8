// Offline replay (src/runtime/replay.ts) of a real file-log data directory written by a live
// 3-replica cluster: the replayed state equals the live one, a replay up to a middle slot gives the
// prefix, a retried command that landed in two slots runs once, and the directory is left as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplyContext } from '../../src/runtime/api.js';
import { DataDirError } from '../../src/runtime/errors.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { replayDataDir } from '../../src/runtime/replay.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** The test counter, also noting the slot of every executed command. */
class SlotCounter extends CounterMachine {
  slots: number[] = [];
  override apply(command: Uint8Array, context?: ApplyContext): Uint8Array {
    this.slots.push(context!.slot);
    return super.apply(command);
  }
  /** The applied commands of slots ≤ `slot`. */
  appliedUpTo(slot: number): string[] {
    return this.applied.filter((_, i) => this.slots[i]! <= slot);
  }
}

async function startCluster(dir: string, machines: SlotCounter[]): Promise<SynodReplica[]> {
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const replicas: SynodReplica[] = [];
  for (const id of [1, 2, 3]) {
    machines[id - 1] = new SlotCounter();
    replicas.push(
      await SynodReplica.start({
        id,
        clusterId: 'replay-test',
        dataDir: join(dir, `r${id}`),
        members,
        stateMachine: machines[id - 1]!,
        transport: network.createTransport({ replicaId: id }),
        logBackend: 'file',
        snapshotIntervalSlots: 1_000_000, // snapshots only when the test asks
        logger: () => {},
      }),
    );
  }
  return replicas;
}

/** Waves of concurrent proposals (several commands per slot), then one retry that lands in a second slot. */
async function writeLoad(leader: SynodReplica, waves: number, tag: string): Promise<void> {
  for (let wave = 0; wave < waves; wave++) {
    await Promise.all(Array.from({ length: 4 }, (_, i) => leader.propose(enc(`${tag}${wave}.${i}:${1 + (i % 3)}`))));
  }
}

/** A digest of every file under `dir` (names, sizes, bytes): to show replay modified nothing. */
async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (at: string): Promise<void> => {
    for (const name of (await readdir(at)).sort()) {
      const path = join(at, name);
      if ((await stat(path)).isDirectory()) await walk(path);
      else hash.update(`${path}\0`).update(await readFile(path));
    }
  };
  await walk(dir);
  return hash.digest('hex');
}

test('replay of a file-log data dir: full replay equals the live state, a middle slot gives the prefix, retries run once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-replay-test-'));
  const machines: SlotCounter[] = [];
  let replicas: SynodReplica[] = [];
  try {
    replicas = await startCluster(dir, machines);
    const leader = await readyLeader(replicas);
    await writeLoad(leader, 10, 'a');
    // A retried session command after its answer: it lands in a second slot, and the session table
    // must skip it there (live and in replay alike).
    const session = await leader.openSession();
    const first = await leader.propose(enc('retry:100'), { clientId: session, seq: 1, floor: 1 });
    const again = await leader.propose(enc('retry:100'), { clientId: session, seq: 1, floor: 1 });
    assert.equal(dec(again), dec(first), 'the retry got the original answer');
    await writeLoad(leader, 3, 'a-after-retry');
    // A snapshot in the middle, then more writes after it.
    const snapshotSlot = await leader.takeSnapshot();
    assert.ok(snapshotSlot > 0);
    await writeLoad(leader, 10, 'b');
    await leader.read(enc(''), { consistency: 'linearizable' });
    const live = machines[leader.id - 1]!;
    const liveSlot = leader.status().appliedSlot;
    assert.equal(live.applied.filter((c) => c === 'retry:100').length, 1, 'the live replica executed the retry once');
    await Promise.all(replicas.map((r) => r.close()));
    replicas = [];

    const leaderDir = join(dir, `r${leader.id}`);
    const before = await treeDigest(leaderDir);

    // 1. Everything: the newest snapshot, then the log after it.
    const full = new SlotCounter();
    const seen: number[] = [];
    const all = await replayDataDir({ dataDir: leaderDir, logBackend: 'file', stateMachine: full, onSlot: (e) => seen.push(e.slot) });
    assert.equal(all.snapshotSlot, snapshotSlot, 'the newest snapshot is the starting point');
    assert.equal(all.stoppedAt, 'chosenPrefix');
    // The chosen prefix is recorded lazily (with the next write), so the last slots the live replica
    // applied may not be provably chosen from its directory alone.
    console.log(`live applied ${liveSlot}, replay reached ${all.appliedSlot} (recorded chosen ${all.chosenSlot}), snapshot ${snapshotSlot}`);
    assert.ok(all.appliedSlot > snapshotSlot && all.appliedSlot <= liveSlot, `replayed to ${all.appliedSlot}, the live replica applied ${liveSlot}`);
    assert.equal(full.total, totalOf(live.appliedUpTo(all.appliedSlot)));
    assert.deepEqual(full.applied, live.appliedUpTo(all.appliedSlot));
    assert.equal(all.commands, full.applied.filter((c) => c.startsWith('b')).length, 'only the commands after the snapshot ran');
    assert.deepEqual(seen, Array.from({ length: all.slots }, (_, i) => snapshotSlot + 1 + i), 'onSlot saw every slot once, in order');

    // 2. Up to a slot below the snapshot: no snapshot qualifies, so the log from slot 1.
    const middle = Math.max(1, Math.floor(snapshotSlot / 2));
    const prefix = new SlotCounter();
    const part = await replayDataDir({ dataDir: leaderDir, stateMachine: prefix, uptoSlot: middle });
    assert.equal(part.snapshotSlot, 0);
    assert.equal(part.appliedSlot, middle);
    assert.equal(part.stoppedAt, 'uptoSlot');
    assert.deepEqual(prefix.applied, live.appliedUpTo(middle));
    assert.deepEqual(prefix.slots, live.slots.filter((s) => s <= middle));

    // 3. Up to the snapshot slot exactly, from the log: the retry ran once and was skipped once.
    const upToSnapshot = new SlotCounter();
    const atSnap = await replayDataDir({ dataDir: leaderDir, stateMachine: upToSnapshot, uptoSlot: snapshotSlot - 1 });
    assert.equal(atSnap.snapshotSlot, 0);
    assert.deepEqual(upToSnapshot.applied, live.appliedUpTo(snapshotSlot - 1));
    assert.equal(upToSnapshot.applied.filter((c) => c === 'retry:100').length, 1);
    assert.equal(atSnap.skippedCommands, 1, 'the second slot of the retry was skipped by the session table');

    // 4. A follower's directory replays to the same state (up to what it knew chosen).
    const followerId = leader.id === 1 ? 2 : 1;
    const fromFollower = new SlotCounter();
    const f = await replayDataDir({ dataDir: join(dir, `r${followerId}`), stateMachine: fromFollower });
    assert.ok(f.appliedSlot > snapshotSlot, `the follower's dir replays past the snapshot (to ${f.appliedSlot})`);
    assert.deepEqual(fromFollower.applied, live.appliedUpTo(f.appliedSlot));
    assert.equal(fromFollower.total, totalOf(fromFollower.applied));

    assert.equal(await treeDigest(leaderDir), before, 'replay left the data directory untouched');

    // 5. A backup as docs/operations.md describes it: the newest snap file plus a copy of meta, in
    //    a scratch directory; replay restores (and so verifies) it without any log.
    const backup = join(dir, 'backup');
    await mkdir(join(backup, 'snapshots'), { recursive: true });
    const newest = (await readdir(join(leaderDir, 'snapshots'))).filter((n) => n.endsWith('.snap')).sort().at(-1)!;
    await copyFile(join(leaderDir, 'snapshots', newest), join(backup, 'snapshots', newest));
    await copyFile(join(leaderDir, 'meta'), join(backup, 'meta'));
    const restored = new SlotCounter();
    const fromBackup = await replayDataDir({ dataDir: backup, stateMachine: restored });
    assert.equal(fromBackup.snapshotSlot, snapshotSlot);
    assert.equal(fromBackup.appliedSlot, snapshotSlot);
    assert.deepEqual(restored.applied, live.appliedUpTo(snapshotSlot));

    // 6. Not a data directory.
    await assert.rejects(replayDataDir({ dataDir: join(dir, 'nope'), stateMachine: new SlotCounter() }), DataDirError);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

function totalOf(commands: string[]): number {
  return commands.reduce((sum, c) => sum + Number(c.split(':')[1] ?? 1), 0);
}
