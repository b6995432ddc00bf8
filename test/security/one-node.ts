// A one-replica KvNode on loopback with HTTP and binary client ports, for the client-port tests
// and fuzz targets of test/security.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import type { ClientLimits, ClientSecurity } from '../../src/security/client-auth.js';
import { MemoryNetwork } from '../../src/transport/memory.js';

/** A one-replica KvNode on loopback with the given limits and security. */
export async function oneNode(limits: Partial<ClientLimits>, security?: ClientSecurity): Promise<{ node: KvNode; http: PeerAddress; binary: PeerAddress; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-limits-'));
  const network = new MemoryNetwork();
  const node = await KvNode.start({
    id: 1,
    clusterId: 'limits',
    dataDir: join(dir, 'r1'),
    members: new Map([[1, { host: '127.0.0.1', port: 1 }]]),
    httpAddresses: new Map([[1, { host: '127.0.0.1', port: 0 }]]),
    binary: { host: '127.0.0.1', port: 0 },
    transport: network.createTransport({ replicaId: 1 }),
    logBackend: 'memory',
    clientLimits: limits,
    clientSecurity: security,
  });
  const deadline = Date.now() + 10_000;
  while (node.replica.status().role !== 'leader') {
    if (Date.now() > deadline) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    node,
    http: node.http.address(),
    binary: node.binary!.address(),
    async close() {
      await node.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
