// Damaged snapshot files (findings of the storage review): a corrupt newest snapshot is skipped for the
// previous one, and a file that cannot be read is a StorageError naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { SnapshotStore } from '../../src/storage/snapshot-store.js';
import { isStorageError } from '../../src/storage/errors.js';
import { crc32c, viewOf } from '../../src/storage/format.js';
import { nodeIo, type StorageIo } from '../../src/storage/io.js';
import { inTempDir } from './compliance.js';

const snapPath = (dir: string, slot: number) => `${dir}/snap-${String(slot).padStart(16, '0')}.snap`;

async function twoSnapshots(dir: string): Promise<void> {
  const store = await SnapshotStore.open(dir, { keep: 3 });
  const body = new Uint8Array(10_000).map((_, i) => (i * 13) & 0xff);
  await store.save(5, new Uint8Array([1, 2, 3]), [body]);
  await store.save(6, new Uint8Array([4, 5, 6]), [body]);
}

test('a bit flip in the newest snapshot\'s version field is damage: latest() skips it for the previous one', async () => {
  for (const [offset, bit] of [[8, 1], [9, 0], [11, 7]] as const) {
    await inTempDir(async (dir) => {
      await twoSnapshots(dir);
      const bytes = readFileSync(snapPath(dir, 6));
      bytes[offset]! ^= 1 << bit;
      writeFileSync(snapPath(dir, 6), bytes);
      const store = await SnapshotStore.open(dir, { keep: 3 });
      assert.equal((await store.latest())?.slot, 5, `flip of bit ${bit} at byte ${offset}`);
      await assert.rejects(store.readWhole(6), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT') && /header checksum mismatch/.test((e as Error).message));
    });
  }
});

test('a snapshot of a newer format version (its checksum intact) is still refused as BAD_VERSION', async () => {
  await inTempDir(async (dir) => {
    await twoSnapshots(dir);
    const bytes = new Uint8Array(readFileSync(snapPath(dir, 6)));
    const view = viewOf(bytes);
    view.setUint32(8, 2, true);
    const metaBytes = view.getUint32(12, true);
    view.setUint32(24, crc32c(bytes.subarray(32, 32 + metaBytes), crc32c(bytes, 0, 0, 24)), true);
    writeFileSync(snapPath(dir, 6), bytes);
    const store = await SnapshotStore.open(dir, { keep: 3 });
    await assert.rejects(store.latest(), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_BAD_VERSION') && (e as { file: string }).file === snapPath(dir, 6));
  });
});

test('a snapshot that is a directory or unreadable: latest() throws a StorageError naming the file (was a raw EISDIR/EACCES)', async () => {
  await inTempDir(async (dir) => {
    await twoSnapshots(dir);
    rmSync(snapPath(dir, 6));
    mkdirSync(snapPath(dir, 6));
    const store = await SnapshotStore.open(dir, { keep: 3 });
    await assert.rejects(store.latest(), (e: unknown) => {
      assert.ok(isStorageError(e, 'SYNOD_STORAGE_IO'), String(e));
      assert.equal(e.file, snapPath(dir, 6));
      assert.match(e.message, new RegExp(`${snapPath(dir, 6)}.*\\(EISDIR\\)`));
      return true;
    });
    rmdirSync(snapPath(dir, 6));
    // Permissions (injected: the tests may run as root, which reads anything).
    const denied: StorageIo = {
      ...nodeIo,
      open: (path, flags, mode) => (path.endsWith('.snap') ? Promise.reject(Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' })) : nodeIo.open(path, flags, mode)),
    };
    const locked = await SnapshotStore.open(dir, { keep: 3, io: denied });
    await assert.rejects(locked.latest(), (e: unknown) => {
      assert.ok(isStorageError(e, 'SYNOD_STORAGE_IO'), String(e));
      assert.equal(e.file, snapPath(dir, 5));
      assert.match(e.message, new RegExp(`${snapPath(dir, 5)}.*\\(EACCES\\)`));
      return true;
    });
  });
});

test('a leftover *.tmp that is a non-empty directory: open names it (was the store directory)', async () => {
  await inTempDir(async (dir) => {
    await twoSnapshots(dir);
    mkdirSync(`${dir}/x.tmp`);
    writeFileSync(`${dir}/x.tmp/y`, '');
    await assert.rejects(SnapshotStore.open(dir), (e: unknown) => {
      assert.ok(isStorageError(e, 'SYNOD_STORAGE_IO'), String(e));
      assert.equal(e.file, `${dir}/x.tmp`);
      assert.match(e.message, /is a directory where a regular file is expected/);
      return true;
    });
  });
});
