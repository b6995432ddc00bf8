// A 3-replica cluster of protocol cores driven by a random action sequence, contracts on.
// Properties: no ContractViolation (or any other error) is ever thrown, and agreement holds:
// no two nodes ever emit different committed values for one slot, and each node incarnation
// emits committed slots contiguously from 1 (its log has no snapshot).
//
// The network is a bag the sequence picks from (deliver, drop or duplicate the k-th message), so
// reordering, loss and duplication all happen; clocks are per node and only move forward; a
// crash loses every persist op not yet reported durable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { setContracts } from '../../src/core/contracts.js';
import { Replica } from '../../src/core/replica.js';
import type { CoreOptions } from '../../src/core/options.js';
import type { Message, Slot, Value } from '../../src/core/types.js';
import { sameValue } from '../../src/core/values.js';
import { Node, cmd, durableStateOf, options, type Outputs } from './harness.js';

setContracts(true);

/** Override for bug hunting: SYNOD_CORE_SEED=<n> SYNOD_CORE_RUNS=<n> node scripts/run-tests.mjs core/random */
const SEED = Number(process.env.SYNOD_CORE_SEED ?? 0x7a305);
const RUNS = Number(process.env.SYNOD_CORE_RUNS ?? 400);
const IDS = [1, 2, 3];

/** Short timeouts so that elections, lease expiry and retransmission all happen within a run. */
const TIMING: Partial<CoreOptions> = {
  heartbeatIntervalMs: 10,
  leaseMs: 25,
  clockDriftMs: 3,
  electionTimeoutMinMs: 30,
  electionTimeoutMaxMs: 60,
  retransmitMs: 20,
  pipelineWindowSlots: 4,
  batchCommandsMax: 2,
  catchupEntriesMax: 3,
};

type Action =
  | { k: 'deliver'; i: number }
  | { k: 'deliverAll' }
  | { k: 'drop'; i: number }
  | { k: 'dup'; i: number }
  | { k: 'tick'; node: number; dtMs: number }
  | { k: 'persist'; node: number }
  | { k: 'persistAll'; node: number }
  | { k: 'propose'; node: number; count: number }
  | { k: 'crash'; node: number };

const nodeArb = fc.integer({ min: 0, max: IDS.length - 1 });
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 30, arbitrary: fc.nat().map((i): Action => ({ k: 'deliver', i })) },
  { weight: 3, arbitrary: fc.constant<Action>({ k: 'deliverAll' }) },
  { weight: 3, arbitrary: fc.nat().map((i): Action => ({ k: 'drop', i })) },
  { weight: 2, arbitrary: fc.nat().map((i): Action => ({ k: 'dup', i })) },
  { weight: 8, arbitrary: fc.record({ node: nodeArb, dtMs: fc.integer({ min: 1, max: 12 }) }).map((a): Action => ({ k: 'tick', ...a })) },
  { weight: 10, arbitrary: nodeArb.map((node): Action => ({ k: 'persist', node })) },
  { weight: 4, arbitrary: nodeArb.map((node): Action => ({ k: 'persistAll', node })) },
  { weight: 4, arbitrary: fc.record({ node: nodeArb, count: fc.integer({ min: 1, max: 3 }) }).map((a): Action => ({ k: 'propose', ...a })) },
  { weight: 1, arbitrary: nodeArb.map((node): Action => ({ k: 'crash', node })) },
);

/** A small seeded PRNG (mulberry32), one per node, so election jitter differs between runs and nodes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Stats {
  committed: number;
  maxSlot: number;
  leaders: number;
  crashes: number;
}

class RandomCluster {
  readonly nodes: Node[];
  net: Message[] = [];
  /** Slot -> the value some node emitted as committed first. */
  readonly chosen = new Map<Slot, Value>();
  /** Per node: the next slot its current incarnation must emit. */
  readonly nextSlot: number[];
  private commandSeq = 0;

  constructor(
    seed: number,
    readonly stats: Stats,
  ) {
    this.nodes = IDS.map((id) => {
      const n = new Node(options(id, TIMING), 0);
      n.replica = new Replica(n.opts, prng(seed * 31 + id), 0);
      return n;
    });
    this.nextSlot = IDS.map(() => 1);
  }

  private absorb(index: number, out: Outputs): void {
    this.net.push(...out.send);
    for (const role of out.roleChanges) if (role.role === 'leader') this.stats.leaders++;
    for (const e of out.committed) {
      assert.equal(e.slot, this.nextSlot[index], `node ${IDS[index]}: committed slot ${e.slot}, expected ${this.nextSlot[index]}`);
      this.nextSlot[index]!++;
      const prior = this.chosen.get(e.slot);
      if (prior) assert.ok(sameValue(prior, e.value), `slot ${e.slot}: node ${IDS[index]} committed ${JSON.stringify(e.value)}, another ${JSON.stringify(prior)}`);
      else this.chosen.set(e.slot, e.value);
      this.stats.committed++;
      this.stats.maxSlot = Math.max(this.stats.maxSlot, e.slot);
    }
  }

  run(a: Action): void {
    switch (a.k) {
      case 'deliver': {
        if (this.net.length === 0) return;
        const [m] = this.net.splice(a.i % this.net.length, 1);
        const index = IDS.indexOf(m!.to);
        this.absorb(index, this.nodes[index]!.receive(m!));
        return;
      }
      case 'deliverAll': {
        // One synchronous round: what is in flight now arrives, in order (what it causes waits).
        const now = this.net;
        this.net = [];
        for (const m of now) {
          const index = IDS.indexOf(m.to);
          this.absorb(index, this.nodes[index]!.receive(m));
        }
        return;
      }
      case 'drop':
        if (this.net.length > 0) this.net.splice(a.i % this.net.length, 1);
        return;
      case 'dup':
        if (this.net.length > 0) this.net.push(this.net[a.i % this.net.length]!);
        return;
      case 'tick': {
        const n = this.nodes[a.node]!;
        this.absorb(a.node, n.tick(n.nowMs + a.dtMs));
        return;
      }
      case 'persist': {
        const n = this.nodes[a.node]!;
        if (n.unpersisted.length > 0) this.absorb(a.node, n.persistNext());
        return;
      }
      case 'persistAll': {
        const n = this.nodes[a.node]!;
        this.absorb(a.node, n.persistAll());
        return;
      }
      case 'propose': {
        const n = this.nodes[a.node]!;
        const commands = Array.from({ length: a.count }, () => cmd(IDS[a.node]!, ++this.commandSeq));
        const out = n.step((r, now) => r.propose(commands, now));
        for (const rej of out.rejected) assert.equal(rej.reason, 'NOT_LEADER');
        this.absorb(a.node, out);
        return;
      }
      case 'crash': {
        const n = this.nodes[a.node]!;
        this.stats.crashes++;
        // Restart from exactly what was reported durable, at the node's current time.
        n.unpersisted = [];
        n.replica = new Replica(n.opts, prng(this.commandSeq * 7 + a.node), n.nowMs, durableStateOf(n.durable));
        this.nextSlot[a.node] = 1;
        return;
      }
    }
  }
}

test('random inputs: contracts hold and no two nodes commit different values for a slot', (t) => {
  const stats: Stats = { committed: 0, maxSlot: 0, leaders: 0, crashes: 0 };
  let runs = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1 << 30 }), fc.array(actionArb, { minLength: 200, maxLength: 2500, size: 'max' }), (seed, actions) => {
      runs++;
      const cluster = new RandomCluster(seed, stats);
      for (const a of actions) cluster.run(a);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  t.diagnostic(`runs ${runs}: ${JSON.stringify(stats)}`);
  // The property is only worth something if the runs get somewhere: elections and commits.
  assert.ok(stats.leaders > runs, `leaders elected: ${stats.leaders} in ${runs} runs`);
  assert.ok(stats.committed > 5 * runs, `slots committed: ${stats.committed} in ${runs} runs`);
  assert.ok(stats.maxSlot >= 10, `highest slot committed: ${stats.maxSlot}`);
  assert.ok(stats.crashes > 10, `crash-restarts: ${stats.crashes}`);
});
