import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, statSync, truncateSync, writeSync } from 'node:fs';
import { SnapshotStore } from '../../src/storage/snapshot-store.js';
import { readMetadata, writeMetadata } from '../../src/storage/metadata.js';
import { isStorageError } from '../../src/storage/errors.js';
import { tempDir } from './compliance.js';
import { nodeIo, type StorageIo } from '../../src/storage/io.js';
import { BULK_STEP_BYTES, type PacerClock } from '../../src/storage/pacer.js';

function body(slot: number, bytes: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes; at += 100_000) {
    const chunk = new Uint8Array(Math.min(100_000, bytes - at));
    for (let i = 0; i < chunk.length; i++) chunk[i] = (slot + at + i * 13) & 0xff;
    chunks.push(chunk);
  }
  return chunks;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

test('snapshots stream in and out in chunks; the newest N are kept; pinned ones survive pruning', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const store = await SnapshotStore.open(dir, { keep: 2 });
    assert.equal(await store.latest(), null);
    const meta = new TextEncoder().encode('configs');
    await store.save(10, meta, body(10, 300_000));
    const release = store.pin(10);
    await store.save(20, meta, body(20, 0));
    await store.save(30, meta, body(30, 1_000_001));
    assert.deepEqual(await store.slots(), [30, 20, 10], 'pinned 10 kept beyond N');
    release();
    await store.save(40, meta, body(40, 5));
    assert.deepEqual(await store.slots(), [40, 30]);
    const latest = (await store.latest())!;
    assert.equal(latest.slot, 40);
    assert.deepEqual(latest.meta, meta);
    const reader = store.read(30, 64 * 1024);
    const chunks: Uint8Array[] = [];
    for await (const c of reader.body) {
      assert.ok(c.length <= 64 * 1024);
      chunks.push(c);
    }
    assert.deepEqual(concat(chunks), concat(body(30, 1_000_001)));
    assert.equal(reader.info().bodyBytes, 1_000_001);
  } finally {
    cleanup();
  }
});

test('a corrupt or partial newest snapshot is ignored in favour of the previous one', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const store = await SnapshotStore.open(dir, { keep: 3 });
    await store.save(5, new Uint8Array(), body(5, 200_000));
    await store.save(6, new Uint8Array(), body(6, 200_000));
    const path6 = `${dir}/${readdirSync(dir).find((n) => n.includes('0006'))!}`;
    // Bit flip in the body.
    const fd = openSync(path6, 'r+');
    writeSync(fd, Buffer.from([0xee]), 0, 1, 1000);
    closeSync(fd);
    assert.equal((await store.latest())!.slot, 5);
    await assert.rejects(store.read(6).finish(), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT') && (e as Error).message.includes(path6));
    // A partial (truncated) one, e.g. a crash before fsync without the rename having been durable.
    await store.save(7, new Uint8Array(), body(7, 200_000));
    const path7 = `${dir}/${readdirSync(dir).find((n) => n.includes('0007'))!}`;
    truncateSync(path7, statSync(path7).size - 100);
    assert.equal((await store.latest())!.slot, 5);
    // A leftover temp file is removed on open.
    const writer = await store.create(8);
    await writer.write(new Uint8Array(10));
    const reopened = await SnapshotStore.open(dir);
    assert.ok(!readdirSync(dir).some((n) => n.endsWith('.tmp')));
    assert.equal((await reopened.latest())!.slot, 5);
    await writer.abort();
  } finally {
    cleanup();
  }
});

test('metadata is written atomically and read back; corruption is a clear error', async () => {
  const { dir, cleanup } = tempDir();
  try {
    assert.equal(await readMetadata(dir), null);
    const meta = { promised: 123456789012, incarnation: new Uint8Array(16).fill(7), config: new Uint8Array([1, 2, 3]), snapshotSlot: 42 };
    await writeMetadata(dir, meta);
    assert.deepEqual(await readMetadata(dir), meta);
    await writeMetadata(dir, { ...meta, promised: 5 });
    assert.equal((await readMetadata(dir))!.promised, 5);
    assert.deepEqual(readdirSync(dir), ['meta']);
    const fd = openSync(`${dir}/meta`, 'r+');
    writeSync(fd, Buffer.from([0xff]), 0, 1, 20);
    closeSync(fd);
    await assert.rejects(readMetadata(dir), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT') && (e as Error).message.includes(`${dir}/meta`));
  } finally {
    cleanup();
  }
});

test('a snapshot is written and flushed a step (256 KiB) at a time with a rest after each, none before its commit', async () => {
  const { dir, cleanup } = tempDir();
  const unsynced = new Map<number, number>();
  let worst = 0;
  const events: string[] = [];
  const io: StorageIo = {
    ...nodeIo,
    async writev(fd, buffers, position) {
      const n = buffers.reduce((a, b) => a + b.length, 0);
      unsynced.set(fd, (unsynced.get(fd) ?? 0) + n);
      worst = Math.max(worst, unsynced.get(fd)!);
      events.push('write');
      return nodeIo.writev(fd, buffers, position);
    },
    async fdatasync(fd) {
      await nodeIo.fdatasync(fd);
      unsynced.set(fd, 0);
      events.push('sync');
    },
    async fsync(fd) {
      await nodeIo.fsync(fd);
      unsynced.set(fd, 0);
      events.push('fsync');
    },
  };
  const rests: number[] = [];
  const pacerClock: PacerClock = { now: () => performance.now(), sleep: async (ms) => void (rests.push(ms), events.push('rest')) };
  try {
    const store = await SnapshotStore.open(dir, { io, pacerClock });
    const w = await store.create(7);
    const bytes = 3_000_000;
    for (const chunk of body(7, bytes)) await w.write(chunk);
    await w.commit();
    // A step is written once the buffer reaches BULK_STEP_BYTES: at most a step plus the chunk that filled it.
    assert.ok(worst <= BULK_STEP_BYTES + 100_000 + 64, `at most a step (and one chunk) unflushed, saw ${worst}`);
    const steps = Math.floor(bytes / BULK_STEP_BYTES);
    assert.ok(rests.length >= steps - 1 && rests.length <= steps + 1, `a rest per step (${steps}), saw ${rests.length}`);
    const lastWrite = events.lastIndexOf('write');
    assert.ok(events.lastIndexOf('rest') < lastWrite && events.slice(lastWrite).includes('fsync'), `the last step goes straight to the fsync: ${events.slice(-4).join(' ')}`);
    for (let i = 0; i < events.length; i++) if (events[i] === 'rest') assert.equal(events[i - 1], 'sync', 'a rest comes after a flushed step');
    const chunks: Uint8Array[] = [];
    for await (const c of store.read(7, 1 << 20).body) chunks.push(c);
    assert.deepEqual(concat(chunks), concat(body(7, bytes)), 'and the snapshot reads back whole');
  } finally {
    cleanup();
  }
});

test('a pruned snapshot\'s file is kept as the spare and the next snapshot is written over it, cut to its own size', async () => {
  const { dir, cleanup } = tempDir();
  const inode = (slot: number) => statSync(`${dir}/${readdirSync(dir).find((n) => n.includes(`${slot}`.padStart(16, '0')))!}`).ino;
  try {
    const store = await SnapshotStore.open(dir, { keep: 1 });
    await store.save(10, new Uint8Array(), body(10, 1_000_000));
    const first = inode(10);
    await store.save(20, new Uint8Array(), body(20, 300_000));
    assert.deepEqual(readdirSync(dir).sort(), ['snap-0000000000000020.snap', 'snap-spare.free'], 'the pruned file is the spare');
    assert.equal(statSync(`${dir}/snap-spare.free`).ino, first);
    // Smaller than the spare: written over it, then cut, so the file is exactly this snapshot.
    await store.save(30, new Uint8Array(), body(30, 200_000));
    assert.equal(inode(30), first, 'written over the spare, not into a new file');
    const chunks: Uint8Array[] = [];
    for await (const c of store.read(30).body) chunks.push(c);
    assert.deepEqual(concat(chunks), concat(body(30, 200_000)));
    // A reopened store finds the spare (now snapshot 20's file) and writes over it; larger than it this time.
    const second = statSync(`${dir}/snap-spare.free`).ino;
    const reopened = await SnapshotStore.open(dir, { keep: 1 });
    await reopened.save(40, new Uint8Array(), body(40, 700_000));
    assert.equal(inode(40), second);
    assert.equal((await reopened.latest())!.bodyBytes, 700_000);
    // Recycling off: a new file each time, and no spare left behind.
    const plain = await SnapshotStore.open(dir, { keep: 1, recycle: false });
    assert.ok(!readdirSync(dir).includes('snap-spare.free'), 'a spare is removed when recycling is off');
    await plain.save(50, new Uint8Array(), body(50, 100_000));
    assert.deepEqual(readdirSync(dir), ['snap-0000000000000050.snap']);
  } finally {
    cleanup();
  }
});

test('a chunk given to write() may be reused once it resolves, a large one too', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const store = await SnapshotStore.open(dir);
    const w = await store.create(3);
    const expected: Uint8Array[] = [];
    // One buffer reused for every chunk, each larger than a step and not a multiple of it, so that
    // a chunk's tail is still buffered (unwritten) when write() resolves.
    const chunk = new Uint8Array(BULK_STEP_BYTES + 12_345);
    for (let k = 0; k < 5; k++) {
      chunk.fill(k + 1);
      expected.push(chunk.slice());
      await w.write(chunk);
    }
    chunk.fill(0xee);
    await w.commit();
    const got: Uint8Array[] = [];
    for await (const c of store.read(3).body) got.push(c);
    assert.deepEqual(concat(got), concat(expected));
  } finally {
    cleanup();
  }
});

test('a commit reads its snapshot back once, and prunes nothing when that read-back fails', async () => {
  const { dir, cleanup } = tempDir();
  const opened = new Map<number, string>();
  const readOpens: string[] = [];
  let corruptReads = false;
  const io: StorageIo = {
    ...nodeIo,
    async open(path, flags, mode) {
      const fd = await nodeIo.open(path, flags, mode);
      opened.set(fd, path);
      if (flags === 'r' && path.endsWith('.snap')) readOpens.push(path.slice(path.lastIndexOf('/') + 1));
      return fd;
    },
    async read(fd, buffer, offset, length, position) {
      const n = await nodeIo.read(fd, buffer, offset, length, position);
      if (corruptReads && n > 100) buffer[offset + 50] ^= 0xff; // a bad disk: what comes back differs
      return n;
    },
  };
  try {
    const store = await SnapshotStore.open(dir, { keep: 1, io });
    await store.save(1, new Uint8Array(), body(1, 500_000));
    await store.save(2, new Uint8Array(), body(2, 500_000));
    readOpens.length = 0;
    await store.save(3, new Uint8Array(), body(3, 500_000));
    assert.deepEqual(readOpens, ['snap-0000000000000003.snap'], 'one read-back, of the new snapshot');
    corruptReads = true;
    await assert.rejects(store.save(4, new Uint8Array(), body(4, 500_000)), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT'));
    corruptReads = false;
    assert.ok(readdirSync(dir).includes('snap-0000000000000003.snap'), 'the last good snapshot is still there');
    assert.equal((await store.latest())!.slot, 4, 'the new one reads fine once the disk does');
  } finally {
    cleanup();
  }
});

test('read(..., checkOnly) checks the whole body and yields nothing (what inspect() uses)', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const store = await SnapshotStore.open(dir);
    await store.save(9, new Uint8Array(), body(9, 700_000));
    const check = store.read(9, 64 * 1024, true);
    let yielded = 0;
    for await (const _ of check.body) yielded++;
    assert.equal(yielded, 0);
    assert.equal(check.info().bodyBytes, 700_000);
    const path = `${dir}/${readdirSync(dir).find((n) => n.includes('0009'))!}`;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, 600_000); // inside the body, past the first chunks
    closeSync(fd);
    await assert.rejects(store.read(9, 64 * 1024, true).finish(), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT'));
    assert.equal(await store.inspect(9), null);
  } finally {
    cleanup();
  }
});
