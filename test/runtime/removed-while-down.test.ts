// A replica removed while it was down, and kept down past the window in which the others still
// send it commit notices, comes back taking itself for a member (its log ends before its removal).
// Until session 23 it campaigned every election timeout for good: the members ignored its prepares
// (SAFETY.md: non-members do not vote), and none of them would dial it. Now a member answers a
// prepare from a replica no configuration it holds names with its latest configuration
// (notMember), dialing it at the address its hello gave; the replica checks that the
// configuration is newer than any it knows and leaves it out, stops campaigning, says so in
// status().removal, and the member stops dialing it a window after its last prepare.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { createServer } from 'node:net';
import { CounterMachine } from './counter.js';
import { until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const addr = { host: '127.0.0.1', port: 1 };
// Windows of 20 × 300 ms = 6 s instead of the default 12 s.
const CORE = { electionTimeoutMinMs: 250, electionTimeoutMaxMs: 300, leaseMs: 200 };
const WINDOW_MS = 20 * CORE.electionTimeoutMaxMs;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

for (const tcp of [false, true]) {
  test(`a replica removed while it was down is told so when it campaigns, stops campaigning, and is then dropped (${tcp ? 'TCP' : 'in-memory transport'})`, { timeout: 90_000 }, async () => {
    await removedWhileDown(tcp);
  });
}

async function removedWhileDown(tcp: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-removed-down-'));
  const network = new MemoryNetwork();
  const members = new Map<number, { host: string; port: number }>();
  for (const id of [1, 2, 3]) members.set(id, tcp ? { host: '127.0.0.1', port: await freePort() } : addr);
  const replicas = new Map<number, SynodReplica>();
  const logs: string[] = [];
  const start = async (id: number): Promise<SynodReplica> => {
    const r = await SynodReplica.start({
      id, clusterId: 'r', dataDir: `${dir}/r${id}`, members, listen: members.get(id)!, stateMachine: new CounterMachine(), core: CORE,
      logger: (level, msg) => logs.push(`${id} ${level} ${msg}`),
      ...(tcp ? {} : { transport: network.createTransport({ replicaId: id }) }),
    });
    replicas.set(id, r);
    return r;
  };
  try {
    for (const id of [1, 2, 3]) await start(id);
    // On a busy machine leadership may move at any step (elections of 250-300 ms): each step that
    // needs the leader retries on whichever replica leads now.
    const onLeader = async <T>(what: string, step: (leader: SynodReplica) => Promise<T>): Promise<T> => {
      for (const deadline = Date.now() + 30_000; ; ) {
        const leader = [...replicas.values()].find((r) => r.status().role === 'leader');
        try {
          if (leader) return await step(leader);
        } catch (e) {
          if (Date.now() > deadline) throw e;
        }
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const first = await onLeader('a first write', async (l) => (await l.propose(enc('w1:1'), { timeoutMs: 5_000 }), l.id));
    const downId = [1, 2, 3].find((id) => id !== first)!;
    await replicas.get(downId)!.close(); // down through its removal
    replicas.delete(downId);
    await onLeader('the removal', async (l) => {
      if (l.status().members.includes(downId)) await l.removeMember(downId); // a retry after an unknown outcome may find it done
    });
    const remaining = [1, 2, 3].filter((id) => id !== downId);
    const peerOf = (r: SynodReplica) => String(downId) in r.status().peers;
    await until('the window for the removed replica to end', () => !remaining.some((id) => peerOf(replicas.get(id)!)), WINDOW_MS + 10_000);

    const back = await start(downId);
    assert.deepEqual(back.status().members, [1, 2, 3], 'it comes back taking itself for a member');
    await until('the returned replica to be told of its removal', () => back.status().removal !== null, 10_000);
    const removal = back.status().removal!;
    assert.deepEqual(removal.members, remaining);
    assert.ok(remaining.includes(removal.by));
    const others = remaining.map((id) => replicas.get(id)!);
    assert.ok(others.some(peerOf), 'the members dial it to tell it');
    // It campaigns no more: many election timeouts, never a candidate, never a leader; the
    // cluster serves on.
    const roles = new Set<string>();
    const watchEnd = Date.now() + 3_000;
    while (Date.now() < watchEnd) {
      roles.add(back.status().role);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual([...roles], ['follower']);
    const later = await onLeader('a later write', async (l) => (await l.propose(enc('w1:2'), { timeoutMs: 5_000 }), l.id));
    assert.notEqual(later, downId);
    // The members dialed it only to tell it: a window after its last prepare they stop.
    await until('the members to stop dialing it again', () => !others.some(peerOf), WINDOW_MS + 10_000);
    assert.notEqual(back.status().removal, null, 'it still knows');
    assert.equal(logs.filter((l) => l.startsWith(`${downId} error this replica was removed`)).length, 1, 'it says so once');
    assert.ok(logs.some((l) => new RegExp(`^${removal.by} warn replica ${downId} campaigns but is not a member`).test(l)), 'the member that told it says so');
  } finally {
    await Promise.all([...replicas.values()].map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
}
