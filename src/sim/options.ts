import type { CoreOptions, PlantedBug } from '../core/options.js';
import { Prng } from './prng.js';

export interface FaultOptions {
  /** Probability that a replica-to-replica message is lost. */
  loss: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Extra random delay per message (reorders them), ms. */
  jitterMs: number;
  /** Probability of a long delay spike on one message. */
  delaySpike: number;
  partitions: boolean;
  crashes: boolean;
  slowDisk: boolean;
  /** A replica's process stops (GC pause, SIGSTOP) and resumes with stale beliefs. */
  pauses: boolean;
  /** Membership changes (5-replica seeds): the leader moves the cluster to a new member set. */
  reconfig: boolean;
  /** Clock rates drift within the bound the lease allows (|rate - 1| <= clockRateBound). */
  clockDrift: boolean;
  /**
   * Leadership transfers: the leader hands over to a random member, which may be down, paused or
   * cut off (the transfer then lapses). Off unless asked for (`npm run sim -- --transfers`): an
   * added fault kind would change what every existing seed does.
   */
  transfers?: boolean;
}

export type SimReadMode = 'none' | 'linearizable' | 'lease' | 'mixed';

export interface SimOptions {
  seed: number;
  replicas: number;
  /** Faults happen in [0, faultPhaseMs); then everything heals and liveness is checked. */
  faultPhaseMs: number;
  /** After healing, pending commands must commit and replicas converge within this bound. */
  livenessBoundMs: number;
  clients: number;
  /** Requests a client keeps in flight at once. */
  clientInflight: number;
  /** Mean gap between a client's requests, ms. */
  clientThinkMs: number;
  readMode: SimReadMode;
  faults: FaultOptions;
  /** Clock rate bound; the default keeps drift within the core's clockDriftMs over a lease. */
  clockRateBound: number;
  /** This replica campaigns at boot, so it leads first (tests: a leader with a slow clock). */
  initialLeader?: number;
  /** Explicit clock rates per replica (replaces the random ones): tests use it to push drift past ε. */
  clockRates?: number[];
  core: Omit<CoreOptions, 'id' | 'members'>;
  plantedBug?: PlantedBug;
  /** Snapshot (and compact the log) every this many applied slots; 0: never. */
  snapshotEverySlots: number;
  /** Keep this many slots of log below a snapshot. */
  compactionMarginSlots: number;
  /** Run the core's contracts (on by default; planted-bug tests turn them off to show the checkers bite alone). */
  contracts: boolean;
  /** Run every message through the binary codec (encode, then decode) as a real network would. */
  wireCodec: boolean;
  /** The replicated session table's settings (small ones make sessions expire and be evicted during runs). */
  sessionsMax: number;
  sessionExpiryMs: number;
  /**
   * Test-only: a deliberate defect of the sessions applied beside the core (not a core bug, so not
   * a PlantedBug): 'execute-unknown-sessions' runs a command whose session is not in the table
   * (expired, evicted) as if it were new, the pre-registration rule.
   */
  sessionBug?: 'execute-unknown-sessions';
}

const BASE_CORE: SimOptions['core'] = {
  pipelineWindowSlots: 16,
  batchCommandsMax: 8,
  batchBytesMax: 1 << 16,
  batchDelayMs: 0,
  heartbeatIntervalMs: 50,
  electionTimeoutMinMs: 300,
  electionTimeoutMaxMs: 600,
  leaseMs: 250,
  clockDriftMs: 25,
  retransmitMs: 100,
  catchupEntriesMax: 16,
};

/**
 * The largest clock rate deviation that keeps leases safe: a follower's lease (leaseMs on its
 * clock from receipt) must outlast the leader's (leaseMs - ε on its clock from sending), so
 * (1 + ρ) / (1 - ρ) <= leaseMs / (leaseMs - ε). A 10% margin is kept.
 */
export function safeClockRateBound(core: Pick<CoreOptions, 'leaseMs' | 'clockDriftMs'>): number {
  const k = core.leaseMs / (core.leaseMs - core.clockDriftMs);
  return ((k - 1) / (k + 1)) * 0.9;
}

/** Every seed picks its own cluster size, fault mix and tunables (TigerBeetle's VOPR style). */
export function randomSimOptions(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  const r = new Prng(seed ^ 0x5eed);
  const core = {
    ...BASE_CORE,
    pipelineWindowSlots: r.pick([2, 4, 16, 64]),
    batchCommandsMax: r.pick([1, 4, 32]),
    batchDelayMs: r.pick([0, 0, 2]),
    catchupEntriesMax: r.pick([4, 16, 64]),
  };
  const options: SimOptions = {
    seed,
    replicas: r.pick([3, 3, 5]),
    faultPhaseMs: 4000,
    livenessBoundMs: 12000,
    clients: r.int(2, 6),
    clientInflight: r.int(1, 3),
    clientThinkMs: r.pick([1, 5, 20]),
    readMode: r.pick<SimReadMode>(['none', 'linearizable', 'lease', 'mixed']),
    // Every fault kind is on in every seed; the seed picks the intensities.
    faults: {
      loss: r.pick([0.01, 0.05, 0.15]),
      duplicate: r.pick([0.02, 0.1]),
      jitterMs: r.pick([1, 5, 20]),
      delaySpike: r.pick([0.005, 0.02]),
      partitions: true,
      crashes: true,
      slowDisk: true,
      pauses: true,
      reconfig: true,
      clockDrift: true,
    },
    clockRateBound: safeClockRateBound(core),
    core,
    wireCodec: false,
    contracts: true,
    snapshotEverySlots: r.pick([0, 10, 40]),
    compactionMarginSlots: r.pick([0, 4, 16]),
    // Stamped time follows the leader's clock (offsets up to 10 s with clock drift), so a leader
    // change may also jump it: sessions expire, mid-run, in many seeds.
    sessionExpiryMs: r.pick([200, 1000, 3_600_000]),
    sessionsMax: r.pick([4, 16, 100_000]),
  };
  return { ...options, ...overrides, faults: { ...options.faults, ...(overrides.faults ?? {}) }, core: { ...options.core, ...(overrides.core ?? {}) } };
}
