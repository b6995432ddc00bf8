import { MAX_REPLICA_ID } from './ballot.js';
import type { ReplicaId } from './types.js';

/**
 * Known protocol defects that tests plant on purpose to show a checker catches them: the
 * simulator (safety), or for the last one the jepsen run and a core test (a liveness defect).
 * Never set outside tests. Each is a one-line deviation in replica.ts, marked `PLANTED BUG`.
 */
export type PlantedBug =
  | 'acceptor-ignores-promise' // promises and accepts below its promised ballot
  | 'acceptor-overwrites-same-ballot'
  | 'leader-rebatches-retransmit' // the trigger for the one above, alone (harmless with correct acceptors)
  | 'leader-skips-recovery'
  | 'reply-before-persist'
  | 'promise-before-persist' // a promise (1b) is sent before the promised ballot is durable
  | 'config-governs-at-once' // a configuration chosen at i governs from i + 1, not i + W
  | 'window-ignored' // leaders propose and acceptors accept up to chosen prefix + 2W
  | 'member-ignores-non-member'; // no notMember answer to a non-member's prepare (as before session 23): a liveness defect

/** Tunables of one replica's protocol core. Times are milliseconds of the injected clock. */
export interface CoreOptions {
  id: ReplicaId;
  /** Initial members (slot 1's configuration). */
  members: ReplicaId[];
  /** W: the leader never proposes beyond chosen prefix + W; a configuration chosen at i governs from i + W. */
  pipelineWindowSlots: number;
  /** Most commands in one slot. */
  batchCommandsMax: number;
  /** Most payload bytes in one slot (a single larger command still gets its own slot). */
  batchBytesMax: number;
  /** How long the leader may hold a non-full batch while the window has room (0: propose at once). */
  batchDelayMs: number;
  heartbeatIntervalMs: number;
  /** A follower that hears no leader for a random time in [min, max] campaigns. */
  electionTimeoutMinMs: number;
  electionTimeoutMaxMs: number;
  /** Followers refuse to promise for this long after hearing from the leader. */
  leaseMs: number;
  /** ε: the clock drift allowed over one lease; the leader's lease is shortened by it. */
  clockDriftMs: number;
  /** The leader resends a 2a that has not been answered after this long. */
  retransmitMs: number;
  /** Most entries in one catch-up reply or promise chunk. */
  catchupEntriesMax: number;
  /** Test-only: a deliberate protocol defect (see PlantedBug). */
  plantedBug?: PlantedBug;
}

export const DEFAULT_CORE_OPTIONS: Omit<CoreOptions, 'id' | 'members'> = {
  pipelineWindowSlots: 64,
  batchCommandsMax: 1024,
  batchBytesMax: 1 << 20,
  batchDelayMs: 0,
  heartbeatIntervalMs: 50,
  electionTimeoutMinMs: 300,
  electionTimeoutMaxMs: 600,
  leaseMs: 250,
  clockDriftMs: 25,
  retransmitMs: 100,
  catchupEntriesMax: 256,
};

export class ConfigError extends Error {
  readonly code = 'SYNOD_BAD_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Checks every option and the relations between them; throws ConfigError naming the first problem. */
export function validateCoreOptions(options: CoreOptions): CoreOptions {
  const positiveInt = (name: keyof CoreOptions, value: number) => {
    if (!Number.isInteger(value) || value < 1) throw new ConfigError(`${name} must be a positive integer, got ${value}`);
  };
  const validId = (what: string, id: number) => {
    if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) {
      throw new ConfigError(`${what} must be an integer in 1..${MAX_REPLICA_ID}, got ${id}`);
    }
  };
  validId('id', options.id);
  if (options.members.length === 0) throw new ConfigError('members must not be empty');
  for (const member of options.members) validId('member id', member);
  if (new Set(options.members).size !== options.members.length) throw new ConfigError('members must be distinct');
  positiveInt('pipelineWindowSlots', options.pipelineWindowSlots);
  positiveInt('batchCommandsMax', options.batchCommandsMax);
  positiveInt('batchBytesMax', options.batchBytesMax);
  positiveInt('heartbeatIntervalMs', options.heartbeatIntervalMs);
  positiveInt('electionTimeoutMinMs', options.electionTimeoutMinMs);
  positiveInt('leaseMs', options.leaseMs);
  positiveInt('retransmitMs', options.retransmitMs);
  positiveInt('catchupEntriesMax', options.catchupEntriesMax);
  if (!(options.batchDelayMs >= 0)) throw new ConfigError(`batchDelayMs must be >= 0, got ${options.batchDelayMs}`);
  if (!(options.clockDriftMs >= 0)) throw new ConfigError(`clockDriftMs must be >= 0, got ${options.clockDriftMs}`);
  if (options.electionTimeoutMaxMs < options.electionTimeoutMinMs) {
    throw new ConfigError('electionTimeoutMaxMs must be >= electionTimeoutMinMs');
  }
  // A follower must give up on a silent leader only after its lease promise has lapsed,
  // and the leader must renew its lease well within it.
  if (options.electionTimeoutMinMs < options.leaseMs) throw new ConfigError('electionTimeoutMinMs must be >= leaseMs');
  if (options.heartbeatIntervalMs * 2 > options.leaseMs) throw new ConfigError('leaseMs must be >= 2 * heartbeatIntervalMs');
  if (options.clockDriftMs >= options.leaseMs) throw new ConfigError('clockDriftMs must be < leaseMs');
  return options;
}

export function coreOptions(partial: Partial<CoreOptions> & Pick<CoreOptions, 'id' | 'members'>): CoreOptions {
  return validateCoreOptions({ ...DEFAULT_CORE_OPTIONS, ...partial });
}
