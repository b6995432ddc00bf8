// SAFETY.md: "A replica whose data directory was wiped must not rejoin under its old identity: an
// incarnation id (random, stored with its data) is part of its membership."
//
// The scenario that makes the rule necessary, on three in-process replicas (file logs):
//   1. writes are acknowledged by the leader L and follower W while follower C is cut off;
//   2. L dies; W's data directory is wiped and W restarts under its old id (a new incarnation);
//   3. C and the wiped W are a majority by count. If W's votes counted, C would lead with a
//      quorum that has never seen the writes and they would be gone.
// With the check the cluster refuses W's votes (no quorum, no loss) until L comes back; the same
// scenario on transports that skip the check loses the acknowledged writes (the control arm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork, MemoryTransport } from '../../src/transport/memory.js';
import type { PeerAddress } from '../../src/transport/types.js';
import { CounterMachine } from './counter.js';
import { readyLeader, sleep, until } from './wait.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** A transport that ignores the runtime's admission check: a replica built without the rule. */
class UncheckedTransport extends MemoryTransport {
  override setAdmission(): void {}
}

interface Node {
  replica: SynodReplica;
  machine: CounterMachine;
  transport: MemoryTransport;
}

async function startNode(network: MemoryNetwork, id: number, dataDir: string, checked: boolean): Promise<Node> {
  const members = new Map<number, PeerAddress>([1, 2, 3].map((i) => [i, { host: '127.0.0.1', port: 1 }]));
  const machine = new CounterMachine();
  const transport = checked ? network.createTransport({ replicaId: id }) : new UncheckedTransport(network, { replicaId: id });
  const replica = await SynodReplica.start({ id, clusterId: 'incarnation-test', dataDir, members, stateMachine: machine, transport });
  return { replica, machine, transport };
}

/** Runs the scenario; returns what the survivors did while the old leader was down. */
async function wipeScenario(checked: boolean) {
  const dir = await mkdtemp(join(tmpdir(), 'synod-incarnation-'));
  const network = new MemoryNetwork();
  const nodes = new Map<number, Node>();
  for (const id of [1, 2, 3]) nodes.set(id, await startNode(network, id, join(dir, `r${id}`), checked));
  const all = () => [...nodes.values()];
  try {
    const first = await readyLeader(all().map((n) => n.replica));
    // Every replica has applied the bindings of all three incarnations.
    await until('incarnations bound on every replica', () => all().every((n) => Object.keys(n.replica.status().incarnations).length === 3));
    const ids = [1, 2, 3].filter((i) => i !== first.id);
    const L = first.id;
    const W = ids[0]!;
    const C = ids[1]!;
    const boundW = nodes.get(L)!.replica.status().incarnations[String(W)];
    assert.equal(boundW, nodes.get(W)!.replica.status().incarnation, 'the binding is W\'s own incarnation');

    // 1. C is cut off; L and W acknowledge writes.
    network.setDropFilter((from, to) => from === C || to === C);
    for (let i = 0; i < 20; i++) await first.propose(enc('add:7'));
    const acknowledged = 20 * 7;

    // 2. L dies; W is wiped and restarts under its old id with a fresh data directory.
    await nodes.get(L)!.replica.close();
    nodes.delete(L);
    await nodes.get(W)!.replica.close();
    nodes.set(W, await startNode(network, W, join(dir, `r${W}-wiped`), checked));
    assert.notEqual(nodes.get(W)!.replica.status().incarnation, boundW, 'a wiped data directory has a new incarnation');
    network.setDropFilter(null);

    // 3. C and the wiped W, for long enough to elect several times over (election timeout 300-600 ms).
    let survivorLed: { leader: number; total: number } | null = null;
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline && survivorLed === null) {
      for (const id of [C, W]) {
        const n = nodes.get(id)!;
        if (n.replica.status().role !== 'leader') continue;
        try {
          await n.replica.propose(enc('add:1'), { timeoutMs: 500 });
          survivorLed = { leader: id, total: n.machine.total };
        } catch {
          // not (yet) able to commit
        }
      }
      await sleep(50);
    }
    const refusedFrames = nodes.get(C)!.transport.refusedFrames;
    return { dir, network, nodes, L, W, C, acknowledged, survivorLed, refusedFrames };
  } catch (e) {
    await Promise.all(all().map((n) => n.replica.close()));
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

test('a wiped replica cannot rejoin under its old id: its votes are refused and no acknowledged write is lost', { timeout: 60_000 }, async () => {
  const run = await wipeScenario(true);
  const { dir, network, nodes, L, C, acknowledged } = run;
  try {
    assert.equal(run.survivorLed, null, `C and the wiped replica must not form a quorum (one led and committed: ${JSON.stringify(run.survivorLed)})`);
    assert.ok(run.refusedFrames > 0, 'C refused frames from the wiped incarnation');
    // The old leader comes back with its data: L and C are a real quorum, and the writes are there.
    nodes.set(L, await startNode(network, L, join(dir, `r${L}`), true));
    const leader = await readyLeader([nodes.get(L)!.replica, nodes.get(C)!.replica], 20_000);
    const total = Number(new TextDecoder().decode(await leader.propose(enc('add:1'))));
    assert.ok(total >= acknowledged + 1, `every acknowledged write survived (total ${total}, acknowledged ${acknowledged} + 1)`);
    await until('C applied the acknowledged writes', () => nodes.get(C)!.machine.total >= acknowledged + 1);
  } finally {
    await Promise.all([...nodes.values()].map((n) => n.replica.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('control: without the incarnation check the same scenario loses acknowledged writes', { timeout: 60_000 }, async () => {
  const run = await wipeScenario(false);
  const { dir, nodes, acknowledged } = run;
  try {
    assert.ok(run.survivorLed !== null, 'without the check, C and the wiped replica form a quorum');
    assert.ok(run.survivorLed.total < acknowledged, `and the acknowledged writes are gone (total ${run.survivorLed.total} < ${acknowledged})`);
  } finally {
    await Promise.all([...nodes.values()].map((n) => n.replica.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
