// Snapshot shipping between replicas, at its edges. A replica fetching a snapshot holds at most the
// bytes the first chunk announced, and at most snapshotBytesMax: a sender whose chunks run past what
// it announced (confused or hostile) or that announces too much is dropped, nothing is installed,
// and a good sender is then taken as usual. A fetch that keeps moving is not timed out, however long
// it takes. A replica ships one snapshot at a time to a peer, however often it is asked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import { setContracts } from '../../src/core/contracts.js';
import { SynodReplica } from '../../src/runtime/replica.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { CounterMachine } from './counter.js';
import { readyLeader } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
/** The runtime's snapshot chunk frame: kind, slot f64, offset f64, total f64, last u8, bytes. */
const FRAME_SNAPSHOT_CHUNK = 0xf2;

/** A counter whose snapshot carries `padding` bytes of trailing JSON whitespace: a large state to ship. */
class PaddedCounter extends CounterMachine {
  constructor(private readonly padding: number) {
    super();
  }
  override snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ total: this.total, applied: this.applied }) + ' '.repeat(this.padding));
  }
}

async function laggingCluster(name: string, snapshotBytesMax?: number, padding = 0) {
  const dir = await mkdtemp(join(tmpdir(), `synod-${name}-`));
  const network = new MemoryNetwork();
  const warnings: string[] = [];
  const members = new Map([1, 2, 3].map((id) => [id, { host: '127.0.0.1', port: 1 }] as const));
  const replicas = await Promise.all(
    [1, 2, 3].map((id) =>
      SynodReplica.start({
        id, clusterId: name, dataDir: join(dir, `r${id}`), members, stateMachine: padding > 0 ? new PaddedCounter(padding) : new CounterMachine(),
        transport: network.createTransport({ replicaId: id }), logBackend: 'memory',
        snapshotBytesMax,
        logger: (level, msg) => {
          if (level === 'warn') warnings.push(`${id}: ${msg}`);
        },
      }),
    ),
  );
  const leader = await readyLeader(replicas);
  const lagging = replicas.find((r) => r !== leader)!;
  // The lagging replica hears no protocol message: it can only catch up by a snapshot.
  const cutOff = (_from: number, to: number, frame: Uint8Array) => to === lagging.id && frame[0] === MESSAGE_FORMAT_VERSION;
  network.setDropFilter(cutOff);
  for (let i = 0; i < 20; i++) await leader.propose(enc('add:1'));
  const close = async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  };
  return { network, leader, lagging, warnings, cutOff, close };
}

test('snapshot chunks running past the announced size are dropped, not held; a good sender is then installed', async () => {
  const c = await laggingCluster('chunks-past');
  try {
    // The first chunk now announces 16 bytes, and the body is larger than that.
    c.network.setDropFilter((from, to, frame) => {
      if (frame[0] === FRAME_SNAPSHOT_CHUNK && to === c.lagging.id) {
        const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
        if (view.getFloat64(9, true) === 0) view.setFloat64(17, 16, true);
      }
      return c.cutOff(from, to, frame);
    });
    await assert.rejects(c.lagging.copyStateFrom(c.leader.id, { timeoutMs: 1500 }), /sent no snapshot/);
    assert.equal(c.lagging.counters().snapshotsInstalled, 0);
    assert.ok(c.warnings.some((w) => w.includes('ran past the 16 bytes it announced')), c.warnings.join('\n'));

    c.network.setDropFilter(c.cutOff);
    const slot = await c.lagging.copyStateFrom(c.leader.id, { timeoutMs: 10_000 });
    assert.ok(slot >= 20, `installed up to slot ${slot}`);
    assert.equal(c.lagging.counters().snapshotsInstalled, 1);
  } finally {
    await c.close();
  }
});

test('a snapshot announced above snapshotBytesMax is refused before any chunk is held', async () => {
  const c = await laggingCluster('chunks-max', 64);
  try {
    await assert.rejects(c.lagging.copyStateFrom(c.leader.id, { timeoutMs: 1500 }), /sent no snapshot/);
    assert.equal(c.lagging.counters().snapshotsInstalled, 0);
    assert.ok(c.warnings.some((w) => / refused a snapshot of \d+ bytes from \d \(snapshotBytesMax\)/.test(w)), c.warnings.join('\n'));
  } finally {
    await c.close();
  }
});

test('a first chunk naming no whole slot or size is dropped', async () => {
  const c = await laggingCluster('chunks-nan');
  try {
    c.network.setDropFilter((from, to, frame) => {
      if (frame[0] === FRAME_SNAPSHOT_CHUNK && to === c.lagging.id) new DataView(frame.buffer, frame.byteOffset, frame.byteLength).setFloat64(17, Number.NaN, true);
      return c.cutOff(from, to, frame);
    });
    await assert.rejects(c.lagging.copyStateFrom(c.leader.id, { timeoutMs: 1500 }), /sent no snapshot/);
    assert.equal(c.lagging.counters().snapshotsInstalled, 0);
    assert.ok(c.warnings.some((w) => w.includes('naming slot') && w.includes('NaN bytes')), c.warnings.join('\n'));
  } finally {
    await c.close();
  }
});

test('a fetch that keeps moving is not dropped at the fetch timeout (3 s), however long it takes', async () => {
  // 3 MiB in 256 KiB chunks: 12 chunks, each handled 350 ms after it arrived, ~4.2 s in all.
  const c = await laggingCluster('chunks-slow', undefined, 3 << 20);
  try {
    const r = c.lagging as unknown as { onSnapshotChunk(from: number, frame: Uint8Array): void };
    const handle = r.onSnapshotChunk.bind(r);
    let chain = Promise.resolve();
    r.onSnapshotChunk = (from, frame) => {
      chain = chain.then(() => new Promise<void>((done) => setTimeout(() => (handle(from, frame), done()), 350)));
    };
    const started = performance.now();
    const slot = await c.lagging.copyStateFrom(c.leader.id, { timeoutMs: 15_000 });
    assert.ok(slot >= 20);
    assert.ok(performance.now() - started > 3_000, 'the transfer took longer than the fetch timeout');
    assert.equal(c.lagging.counters().snapshotsInstalled, 1);
  } finally {
    await c.close();
  }
});

test('one shipment per peer: repeated requests while one runs are dropped; a request past the applied slot takes no snapshot', async () => {
  const c = await laggingCluster('ship-once');
  try {
    await c.leader.takeSnapshot();
    const leader = c.leader as unknown as { snapshots: { read: (...a: unknown[]) => unknown }; shipSnapshot(to: number, frame: Uint8Array): Promise<void> };
    let reads = 0;
    const read = leader.snapshots.read.bind(leader.snapshots);
    leader.snapshots.read = (...a: unknown[]) => {
      if (a[2] !== true) reads++; // a shipment's read (latest() only checks the file)
      return read(...a);
    };
    const request = (slot: number) => {
      const frame = new Uint8Array(9);
      frame[0] = 0xf1;
      new DataView(frame.buffer).setFloat64(1, slot, true);
      return frame;
    };
    await Promise.all(Array.from({ length: 50 }, () => leader.shipSnapshot(c.lagging.id, request(1))));
    assert.equal(reads, 1, 'fifty requests at once, one shipment');
    await leader.shipSnapshot(c.lagging.id, request(1));
    assert.equal(reads, 2, 'the next request after it ended is served');
    await c.leader.propose(enc('add:1')); // applied since the snapshot: one could be taken now
    const taken = c.leader.counters().snapshotsTaken;
    await leader.shipSnapshot(c.lagging.id, request(c.leader.status().appliedSlot + 1000));
    await leader.shipSnapshot(c.lagging.id, request(Number.POSITIVE_INFINITY));
    assert.equal(c.leader.counters().snapshotsTaken, taken, 'no snapshot taken for a slot it cannot cover');
    assert.equal(reads, 2);
    assert.ok(c.warnings.some((w) => w.includes('dropped a snapshot request') && w.includes('Infinity')), c.warnings.join('\n'));
  } finally {
    await c.close();
  }
});
