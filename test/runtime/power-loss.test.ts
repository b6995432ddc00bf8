// The runtime through power cuts. Three in-process replicas (memory network) each keep their data
// directory on a PowerLossFs of their own (src/sim/power-loss-fs.ts, in automatic mode: pump()),
// so a cut loses what the storage simulator's cuts lose (unsynced writes, kept as a random torn
// subset; name changes after the last directory fsync) while the real runtime orders its storage
// calls: log commits before votes, metadata, snapshots made, installed from a peer or adopted by
// a leader, head moves below them, and the recovery at restart. Jepsen's kill -9 keeps the page
// cache, so only this loses unsynced writes end to end.
//
// Per seed: a counter workload (every acknowledged command is recorded), single replicas cut at
// random moments and restarted on what their disk kept, then every replica cut at once (a shared
// power failure) and all restarted. After each: every restart succeeded, every acknowledged
// command is applied on every replica and exactly once, the replicas' applied sequences are
// identical, a linearizable read sees them, no replica stopped or saw a state digest differ, and
// the cluster takes new writes. Timers are real, so a seed picks the cuts and the disks' choices
// but a run is not an exact replay: a failure prints the seed and what broke.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import type { PowerLossFault } from '../../src/sim/power-loss-fs.js';
import { Prng } from '../../src/sim/prng.js';
import { check, newTotals, PowerLossCluster, Workload } from './power-loss-cluster.js';
import { sleep } from './wait.js';

setContracts(true);

const IDS = [1, 2, 3] as const;
/** The replica on the pmem backend (power-loss-cluster.ts: ids that are multiples of 3). */
const PMEM_ID = 3;
const SINGLE_CUTS = 4;
const SEEDS = (process.env.SYNOD_POWER_LOSS_SEEDS ?? '1,2,3,4').split(',').map(Number);
/** A planted fault to show the checks bite (by hand: SYNOD_POWER_LOSS_FAULT=lying-fsync must fail). */
const FAULT = (process.env.SYNOD_POWER_LOSS_FAULT ?? null) as PowerLossFault | null;

const totals = newTotals();

async function runSeed(seed: number): Promise<void> {
  const prng = new Prng(seed);
  const cluster = new PowerLossCluster({ clusterId: 'power-loss', seed, prng, totals, fault: FAULT, ids: IDS });
  let workload: Workload | null = null;
  try {
    await Promise.all(IDS.map((id) => cluster.start(id)));
    workload = new Workload(cluster);
    for (let cut = 1; cut <= SINGLE_CUTS; cut++) {
      await sleep(prng.int(150, 700));
      // Half the time the leader: its own votes, its snapshots (or adoptions) and head moves are cut short.
      const leader = cluster.live().find((l) => l.replica.status().role === 'leader');
      // The second cut of each seed is the pmem replica's, inside one of its next few flushes;
      // any other cut of it lands there half the time.
      const id = cut === 2 ? PMEM_ID : leader && prng.chance(0.5) ? leader.replica.id : prng.pick(IDS);
      const midFlush = id === PMEM_ID && (cut === 2 || prng.chance(0.5)) && (await cluster.cutInsideFlush(id, prng.int(1, 6)));
      if (!midFlush) {
        if (await cluster.busy(id, prng.pick([0, 1, 1, 3]))) totals.cutsBusy++;
        cluster.cut(id);
      }
      totals.cuts++;
      await sleep(prng.int(0, 800)); // the other two go on (and compact past it, at times)
      // A replica refusing to start after a power cut would turn a shared power failure into a lost cluster.
      if (prng.chance(0.4) && (await cluster.startCutShort(id, prng.int(0, 40)))) totals.restartsCutShort++;
      await cluster.start(id);
      totals.restarts++;
      await workload.pause();
      await check(cluster, workload, `after power cut ${cut} of replica ${id}`, IDS);
      workload.resume();
    }
    await sleep(prng.int(200, 700));
    if (await cluster.busy(prng.pick(IDS), prng.pick([1, 3]))) totals.cutsBusy++;
    for (const id of IDS) cluster.cut(id);
    totals.cuts += 3;
    totals.sharedCuts++;
    await workload.pause(); // the kills ended every proposal
    const shortened = await Promise.all(IDS.map((id) => (prng.chance(0.3) ? cluster.startCutShort(id, prng.int(0, 40)) : false)));
    totals.restartsCutShort += shortened.filter(Boolean).length;
    await Promise.all(IDS.map((id) => cluster.start(id)));
    totals.restarts += 3;
    await check(cluster, workload, 'after a power cut of every replica at once', IDS);
    workload.resume();
    await sleep(300);
    await workload.pause();
    await check(cluster, workload, 'at the end', IDS);
  } catch (e) {
    (e as Error).message = `power-loss seed ${seed} (SYNOD_POWER_LOSS_SEEDS=${seed}): ${(e as Error).message}`;
    throw e;
  } finally {
    await workload?.stop();
    await cluster.stop();
  }
}

for (const seed of SEEDS) {
  test(`runtime through power cuts: seed ${seed}: ${SINGLE_CUTS} single-replica cuts, then all three at once`, { timeout: 60_000 }, async () => {
    await runSeed(seed);
  });
}

test('runtime through power cuts: what the seeds covered', () => {
  console.log(`power-loss: ${JSON.stringify(totals)}`);
  assert.ok(totals.checks >= SEEDS.length * (SINGLE_CUTS + 2), 'every check ran');
  // Replica 3 of every seed runs the pmem backend (its mapped write path) through the same cuts.
  assert.ok(totals.pmemStarts >= SEEDS.length && totals.pmemPersists > 0, `pmem starts ${totals.pmemStarts}, flushes ${totals.pmemPersists}`);
  // ... and its cuts land inside a flush: at least the second of each seed (a flush comes within
  // 2 s under the workload), more at random.
  assert.ok(totals.pmemCutsInsideFlush >= SEEDS.length, `${totals.pmemCutsInsideFlush} power cuts landed inside a pmem flush over ${SEEDS.length} seeds`);
});
