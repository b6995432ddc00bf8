// Three replicas of the counter machine in this process, for tests of one leader's behaviour.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicaOptions } from '../../src/runtime/api.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

/**
 * Replicas 1..3 on a memory network and log, led by replica 1. Long election timeouts and a
 * campaign to start: with the default 300 ms, a follower starved by the other test files running
 * beside this one on 2 cores took over mid-test (NOT_LEADER); a leader cut off stays leader, so
 * only a proposal's own deadline can end it. `options` are given to every replica (its `core` on
 * top of the long election timeouts).
 */
export async function counterCluster(name: string, options: Partial<Omit<ReplicaOptions, 'id' | 'clusterId' | 'dataDir' | 'members' | 'stateMachine' | 'transport'>> = {}) {
  const dir = await mkdtemp(join(tmpdir(), `synod-${name}-`));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const machines = [1, 2, 3].map(() => new CounterMachine());
  const core = { electionTimeoutMinMs: 20_000, electionTimeoutMaxMs: 40_000, ...options.core };
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({ id, clusterId: name, dataDir: join(dir, `r${id}`), members, stateMachine: machines[id - 1]!, transport: network.createTransport({ replicaId: id }), logBackend: 'memory', logger: () => {}, ...options, core }),
    ),
  );
  const close = async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    replicas[0]!.campaign();
    return { leader: await readyLeader(replicas), replicas, machines, network, close };
  } catch (e) {
    await close();
    throw e;
  }
}
