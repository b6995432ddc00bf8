import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, statSync, truncateSync, writeSync } from 'node:fs';
import { SnapshotStore } from '../../src/storage/snapshot-store.js';
import { readMetadata, writeMetadata } from '../../src/storage/metadata.js';
import { isStorageError } from '../../src/storage/errors.js';
import { tempDir } from './compliance.js';

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
