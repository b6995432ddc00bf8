// MemoryNetwork's fault hooks and delivery timing (the rest is in the compliance suite).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNetwork, type MemoryTransport, type ReplicaId } from '../../src/transport/index.js';
import { numberedFrame, readNumbered, sleep, tick, waitFor } from './helpers.js';

async function trio(network: MemoryNetwork): Promise<{ nodes: MemoryTransport[]; inbox: Map<ReplicaId, number[]> }> {
  const nodes = [1, 2, 3].map((id) => network.createTransport({ replicaId: id }));
  const inbox = new Map<ReplicaId, number[]>();
  const peers = new Map(nodes.map((n) => [n.replicaId, { host: 'memory', port: n.replicaId }] as const));
  for (const node of nodes) {
    await node.start();
    node.setPeers(peers);
    inbox.set(node.replicaId, []);
    node.onFrame((from, frame) => inbox.get(node.replicaId)!.push(from * 1000 + readNumbered(frame).seq));
  }
  return { nodes, inbox };
}

test('memory: delivery happens on a later turn, never synchronously', async () => {
  const network = new MemoryNetwork();
  const { nodes, inbox } = await trio(network);
  nodes[0]!.send(2, numberedFrame(1, 1));
  assert.deepEqual(inbox.get(2), []);
  assert.equal(network.inFlight(), 1);
  await tick();
  assert.deepEqual(inbox.get(2), [1001]);
  await Promise.all(nodes.map((n) => n.close()));
});

test('memory: partitions and the drop filter drop (and count) frames; heal restores delivery', async () => {
  const network = new MemoryNetwork();
  const { nodes, inbox } = await trio(network);
  const [a, b, c] = nodes as [MemoryTransport, MemoryTransport, MemoryTransport];
  network.partition([[1, 2], [3]]);
  a.send(2, numberedFrame(1, 1));
  a.send(3, numberedFrame(1, 2));
  c.send(1, numberedFrame(3, 3));
  await tick();
  assert.deepEqual(inbox.get(2), [1001]);
  assert.deepEqual(inbox.get(3), []);
  assert.deepEqual(inbox.get(1), []);
  assert.equal(a.stats().get(3)!.droppedFrames, 1);
  assert.equal(a.stats().get(3)!.connected, false);
  assert.equal(c.stats().get(1)!.droppedFrames, 1);
  network.heal();
  network.setDropFilter((from, to, frame) => from === 2 && to === 3 && readNumbered(frame).seq % 2 === 0);
  for (let seq = 0; seq < 6; seq++) b.send(3, numberedFrame(2, seq));
  await tick();
  assert.deepEqual(inbox.get(3), [2001, 2003, 2005]);
  assert.equal(b.stats().get(3)!.droppedFrames, 3);
  network.setDropFilter(null);
  await Promise.all(nodes.map((n) => n.close()));
});

test('memory: frames in flight to a replica that closes are lost, not delivered to its next incarnation', async () => {
  const network = new MemoryNetwork();
  const { nodes } = await trio(network);
  const [a, b] = nodes as [MemoryTransport, MemoryTransport];
  a.send(2, numberedFrame(1, 1));
  await b.close();
  const reborn = network.createTransport({ replicaId: 2 });
  const got: number[] = [];
  reborn.onFrame((_from, frame) => got.push(readNumbered(frame).seq));
  await reborn.start();
  await sleep(5);
  assert.deepEqual(got, []);
  assert.equal(a.stats().get(2)!.droppedFrames, 1);
  assert.equal(a.stats().get(2)!.queuedBytes, 0);
  await assert.rejects(network.createTransport({ replicaId: 2 }).start(), /already on this memory network/);
  await Promise.all([...nodes, reborn].map((n) => n.close()));
});

test('memory: a ping-pong between handlers does not starve timers', async () => {
  const network = new MemoryNetwork();
  const a = network.createTransport({ replicaId: 1 });
  const b = network.createTransport({ replicaId: 2 });
  try {
    await a.start();
    await b.start();
    a.setPeers(new Map([[2, { host: 'm', port: 2 }]]));
    b.setPeers(new Map([[1, { host: 'm', port: 1 }]]));
    let bounces = 0;
    a.onFrame((_f, frame) => (bounces++, a.send(2, frame)));
    b.onFrame((_f, frame) => b.send(1, frame));
    a.send(2, new Uint8Array(10));
    // waitFor polls with timers: it returns only if timers fire while the frame bounces forever.
    await waitFor(() => bounces >= 20, 'bounces');
    const seen = bounces;
    await sleep(5);
    assert.ok(bounces > seen, 'still bouncing after a timer fired');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  assert.equal(network.inFlight(), 0);
});

test('memory: the per-peer queue bound drops and counts', async () => {
  const network = new MemoryNetwork();
  const a = network.createTransport({ replicaId: 1, frameBytesMax: 100, peerQueueBytesMax: 104 * 3 });
  const b = network.createTransport({ replicaId: 2 });
  try {
    await a.start();
    await b.start();
    a.setPeers(new Map([[2, { host: 'm', port: 2 }]]));
    // Three frames of 100 bytes fit (104 with header each); the fourth in the same turn does not.
    for (let i = 0; i < 4; i++) a.send(2, new Uint8Array(100));
    a.send(2, new Uint8Array(101)); // above frameBytesMax
    assert.equal(a.stats().get(2)!.droppedFrames, 2);
    assert.equal(a.stats().get(2)!.queuedBytes, 312);
    await tick();
    assert.equal(a.stats().get(2)!.queuedBytes, 0);
    assert.equal(a.stats().get(2)!.sentFrames, 3);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
