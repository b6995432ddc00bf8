// The test-only hooks of `synod start` (src/cli/test-hooks.ts): inert without SYNOD_TEST_HOOKS=1;
// with it, a planted bug is validated and passed on, and the disk fault control file makes nodeIo
// fail writes (ENOSPC) or syncs only (EIO).

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { installTestHooks } from '../../src/cli/test-hooks.js';
import { diskFaultHookInstalled, nodeIo, setDiskFaultHook } from '../../src/storage/io.js';

const silent = pino({ level: 'silent' });

test('test hooks are ignored without SYNOD_TEST_HOOKS=1', () => {
  const hooks = installTestHooks({ SYNOD_PLANTED_BUG: 'reply-before-persist', SYNOD_TEST_DISK_FAULT: '/nonexistent' }, silent);
  assert.deepEqual(hooks, {});
  assert.equal(diskFaultHookInstalled(), false);
});

test('a planted bug must be one the core knows', () => {
  assert.throws(() => installTestHooks({ SYNOD_TEST_HOOKS: '1', SYNOD_PLANTED_BUG: 'no-such-bug' }, silent), /SYNOD_PLANTED_BUG must be one of/);
  assert.deepEqual(installTestHooks({ SYNOD_TEST_HOOKS: '1', SYNOD_PLANTED_BUG: 'reply-before-persist' }, silent), { plantedBug: 'reply-before-persist' });
});

test('the disk fault control file: ENOSPC fails writes and syncs, EIO only syncs, empty clears', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-hooks-'));
  const control = join(dir, 'fault');
  const fd = await nodeIo.open(join(dir, 'data'), 'w');
  const poll = () => new Promise((r) => setTimeout(r, 150)); // the hook polls every 50 ms
  try {
    installTestHooks({ SYNOD_TEST_HOOKS: '1', SYNOD_TEST_DISK_FAULT: control }, silent);
    assert.equal(diskFaultHookInstalled(), true);
    const bytes = new Uint8Array([1, 2, 3]);
    assert.equal(await nodeIo.write(fd, bytes, 0), 3);
    await nodeIo.fdatasync(fd);

    await writeFile(control, 'ENOSPC');
    await poll();
    await assert.rejects(nodeIo.write(fd, bytes, 3), { code: 'ENOSPC' });
    await assert.rejects(nodeIo.writev(fd, [bytes], 3), { code: 'ENOSPC' });
    await assert.rejects(nodeIo.fdatasync(fd), { code: 'ENOSPC' });
    assert.equal(await nodeIo.fstatSize(fd), 3, 'nothing was written');

    await writeFile(control, 'EIO\n');
    await poll();
    assert.equal(await nodeIo.write(fd, bytes, 3), 3, 'the write reaches the page cache');
    await assert.rejects(nodeIo.fdatasync(fd), { code: 'EIO' });
    await assert.rejects(nodeIo.fsync(fd), { code: 'EIO' });

    await writeFile(control, '');
    await poll();
    await nodeIo.fdatasync(fd);
  } finally {
    setDiskFaultHook(null);
    await nodeIo.close(fd);
    await rm(dir, { recursive: true, force: true });
  }
});
