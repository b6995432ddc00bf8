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
import { SynodReplica } from '../../src/runtime/replica.js';
import { PowerLossFs, type PowerLossFault } from '../../src/sim/power-loss-fs.js';
import { Prng } from '../../src/sim/prng.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, sleep, until } from './wait.js';

setContracts(true);

const IDS = [1, 2, 3] as const;
const CLIENTS = 4;
const SINGLE_CUTS = 4;
const SEEDS = (process.env.SYNOD_POWER_LOSS_SEEDS ?? '1,2,3,4').split(',').map(Number);
/** A planted fault to show the checks bite (by hand: SYNOD_POWER_LOSS_FAULT=lying-fsync must fail). */
const FAULT = (process.env.SYNOD_POWER_LOSS_FAULT ?? null) as PowerLossFault | null;
const enc = (s: string) => new TextEncoder().encode(s);

interface Life {
  replica: SynodReplica;
  machine: CounterMachine;
}

interface Totals {
  cuts: number;
  sharedCuts: number;
  /** Cuts made while storage calls were in flight (busy()). */
  cutsBusy: number;
  restarts: number;
  /** Restarts cut short by another power cut before start() resolved. */
  restartsCutShort: number;
  acked: number;
  unknown: number;
  refused: number;
  checks: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  snapshotsAdopted: number;
  catchupsFromDisk: number;
  stateDigests: number;
  /** Lives (a replica between its start and its cut) that ended with the log's head moved up. */
  headMoved: number;
  writesLost: number;
  writesTorn: number;
  nameChangesLost: number;
}

const totals: Totals = {
  cuts: 0, sharedCuts: 0, cutsBusy: 0, restarts: 0, restartsCutShort: 0, acked: 0, unknown: 0, refused: 0, checks: 0, snapshotsTaken: 0, snapshotsInstalled: 0,
  snapshotsAdopted: 0, catchupsFromDisk: 0, stateDigests: 0, headMoved: 0, writesLost: 0, writesTorn: 0, nameChangesLost: 0,
};

class PowerLossCluster {
  readonly network = new MemoryNetwork();
  readonly members = new Map(IDS.map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  readonly disks = new Map<number, PowerLossFs>();
  readonly pumps = new Map<number, () => void>();
  readonly lives = new Map<number, Life>();
  /** Error-level log lines (a replica that stopped, a digest that differed): none expected. */
  readonly errors: string[] = [];
  readonly adopts: boolean;

  constructor(readonly seed: number, readonly prng: Prng) {
    this.adopts = prng.chance(0.5);
    for (const id of IDS) {
      const disk = new PowerLossFs(prng.fork(), FAULT);
      this.disks.set(id, disk);
      this.pumps.set(id, disk.pump({ latencyMsMax: 4, callsPerTurnMax: 3 }));
    }
  }

  async start(id: number): Promise<void> {
    const { starting, machine } = this.begin(id);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`replica ${id} did not start within 15 s`)), 15_000);
    });
    try {
      this.lives.set(id, { replica: await Promise.race([starting, late]), machine });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A restart cut short by another power cut after `ms`: the recovery (a torn tail cut off and
   * synced, segments freed as the head file says, a first metadata write) stops wherever it is. A
   * start that finished first is killed as a live replica is. The next start must still succeed.
   */
  async startCutShort(id: number, ms: number): Promise<boolean> {
    const { starting } = this.begin(id);
    const outcome = await Promise.race([starting.then((replica) => ({ replica }), (error: unknown) => ({ error })), sleep(ms).then(() => null)]);
    if (outcome && 'error' in outcome) throw outcome.error;
    if (outcome) {
      this.count(outcome.replica);
      outcome.replica.kill();
    } else {
      // Its storage calls never complete now (a dead mount): the start waits forever and is dropped.
      starting.then((replica) => replica.kill(), () => {});
    }
    this.disks.get(id)!.powerCut();
    return outcome === null;
  }

  private begin(id: number): { starting: Promise<SynodReplica>; machine: CounterMachine } {
    const machine = new CounterMachine();
    const starting = SynodReplica.start({
      id, clusterId: 'power-loss', dataDir: `/disk/r${id}`, members: this.members, stateMachine: machine,
      transport: this.network.createTransport({ replicaId: id }),
      storageIo: this.disks.get(id)!.mount().io,
      logSegmentBytes: 64 * 1024, // rolls, recycling and head moves every few snapshots
      snapshotIntervalSlots: 25,
      snapshotIntervalBytes: 16 * 1024,
      leaderSnapshotIntervalFactor: 2,
      leaderAdoptsSnapshots: this.adopts,
      compactionMarginSlots: 10,
      logMemoryBytesMax: 4 * 1024, // a lagging peer is answered from the disk log, or sent a snapshot
      stateDigestIntervalSlots: 10,
      proposeTimeoutMs: 2_000,
      core: { electionTimeoutMinMs: 250, electionTimeoutMaxMs: 500, leaseMs: 150, heartbeatIntervalMs: 40, clockDriftMs: 15 },
      logger: (level, msg, fields) => {
        if (level === 'error') this.errors.push(`replica ${id}: ${msg} ${JSON.stringify(fields ?? {})}`);
      },
    });
    return { starting, machine };
  }

  /**
   * Waits (up to 300 ms, turn by turn) for a moment when at least `calls` storage calls of the
   * replica are in flight, so that cuts land mid-write more often than an idle moment would.
   */
  async busy(id: number, calls: number): Promise<boolean> {
    const disk = this.disks.get(id)!;
    const deadline = Date.now() + 300;
    while (calls > 0 && disk.queued < calls && Date.now() < deadline) await new Promise<void>((resolve) => setImmediate(resolve));
    return calls > 0 && disk.queued >= calls;
  }

  /** Power cut: the replica dies as a process does, then its disk keeps what it keeps. */
  cut(id: number): void {
    const life = this.lives.get(id)!;
    this.lives.delete(id);
    this.count(life.replica);
    life.replica.kill();
    this.disks.get(id)!.powerCut();
  }

  count(replica: SynodReplica): void {
    const c = replica.counters();
    totals.snapshotsTaken += c.snapshotsTaken;
    totals.snapshotsInstalled += c.snapshotsInstalled;
    totals.snapshotsAdopted += c.snapshotsAdopted;
    totals.catchupsFromDisk += c.catchupsFromDisk;
    totals.stateDigests += c.stateDigests;
    if (replica.status().log.headLsn > 1) totals.headMoved++;
  }

  live(): Life[] {
    return [...this.lives.values()];
  }

  async stop(): Promise<void> {
    for (const life of this.live()) {
      this.count(life.replica);
      life.replica.kill();
    }
    for (const stop of this.pumps.values()) stop();
    for (const disk of this.disks.values()) {
      totals.writesLost += disk.stats.writesLost;
      totals.writesTorn += disk.stats.writesTorn;
      totals.nameChangesLost += disk.stats.nameChangesLost;
    }
  }
}

/** Clients proposing unique commands to the leader they see; acknowledged ones are recorded. */
class Workload {
  readonly acked = new Set<string>();
  private next = 0;
  private paused = false;
  private stopped = false;
  private inFlight = 0;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly cluster: PowerLossCluster) {
    for (let c = 0; c < CLIENTS; c++) this.loops.push(this.loop());
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.paused) {
        await sleep(10);
        continue;
      }
      const lives = this.cluster.live();
      const target = lives.find((l) => l.replica.status().role === 'leader') ?? lives[this.next % Math.max(1, lives.length)];
      if (!target) {
        await sleep(10);
        continue;
      }
      const command = `w${this.next++}:1`;
      this.inFlight++;
      try {
        await target.replica.propose(enc(command));
        this.acked.add(command);
        totals.acked++;
      } catch (e) {
        if ((e as { certain?: boolean }).certain === false) totals.unknown++;
        else totals.refused++;
        await sleep(15);
      } finally {
        this.inFlight--;
      }
    }
  }

  /** Stops new proposals and waits for those in flight to end (a kill ends them at once). */
  async pause(): Promise<void> {
    this.paused = true;
    await until('client proposals in flight ended', () => this.inFlight === 0, 10_000);
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** With the workload paused: the replicas converge and hold every acknowledged command, once, in the same order. */
async function check(cluster: PowerLossCluster, workload: Workload, what: string): Promise<void> {
  const where = `seed ${cluster.seed}, ${what}`;
  const lives = cluster.live();
  assert.equal(lives.length, 3, `${where}: every replica runs`);
  const leader = await readyLeader(lives.map((l) => l.replica), 15_000);
  let applied = -1;
  await until(`${where}: the replicas converge`, () => {
    const slots = lives.map((l) => l.replica.status().appliedSlot);
    const same = slots.every((s) => s === slots[0]) && slots[0] === leader.status().commitSlot && slots[0] === applied;
    applied = slots[0]!;
    return same;
  }, 15_000);
  const read = await leader.read(enc(''), { consistency: 'linearizable' });
  const reference = lives[0]!.machine.applied;
  for (const life of lives) {
    const id = life.replica.id;
    assert.deepEqual(life.machine.applied, reference, `${where}: replica ${id}'s applied commands differ from replica ${lives[0]!.replica.id}'s`);
    assert.equal(new Set(life.machine.applied).size, life.machine.applied.length, `${where}: replica ${id} applied a command twice`);
    assert.equal(life.replica.counters().stateDigestMismatches, 0, `${where}: replica ${id} saw a state digest differ`);
  }
  const present = new Set(reference);
  const lost = [...workload.acked].filter((command) => !present.has(command));
  assert.deepEqual(lost.slice(0, 10), [], `${where}: ${lost.length} acknowledged commands lost`);
  assert.equal(Number(new TextDecoder().decode(read.result)), reference.length, `${where}: a linearizable read sees every applied command`);
  assert.deepEqual(cluster.errors, [], `${where}: error-level log lines`);
  totals.checks++;
  // Live again: a new write is acknowledged.
  const probe = `probe-${cluster.seed}-${totals.checks}:1`;
  await leader.propose(enc(probe));
  workload.acked.add(probe);
}

async function runSeed(seed: number): Promise<void> {
  const prng = new Prng(seed);
  const cluster = new PowerLossCluster(seed, prng);
  let workload: Workload | null = null;
  try {
    await Promise.all(IDS.map((id) => cluster.start(id)));
    workload = new Workload(cluster);
    for (let cut = 1; cut <= SINGLE_CUTS; cut++) {
      await sleep(prng.int(150, 700));
      // Half the time the leader: its own votes, its snapshots (or adoptions) and head moves are cut short.
      const leader = cluster.live().find((l) => l.replica.status().role === 'leader');
      const id = leader && prng.chance(0.5) ? leader.replica.id : prng.pick(IDS);
      if (await cluster.busy(id, prng.pick([0, 1, 1, 3]))) totals.cutsBusy++;
      cluster.cut(id);
      totals.cuts++;
      await sleep(prng.int(0, 800)); // the other two go on (and compact past it, at times)
      // A replica refusing to start after a power cut would turn a shared power failure into a lost cluster.
      if (prng.chance(0.4) && (await cluster.startCutShort(id, prng.int(0, 40)))) totals.restartsCutShort++;
      await cluster.start(id);
      totals.restarts++;
      await workload.pause();
      await check(cluster, workload, `after power cut ${cut} of replica ${id}`);
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
    await check(cluster, workload, 'after a power cut of every replica at once');
    workload.resume();
    await sleep(300);
    await workload.pause();
    await check(cluster, workload, 'at the end');
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
});
