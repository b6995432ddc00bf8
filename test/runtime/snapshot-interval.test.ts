// The bytes interval between snapshots is at least twice the latest snapshot's size: a snapshot
// writes the whole state, so with a large state and a small fixed interval most of the work would
// be snapshots. Here the state's snapshot is 200 KiB and the configured interval 4 KiB: 400 KiB of
// commands make one after every few KiB at the fixed interval (as fast as they can be written:
// 17-18 in a run with the rule taken out), and one or two with the rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import type { StateMachine } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { readyLeader, sleep, until } from './wait.js';

setContracts(true);

class BigStateMachine implements StateMachine {
  count = 0;
  apply(): Uint8Array {
    this.count++;
    return new Uint8Array(0);
  }
  query(): Uint8Array {
    return new Uint8Array(0);
  }
  snapshot(): Uint8Array {
    return new Uint8Array(200 * 1024).fill(this.count & 0xff);
  }
  restore(): void {}
}

async function snapshotsAfter(commands: number, commandBytes: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-snap-interval-'));
  const network = new MemoryNetwork();
  const members = new Map([[1, { host: '127.0.0.1', port: 1 }]]);
  const r = await SynodReplica.start({
    id: 1, clusterId: 'snap-interval', dataDir: join(dir, 'r1'), members, stateMachine: new BigStateMachine(),
    transport: network.createTransport({ replicaId: 1 }), logBackend: 'memory', logger: () => {},
    snapshotIntervalBytes: 4096, snapshotIntervalSlots: 1_000_000, leaderSnapshotIntervalFactor: 1, // the single member leads
  });
  try {
    await readyLeader([r]);
    const command = new Uint8Array(commandBytes);
    for (let i = 0; i < commands; i++) {
      await r.propose(command);
      // The first snapshot (after 4 KiB) sets the interval from its size: wait for it to be
      // written, or on a slow disk the proposals can outrun it and the rule is never exercised
      // (and the final takeSnapshot() below would only return that first one).
      if (i === 8) await until('the first snapshot written', () => r.counters().snapshotsTaken >= 1);
      // Pauses, so that a snapshot that is due (as one would be every 4 KiB without the rule) has
      // time to be written before the next is decided: proposals are faster than snapshot files.
      if (i % 50 === 49) await sleep(250);
    }
    await r.takeSnapshot().catch(() => undefined); // let one in flight finish
    return r.counters().snapshotsTaken;
  } finally {
    await r.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('snapshots: the bytes interval grows to twice the latest snapshot, so a large state is not serialised every few KiB', async () => {
  const taken = await snapshotsAfter(400, 1024);
  // The first comes after 4 KiB; the next only after 2 x ~200 KiB; plus the takeSnapshot() above.
  assert.ok(taken >= 2 && taken <= 4, `snapshots taken: ${taken}`);
});
