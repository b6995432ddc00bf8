// Shared by the runtime's power-cut tests (power-loss.test.ts, power-loss-members.test.ts):
// in-process replicas (memory network), each with its data directory on a PowerLossFs of its own
// in automatic mode (pump()), a power cut being SynodReplica.kill() then PowerLossFs.powerCut();
// a workload of clients recording every acknowledged command; and the check run after restarts.
import assert from 'node:assert/strict';
import type { ReplicaStatus } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { PowerLossFs, type PowerLossFault } from '../../src/sim/power-loss-fs.js';
import type { Prng } from '../../src/sim/prng.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader, sleep, until } from './wait.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Every replica's peer address: the memory network routes by id, so one placeholder serves all. */
export const ADDRESS = { host: '127.0.0.1', port: 1 } as const;
const CLIENTS = 4;

export interface Life {
  replica: SynodReplica;
  machine: CounterMachine;
}

export interface PowerLossTotals {
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
  /** Starts on the pmem backend (every replica whose id is a multiple of 3), and its flushes. */
  pmemStarts: number;
  pmemPersists: number;
  /** Power cuts that landed inside a pmem flush (cutInsideFlush): the flush threw and the replica stopped. */
  pmemCutsInsideFlush: number;
}

export function newTotals(): PowerLossTotals {
  return {
    cuts: 0, sharedCuts: 0, cutsBusy: 0, restarts: 0, restartsCutShort: 0, acked: 0, unknown: 0, refused: 0, checks: 0, snapshotsTaken: 0, snapshotsInstalled: 0,
    snapshotsAdopted: 0, catchupsFromDisk: 0, stateDigests: 0, headMoved: 0, writesLost: 0, writesTorn: 0, nameChangesLost: 0,
    pmemStarts: 0, pmemPersists: 0, pmemCutsInsideFlush: 0,
  };
}

export interface PowerLossClusterOptions {
  clusterId: string;
  seed: number;
  prng: Prng;
  totals: PowerLossTotals;
  /** A planted fault of every disk, to show the checks bite. */
  fault: PowerLossFault | null;
  /** The initial members (bootstrapped together). */
  ids: readonly number[];
}

export class PowerLossCluster {
  readonly network = new MemoryNetwork();
  readonly members: Map<number, { host: string; port: number }>;
  readonly disks = new Map<number, PowerLossFs>();
  readonly pumps = new Map<number, () => void>();
  readonly lives = new Map<number, Life>();
  /** Replicas started with `join` (added to the running cluster): every start of theirs joins. */
  readonly joiners = new Set<number>();
  /** Replicas stopped for good (removed, or their disk lost): a member among them is not expected to run. */
  readonly retired = new Set<number>();
  /** Error-level log lines (a replica that stopped, a digest that differed): none expected. */
  readonly errors: string[] = [];
  /** Replicas whose power was cut inside a flush: their `replica stopped` line is expected, not an error. */
  private readonly cutMidFlush = new Set<number>();
  readonly adopts: boolean;
  readonly seed: number;
  readonly prng: Prng;
  /** Replica starts so far (each on a new mount). */
  private starts = 0;
  readonly totals: PowerLossTotals;
  private readonly fault: PowerLossFault | null;
  private readonly clusterId: string;

  constructor(options: PowerLossClusterOptions) {
    this.seed = options.seed;
    this.prng = options.prng;
    this.totals = options.totals;
    this.fault = options.fault;
    this.clusterId = options.clusterId;
    this.members = new Map(options.ids.map((id) => [id, ADDRESS] as const));
    this.adopts = this.prng.chance(0.5);
    for (const id of options.ids) this.addDisk(id);
  }

  /** A fresh disk (an empty data directory: a new incarnation) for a replica id never used before. */
  addDisk(id: number): void {
    assert.ok(!this.disks.has(id), `replica id ${id} already has a disk: a wiped replica rejoins under a new id`);
    const disk = new PowerLossFs(this.prng.fork(), this.fault);
    this.disks.set(id, disk);
    this.pumps.set(id, disk.pump({ latencyMsMax: 4, callsPerTurnMax: 3 }));
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
    this.cutMidFlush.delete(id); // a new life: its errors count again
    const machine = new CounterMachine();
    const pmem = id % 3 === 0;
    if (pmem) this.totals.pmemStarts++;
    const disk = this.disks.get(id)!.mount({ orderedWriter: !pmem && this.starts++ % 2 === 1 });
    const starting = SynodReplica.start({
      id, clusterId: this.clusterId, dataDir: `/disk/r${id}`, members: this.members, stateMachine: machine,
      ...(this.joiners.has(id) ? { join: true, listen: ADDRESS } : {}),
      transport: this.network.createTransport({ replicaId: id }),
      // Every other start writes its log through the native writer's pipelined path (a model of
      // its ordered writer), the rest through the flush loop: both, through the same cuts.
      storageIo: disk.io,
      // The pmem backend (its mapped write path over the disk's model of the addon) for every
      // replica whose id is a multiple of 3: one of the first three, and some joiners.
      ...(pmem ? { logBackend: 'pmem' as const, storagePmem: disk.pmem } : {}),
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
        if (level === 'error' && !this.cutMidFlush.has(id)) this.errors.push(`replica ${id}: ${msg} ${JSON.stringify(fields ?? {})}`);
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

  /**
   * A power cut inside one of the next `flushes` pmem flushes of replica `id` (its log on the pmem
   * backend): the cut lands in the middle of the log's synchronous copy-and-flush, which a cut
   * between event-loop turns never does; the flush throws, and the replica stops on it as on any
   * failed write. False (and nothing cut) when no flush came within 2 s: the caller cuts instead.
   */
  async cutInsideFlush(id: number, flushes: number): Promise<boolean> {
    const disk = this.disks.get(id)!;
    const before = disk.stats.pmemCrashes;
    this.cutMidFlush.add(id);
    disk.armPmemCrash(flushes);
    const deadline = Date.now() + 2_000;
    while (disk.stats.pmemCrashes === before && Date.now() < deadline) await new Promise<void>((resolve) => setImmediate(resolve));
    if (disk.stats.pmemCrashes === before) {
      disk.disarmPmemCrash();
      this.cutMidFlush.delete(id);
      return false;
    }
    const life = this.lives.get(id)!;
    this.lives.delete(id);
    this.count(life.replica);
    life.replica.kill(); // stopped already, or about to: the power is off
    this.totals.pmemCutsInsideFlush++;
    return true;
  }

  /** Stops a replica for good (removed from the cluster, or its disk lost): killed, never restarted. */
  retire(id: number): void {
    const life = this.lives.get(id)!;
    this.lives.delete(id);
    this.retired.add(id);
    this.count(life.replica);
    life.replica.kill();
  }

  count(replica: SynodReplica): void {
    const c = replica.counters();
    this.totals.snapshotsTaken += c.snapshotsTaken;
    this.totals.snapshotsInstalled += c.snapshotsInstalled;
    this.totals.snapshotsAdopted += c.snapshotsAdopted;
    this.totals.catchupsFromDisk += c.catchupsFromDisk;
    this.totals.stateDigests += c.stateDigests;
    if (replica.status().log.headLsn > 1) this.totals.headMoved++;
  }

  live(): Life[] {
    return [...this.lives.values()];
  }

  /** The live replica that leads (by its own status), if any. */
  leader(): Life | undefined {
    return this.live().find((l) => l.replica.status().role === 'leader');
  }

  async stop(): Promise<void> {
    for (const life of this.live()) {
      this.count(life.replica);
      life.replica.kill();
    }
    for (const stop of this.pumps.values()) stop();
    for (const disk of this.disks.values()) {
      this.totals.writesLost += disk.stats.writesLost;
      this.totals.writesTorn += disk.stats.writesTorn;
      this.totals.nameChangesLost += disk.stats.nameChangesLost;
      this.totals.pmemPersists += disk.stats.persists;
    }
  }
}

/** Clients proposing unique commands to the leader they see; acknowledged ones are recorded. */
export class Workload {
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
    const totals = this.cluster.totals;
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

/**
 * With the workload paused: every member of the configuration the leader sees runs (and, with
 * `expected`, it is that list); the members converge on one commit and applied slot, agree on the
 * configuration, and hold every acknowledged command, once, in the same order; a linearizable read
 * sees them; no digest differed, nothing was logged at error level; a new write is acknowledged.
 * Live replicas that are not members (a learner not promoted yet, a replica removed) are left out,
 * and so are members retired for good (a lost disk whose replacement is under way).
 * Returns the leader and the members.
 */
export async function check(cluster: PowerLossCluster, workload: Workload, what: string, expected?: readonly number[]): Promise<{ leader: SynodReplica; members: number[] }> {
  const where = `seed ${cluster.seed}, ${what}`;
  await readyLeader(cluster.live().map((l) => l.replica), 15_000);
  // The members list is the leader's where the members converged, read in the same synchronous
  // pass as every member's slots and configurations (the replicas live in this process: one pass
  // is one instant). Read before the wait, as it was, it could be older than the point the
  // replicas then reached: a configuration chosen at slot i governs from i + W, and after a change
  // cut short, the new leader that recovered it fills the slots up to i + W with no-ops while the
  // check waits. The replicas were then compared with a stale list ('[1, 4, 5]' vs the leader's
  // '[1, 2, 4, 5]', seen once), or a replica the change had removed, which hears no commits after
  // it, was waited for until the wait timed out. Converged: a leader, no configuration of its own
  // pending (nothing more happens without clients), and every member that runs at its commit slot
  // = applied slot, the same in two polls in a row (a leader that removed itself has handed over).
  let leader: SynodReplica | undefined;
  let members: number[] = [];
  let lives: Life[] = [];
  let views: ReplicaStatus[] = [];
  let previous = '';
  // 30 s: a restarted leader and a member catching up by snapshot share 2 cores with the rest of
  // npm test (15 s timed out once in CI, after a leader cut mid-removal; alone it converges in ~1 s).
  await until(`${where}: the members converge`, () => {
    const ruling = cluster.leader();
    if (!ruling) return false;
    const view = ruling.replica.status();
    // A leader outside its own members list has removed itself and is handing over: not yet.
    const pending = view.configs[view.configs.length - 1]!.fromSlot > view.commitSlot + 1 || !view.members.includes(view.id);
    const running = view.members.filter((id) => cluster.lives.has(id)).map((id) => cluster.lives.get(id)!);
    const statuses = running.map((l) => l.replica.status());
    const key = JSON.stringify([view.id, view.members, statuses.map((s) => [s.id, s.commitSlot, s.appliedSlot])]);
    const same = !pending && statuses.every((s) => s.appliedSlot === view.commitSlot && s.commitSlot === view.commitSlot) && key === previous;
    previous = key;
    if (same) {
      leader = ruling.replica;
      members = [...view.members];
      lives = running;
      views = statuses;
    }
    return same;
  }, 30_000).catch((e: Error) => {
    const ruling = cluster.leader();
    const running = ruling ? ruling.replica.status().members.filter((id) => cluster.lives.has(id)).map((id) => cluster.lives.get(id)!) : cluster.live();
    throw new Error(`${e.message} (${describe(running)})`);
  });
  if (!leader) throw new Error(`${where}: no leader after the members converged`);
  if (expected) assert.deepEqual(members, [...expected].sort((a, b) => a - b), `${where}: the members (leader ${leader.id}'s view)`);
  const absent = members.filter((id) => !cluster.lives.has(id) && !cluster.retired.has(id));
  assert.deepEqual(absent, [], `${where}: every member runs`);
  // At one commit slot, every member has the same members list and the same configurations from
  // the next slot on (the current one and any pending: both follow from the chosen log up to it).
  const ahead = (s: ReplicaStatus): ReplicaStatus['configs'] => {
    let first = 0;
    for (let i = s.configs.length - 1; i > 0; i--) {
      if (s.configs[i]!.fromSlot <= s.commitSlot + 1) {
        first = i;
        break;
      }
    }
    return s.configs.slice(first);
  };
  const described = views.map((s) => `replica ${s.id}: ${s.role}, commit ${s.commitSlot}, applied ${s.appliedSlot}, snapshot ${s.snapshotSlot}, configs ${JSON.stringify(s.configs)}`).join('; ');
  for (const s of views) {
    assert.deepEqual(s.members, members, `${where}: replica ${s.id}'s members differ from leader ${leader.id}'s at commit slot ${s.commitSlot} (${described})`);
    assert.deepEqual(ahead(s), ahead(views.find((v) => v.id === leader!.id)!), `${where}: replica ${s.id}'s configurations from slot ${s.commitSlot + 1} differ from leader ${leader.id}'s (${described})`);
  }
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
  cluster.totals.checks++;
  // Live again: a new write is acknowledged.
  const probe = `probe-${cluster.seed}-${cluster.totals.checks}:1`;
  await leader.propose(enc(probe));
  workload.acked.add(probe);
  return { leader, members };
}

/** Each replica's view of the configuration, for a failure message. */
export function describe(lives: readonly Life[]): string {
  return lives
    .map((l) => {
      const s = l.replica.status();
      return `replica ${s.id}: ${s.role}, commit ${s.commitSlot}, applied ${s.appliedSlot}, snapshot ${s.snapshotSlot}, configs ${JSON.stringify(s.configs)}`;
    })
    .join('; ');
}
