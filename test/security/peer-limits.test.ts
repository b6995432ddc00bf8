// The peer port's connection limits are settings of a replica (ReplicaOptions.peerLimits, synod
// start --peer-*): a one-replica KvNode on real TCP, flooded with connections that never
// handshake, closes the excess at once and keeps serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { KvClient } from '../../src/kv/client.js';
import { KvNode } from '../../src/kv/node.js';
import type { TcpTransport } from '../../src/transport/tcp.js';

setContracts(true);

test('peerLimits reach the transport: connections over inboundPerAddressMax are closed at once, the replica keeps serving', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-peer-limits-'));
  const node = await KvNode.start({
    id: 1,
    clusterId: 'peer-limits',
    dataDir: join(dir, 'r1'),
    members: new Map([[1, { host: '127.0.0.1', port: 0 }]]),
    httpAddresses: new Map([[1, { host: '127.0.0.1', port: 0 }]]),
    binary: { host: '127.0.0.1', port: 0 },
    logBackend: 'memory',
    peerLimits: { inboundPerAddressMax: 2, handshakeTimeoutMs: 20_000 },
  });
  const sockets: net.Socket[] = [];
  try {
    const transport = (node.replica as unknown as { transport: TcpTransport }).transport;
    const port = transport.address().port;
    const closed: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect({ host: '127.0.0.1', port });
      sockets.push(s);
      s.on('error', () => {});
      closed.push(false);
      s.on('close', () => (closed[i] = true));
      await new Promise<void>((resolve) => {
        s.once('connect', () => resolve());
        s.once('close', () => resolve());
      });
    }
    const deadline = Date.now() + 5_000;
    while (!(closed[2] && closed[3])) {
      if (Date.now() > deadline) throw new Error(`connections over the limit not closed: ${JSON.stringify(closed)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(closed.slice(0, 2), [false, false], 'the first two (within the limit) are still waiting for their handshake');
    assert.equal(transport.refusedInboundConnections, 2);
    // The replica still serves clients.
    const client = new KvClient({ endpoints: [`127.0.0.1:${node.binary!.address().port}`], timeoutMs: 10_000 });
    try {
      await client.put('k', 'v');
      assert.equal(new TextDecoder().decode((await client.get('k'))!), 'v');
    } finally {
      client.close();
    }
  } finally {
    for (const s of sockets) s.destroy();
    await node.close();
    await rm(dir, { recursive: true, force: true });
  }
});
