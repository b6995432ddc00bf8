// The harness's network: a peer proxy learns the dialer from the transport hello and applies
// that link's rule; a blocked link holds bytes and delivers them, in order, when it heals.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { test } from 'node:test';
import { freePorts } from '../../src/cli/cluster-procs.js';
import { LinkProxy, Network } from './proxy.js';

function hello(senderId: number, targetId: number): Buffer {
  const b = Buffer.alloc(16);
  b.write('SYNP', 0, 'latin1');
  b[4] = 1;
  b.writeUInt16BE(9, 5);
  b.writeUInt16BE(1, 7);
  b.writeUInt16BE(1, 9);
  b.writeUInt16BE(senderId, 11);
  b.writeUInt16BE(targetId, 13);
  b[15] = 0;
  return b;
}

async function sink(port: number): Promise<{ server: net.Server; received: () => Buffer }> {
  const chunks: Buffer[] = [];
  const server = net.createServer((s) => s.on('data', (c: Buffer) => chunks.push(c)));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { server, received: () => Buffer.concat(chunks) };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('peer proxy: the hello names the link; blocked bytes wait for the heal; other links flow', async () => {
  const [targetPort, proxyPort] = await freePorts(2);
  const target = await sink(targetPort!);
  const network = new Network(() => 0.5);
  const proxy = new LinkProxy({ network, listenPort: proxyPort!, targetPort: targetPort!, to: 3, bothWays: false });
  await proxy.start();
  network.set(1, 3, { blocked: true });
  const from1 = net.connect(proxyPort!, '127.0.0.1');
  const from2 = net.connect(proxyPort!, '127.0.0.1');
  try {
    from1.write(Buffer.concat([hello(1, 3), Buffer.from('one')]));
    from2.write(Buffer.concat([hello(2, 3), Buffer.from('two')]));
    await settle(200);
    const before = target.received().toString('latin1');
    assert.ok(before.includes('two'), 'link 2>3 is open');
    assert.ok(!before.includes('one'), 'link 1>3 is blocked');
    assert.equal(proxy.accepted.get(1), 1);
    assert.equal(proxy.accepted.get(2), 1);
    network.heal();
    await settle(200);
    assert.ok(target.received().toString('latin1').includes('one'), 'held bytes are delivered on heal');
  } finally {
    from1.destroy();
    from2.destroy();
    await proxy.close();
    await new Promise((r) => target.server.close(r));
  }
});

test('peer proxy: loss resets the connection; delay holds bytes for the delay', async () => {
  const [targetPort, proxyPort] = await freePorts(2);
  const target = await sink(targetPort!);
  const network = new Network(() => 0); // every roll "loses"
  const proxy = new LinkProxy({ network, listenPort: proxyPort!, targetPort: targetPort!, to: 2, bothWays: false });
  await proxy.start();
  try {
    network.set(1, 2, { lossRate: 0.5 });
    const lossy = net.connect(proxyPort!, '127.0.0.1');
    const closed = new Promise((r) => lossy.on('close', r));
    lossy.on('error', () => {});
    lossy.write(hello(1, 2));
    await closed;
    network.heal();
    network.set(1, 2, { delayMs: 300 });
    const slow = net.connect(proxyPort!, '127.0.0.1');
    slow.write(Buffer.concat([hello(1, 2), Buffer.from('late')]));
    await settle(100);
    assert.ok(!target.received().toString('latin1').includes('late'), 'delivered before the delay');
    await settle(400);
    assert.ok(target.received().toString('latin1').includes('late'), 'not delivered after the delay');
    slow.destroy();
  } finally {
    await proxy.close();
    await new Promise((r) => target.server.close(r));
  }
});
