// The compliance suite every PeerTransport implementation must pass (TCP and in-memory run the
// same tests; see compliance-tcp.test.ts and compliance-memory.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerAddress, PeerTransport, ReplicaId } from '../../src/transport/index.js';
import { liveHandles, numberedFrame, readNumbered, sleep, waitFor } from './helpers.js';

export interface Limits {
  frameBytesMax: number;
  peerQueueBytesMax: number;
}

/** Makes transports for one test. A replica started again keeps its address (a restart). */
export interface Harness {
  start(id: ReplicaId, limits: Limits): Promise<PeerTransport>;
  address(id: ReplicaId): PeerAddress;
  /** Closes whatever the test left open. */
  dispose(): Promise<void>;
}

const LIMITS: Limits = { frameBytesMax: 1 << 20, peerQueueBytesMax: 16 << 20 };

interface Node {
  transport: PeerTransport;
  /** Frames received, per sender, copied. */
  inbox: Map<ReplicaId, Uint8Array[]>;
}

function listen(transport: PeerTransport): Node {
  const inbox = new Map<ReplicaId, Uint8Array[]>();
  transport.onFrame((from, frame) => {
    let list = inbox.get(from);
    if (list === undefined) inbox.set(from, (list = []));
    list.push(frame.slice());
  });
  return { transport, inbox };
}

async function cluster(harness: Harness, ids: ReplicaId[], limits = LIMITS): Promise<Map<ReplicaId, Node>> {
  const nodes = new Map<ReplicaId, Node>();
  for (const id of ids) nodes.set(id, listen(await harness.start(id, limits)));
  const peers = new Map(ids.map((id) => [id, harness.address(id)] as const));
  for (const node of nodes.values()) node.transport.setPeers(peers);
  return nodes;
}

const received = (node: Node, from: ReplicaId): number => node.inbox.get(from)?.length ?? 0;

function assertSequence(frames: Uint8Array[] | undefined, sender: number, from: number, count: number): void {
  assert.ok(frames, `no frames from ${sender}`);
  assert.equal(frames.length, count, `frames from ${sender}`);
  frames.forEach((frame, i) => {
    const { sender: s, seq, intact } = readNumbered(frame);
    assert.equal(s, sender);
    assert.equal(seq, from + i, `frame ${i} from ${sender} out of order`);
    assert.ok(intact, `frame ${seq} from ${sender} corrupted`);
  });
}

export function transportCompliance(name: string, makeHarness: () => Harness): void {
  const withHarness = (title: string, body: (harness: Harness) => Promise<void>) =>
    test(`${name}: ${title}`, { timeout: 15_000 }, async () => {
      const harness = makeHarness();
      try {
        await body(harness);
      } finally {
        await harness.dispose();
      }
    });

  withHarness('delivers frames in order per peer pair, including those sent before the connection is up', async (harness) => {
    const nodes = await cluster(harness, [1, 2]);
    const a = nodes.get(1)!;
    const b = nodes.get(2)!;
    // Sent at once after setPeers: queued while connecting, then delivered in order.
    for (let seq = 0; seq < 300; seq++) a.transport.send(2, numberedFrame(1, seq, 8 + (seq % 97)));
    await waitFor(() => received(b, 1) >= 300, '300 frames');
    assertSequence(b.inbox.get(1), 1, 0, 300);
    const stats = a.transport.stats().get(2)!;
    assert.equal(stats.sentFrames, 300);
    assert.equal(stats.droppedFrames, 0);
    await waitFor(() => b.transport.stats().get(1)?.receivedFrames === 300, 'receivedFrames');
  });

  withHarness('delivers many small frames sent in bursts over several turns', async (harness) => {
    const nodes = await cluster(harness, [1, 2]);
    const a = nodes.get(1)!;
    const b = nodes.get(2)!;
    a.transport.send(2, numberedFrame(1, 0));
    await waitFor(() => received(b, 1) === 1, 'first frame');
    let seq = 1;
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 1_000; i++, seq++) a.transport.send(2, numberedFrame(1, seq, 16));
      await sleep(1);
    }
    await waitFor(() => received(b, 1) >= seq, `${seq} frames`);
    assertSequence(b.inbox.get(1), 1, 0, seq);
    assert.equal(a.transport.stats().get(2)!.droppedFrames, 0);
  });

  withHarness('delivers large frames up to frameBytesMax and drops larger ones at the sender', async (harness) => {
    const nodes = await cluster(harness, [1, 2]);
    const a = nodes.get(1)!;
    const b = nodes.get(2)!;
    const max = LIMITS.frameBytesMax;
    const sizes = [max, max - 1, 100_000, 0 + 8, max];
    a.transport.send(2, numberedFrame(1, 0, 16));
    await waitFor(() => received(b, 1) === 1, 'first frame');
    a.transport.send(2, new Uint8Array(max + 1)); // dropped: larger than the limit
    sizes.forEach((size, i) => a.transport.send(2, numberedFrame(1, i + 1, size)));
    await waitFor(() => received(b, 1) >= 1 + sizes.length, 'large frames');
    const frames = b.inbox.get(1)!;
    assertSequence(frames, 1, 0, 1 + sizes.length);
    sizes.forEach((size, i) => assert.equal(frames[i + 1]!.length, size));
    assert.equal(a.transport.stats().get(2)!.droppedFrames, 1);
  });

  withHarness('delivers frames from several peers, each in order', async (harness) => {
    const ids = [1, 2, 3, 4];
    const nodes = await cluster(harness, ids);
    const count = 200;
    for (let seq = 0; seq < count; seq++) {
      for (const from of ids) for (const to of ids) if (from !== to) nodes.get(from)!.transport.send(to, numberedFrame(from, seq, 8 + (seq % 50)));
      if (seq % 50 === 49) await sleep(1);
    }
    await waitFor(() => ids.every((to) => ids.every((from) => from === to || received(nodes.get(to)!, from) >= count)), 'all frames');
    for (const to of ids) for (const from of ids) if (from !== to) assertSequence(nodes.get(to)!.inbox.get(from), from, 0, count);
  });

  withHarness('a restarted peer receives the frames sent after it is back', async (harness) => {
    const nodes = await cluster(harness, [1, 2]);
    const a = nodes.get(1)!;
    a.transport.send(2, numberedFrame(1, 0));
    await waitFor(() => received(nodes.get(2)!, 1) === 1, 'first frame');
    await nodes.get(2)!.transport.close();
    // Replica 1 keeps sending while 2 is down: these may be dropped, never an error.
    for (let i = 0; i < 10; i++) a.transport.send(2, numberedFrame(1, 1_000_000 + i));
    const b = listen(await harness.start(2, LIMITS));
    b.transport.setPeers(new Map([[1, harness.address(1)]]));
    // Probe like a consensus retransmit until one gets through, then send a numbered run.
    await waitFor(
      () => {
        a.transport.send(2, numberedFrame(1, 2_000_000));
        return received(b, 1) > 0;
      },
      'a probe to reach the restarted peer',
      10_000,
    );
    for (let seq = 0; seq < 100; seq++) a.transport.send(2, numberedFrame(1, seq));
    await waitFor(() => (b.inbox.get(1) ?? []).filter((f) => readNumbered(f).seq < 100).length >= 100, 'frames after restart');
    const run = b.inbox.get(1)!.filter((f) => readNumbered(f).seq < 1_000_000);
    assertSequence(run, 1, 0, 100);
    // And the restarted replica can talk back.
    b.transport.send(1, numberedFrame(2, 7));
    await waitFor(() => received(a, 2) === 1, 'a frame from the restarted peer');
  });

  withHarness('send never throws: unknown peer, oversized frame, after close', async (harness) => {
    const nodes = await cluster(harness, [1, 2]);
    const a = nodes.get(1)!.transport;
    a.send(99, new Uint8Array(4));
    a.send(2, new Uint8Array(LIMITS.frameBytesMax + 10));
    await a.close();
    a.send(2, new Uint8Array(4));
    await a.close(); // idempotent
  });

  test(`${name}: close() leaves no sockets, servers, timers or immediates behind`, { timeout: 15_000 }, async () => {
    const before = liveHandles();
    const harness = makeHarness();
    try {
      const nodes = await cluster(harness, [1, 2, 3]);
      for (let seq = 0; seq < 50; seq++) for (const [from, node] of nodes) for (const to of nodes.keys()) if (to !== from) node.transport.send(to, numberedFrame(from, seq));
      await waitFor(() => received(nodes.get(2)!, 1) === 50 && received(nodes.get(1)!, 3) === 50, 'traffic');
      // Frames still in flight and a peer in backoff at close time.
      await nodes.get(3)!.transport.close();
      for (const node of nodes.values()) node.transport.send(3, numberedFrame(0, 0));
      for (const node of nodes.values()) node.transport.send(1, numberedFrame(0, 0));
      await Promise.all([...nodes.values()].map((node) => node.transport.close()));
      assert.deepEqual(liveHandles(), before);
    } finally {
      await harness.dispose(); // on failure too: a listener left open would keep the test process alive
    }
  });
}
