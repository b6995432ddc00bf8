import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../../src/runtime/replica.js';
import { generateDevCerts } from '../../src/security/certs.js';
import { CounterMachine } from './counter.js';
import { hasOpenssl } from '../security/openssl.js';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

test('a 3-replica cluster over mutual TLS replicates; a replica holding another id\'s certificate is shut out', { skip: hasOpenssl ? false : 'openssl not installed' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-tls-'));
  const certs = await generateDevCerts({ dir: join(dir, 'certs'), replicaIds: [1, 2, 3], clusterId: 'tls-test' });
  const members = new Map<number, { host: string; port: number }>();
  for (const id of [1, 2, 3]) members.set(id, { host: '127.0.0.1', port: await freePort() });
  const tlsFor = (certId: number) => ({ caFile: certs.ca.cert, certFile: certs.replicas.get(certId)!.cert, keyFile: certs.replicas.get(certId)!.key });
  const logs: string[] = [];
  const start = (id: number, certId = id) =>
    SynodReplica.start({
      id, clusterId: 'tls-test', dataDir: join(dir, `r${id}`), members, stateMachine: new CounterMachine(), logBackend: 'memory', tls: tlsFor(certId),
      logger: (level, msg, fields) => logs.push(`${id} ${level} ${msg} ${JSON.stringify(fields ?? {})}`),
    });
  // Replica 3 presents replica 2's certificate: its peers must refuse it.
  const replicas = [await start(1), await start(2), await start(3, 2)];
  try {
    let leader: SynodReplica | undefined;
    const deadline = Date.now() + 15_000;
    while (!leader && Date.now() < deadline) {
      for (const r of replicas.slice(0, 2)) {
        if (r.status().role !== 'leader') continue;
        try {
          await r.propose(new TextEncoder().encode('add:5'), { timeoutMs: 1000 });
          leader = r;
        } catch {
          // not ready
        }
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(leader, 'replicas 1 and 2 elect a leader over TLS and commit');
    const read = await leader.read(new Uint8Array(0));
    assert.equal(new TextDecoder().decode(read.result), '5');
    assert.equal(replicas[2]!.status().appliedSlot, 0, 'the impostor applied nothing');
    assert.ok(logs.some((l) => /SYNOD_TLS_ID_MISMATCH|mismatch|names replica/i.test(l)), `a refusal was logged:\n${logs.slice(0, 5).join('\n')}`);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  }
});
