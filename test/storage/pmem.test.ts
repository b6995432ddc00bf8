// pmem-specific rules: the persisted tail pointer decides torn vs corrupt; a clear error where the addon is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PmemLog } from '../../src/storage/pmem-log.js';
import { tryLoadNative } from '../../src/storage/native.js';
import { isStorageError } from '../../src/storage/errors.js';
import { segmentFileName } from '../../src/storage/format.js';
import { makeRecord, tempDir } from './compliance.js';

const available = tryLoadNative().addon !== null;
const base = existsSync('/dev/shm') ? '/dev/shm' : undefined;
const SMALL = { segmentBytes: 256 * 1024 };

function poke(path: string, offset: number, bytes: number[]): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

test('pmem: damage before the persisted tail is corruption; bytes past it are a torn tail', { skip: !available && 'addon unavailable' }, async () => {
  for (const flush of ['auto', 'cacheline'] as const) {
    const { dir, cleanup } = tempDir(base);
    try {
      const log = await PmemLog.open(dir, { ...SMALL, pmemFlush: flush });
      for (let i = 1; i <= 40; i++) {
        log.tentativelyAppend(makeRecord(i, 100));
        if (i % 10 === 0) await log.commit();
      }
      const end = log.headTailCapacity().usedBytes + 128;
      await log.close();
      const path = `${dir}/${segmentFileName(1)}`;
      // Garbage past the tail pointer (a group written but never covered by the tail): torn, dropped.
      poke(path, end, [1, 2, 3, 4, 5, 6, 7, 8]);
      const again = await PmemLog.open(dir, SMALL);
      assert.equal(again.recovery.tailLsn, 41);
      assert.ok(again.recovery.tornTail);
      await again.close();
      // A flipped byte in the middle: corruption naming file and offset.
      poke(path, 128 + 32 + 40, [0xff]);
      await assert.rejects(PmemLog.open(dir, SMALL), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT') && e.file === path && /before the persisted tail/.test(e.message));
    } finally {
      cleanup();
    }
  }
});

test('--log-backend pmem without the addon says why it is unavailable', () => {
  const logModule = fileURLToPath(new URL('../../src/storage/log.js', import.meta.url));
  const { dir, cleanup } = tempDir();
  try {
    const script = `import(${JSON.stringify(logModule)}).then((m) => m.openLog(${JSON.stringify(dir)}, 'pmem')).then(() => console.log('opened'), (e) => console.log(e.code, e.message))`;
    const out = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, SYNOD_NO_NATIVE: '1' }, encoding: 'utf8' });
    assert.match(out.stdout, /SYNOD_STORAGE_UNAVAILABLE pmem backend unavailable: disabled by SYNOD_NO_NATIVE=1\. Use --log-backend file/);
  } finally {
    cleanup();
  }
});
