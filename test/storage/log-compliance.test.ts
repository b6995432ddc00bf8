import { logCompliance } from './compliance.js';
import { FileLog } from '../../src/storage/file-log.js';
import { MemoryLog } from '../../src/storage/memory-log.js';
import { PmemLog } from '../../src/storage/pmem-log.js';
import { tryLoadNative } from '../../src/storage/native.js';
import { test } from 'node:test';
import { existsSync } from 'node:fs';

logCompliance({ name: 'file', open: (dir, options) => FileLog.open(dir, options) });
logCompliance({ name: 'memory', open: (dir, options) => MemoryLog.open(dir, options) });
const native = tryLoadNative();
if (native.addon) {
  logCompliance({ name: 'pmem', open: (dir, options) => PmemLog.open(dir, options), baseDir: existsSync('/dev/shm') ? '/dev/shm' : undefined });
} else {
  test('pmem log compliance', { skip: `pmem backend unavailable: ${native.reason}` }, () => {});
}
