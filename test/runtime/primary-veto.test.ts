// The application's say in elections: veto becoming primary (RSL's CanBecomePrimary) and a primary
// cookie that followers check before promising (RSL's AcceptMessageFromReplica).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { coreOptions } from '../../src/core/options.js';
import { Replica } from '../../src/core/replica.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** Runs a single-member core until it stops producing work, reporting every write durable. */
function settle(core: Replica, nowMs: number): void {
  for (let ready = core.takeReady(); ready; ready = core.takeReady()) {
    const last = ready.persist.at(-1);
    if (last) core.persisted(last.seq, nowMs);
  }
}

test('core: a vetoing application never campaigns; campaign() says why; lifting the veto elects it', () => {
  const core = new Replica(coreOptions({ id: 1, members: [1] }), () => 0.5, 0);
  let asked = 0;
  core.setPrimaryHooks({ canBecomePrimary: () => (asked++, false) });
  for (let t = 0; t <= 5000; t += 10) {
    core.tick(t);
    settle(core, t);
  }
  assert.equal(core.status.role, 'follower');
  assert.ok(asked >= 5, `asked ${asked} times (once per election timeout)`);
  assert.match(core.campaign(5010) ?? '', /vetoed/);
  core.setPrimaryHooks({ canBecomePrimary: () => enc('me') });
  assert.equal(core.campaign(5020), null);
  settle(core, 5020);
  assert.equal(core.status.role, 'leader');
});

test('runtime: only the replica whose cookie the others accept becomes primary; a vetoing one never does', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-veto-'));
  const network = new MemoryNetwork();
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const cookies: Record<number, boolean | Uint8Array> = { 1: false, 2: enc('bad'), 3: enc('ok') };
  const seen: Array<[number, number, string | null]> = [];
  const primaries: number[] = [];
  class Machine extends CounterMachine {
    constructor(readonly id: number) {
      super();
    }
    canBecomePrimary() {
      return cookies[this.id]!;
    }
    acceptPrimary(candidate: number, cookie: Uint8Array | null) {
      seen.push([this.id, candidate, dec(cookie)]);
      return dec(cookie) === 'ok';
    }
    onRoleChange(role: 'primary' | 'secondary') {
      if (role === 'primary') primaries.push(this.id);
    }
  }
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: 'veto', dataDir: join(dir, `r${id}`), members, stateMachine: new Machine(id),
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
        core: { electionTimeoutMinMs: 300, electionTimeoutMaxMs: 400 },
      }),
    ),
  );
  try {
    const deadline = Date.now() + 15_000;
    while (!primaries.includes(3)) {
      if (Date.now() > deadline) throw new Error(`replica 3 never became primary (primaries ${primaries}, seen ${JSON.stringify(seen)})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(dec(await replicas[2]!.propose(enc('x:1'))), '1');
    // Let replica 2 (refused cookie) and replica 1 (veto) try for a few election timeouts more.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual([...new Set(primaries)], [3], 'only replica 3 was ever primary');
    assert.ok(!seen.some(([, candidate]) => candidate === 1), 'replica 1 (vetoed) never sent a prepare');
    assert.ok(seen.some(([by, candidate, cookie]) => by !== 3 && candidate === 3 && cookie === 'ok'), 'followers checked replica 3 cookie');
    assert.equal(replicas[2]!.status().role, 'leader');
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
