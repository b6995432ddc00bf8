// A flush of several write groups (past groupBytesMax) writes and fdatasyncs each group before the
// next, so that a power loss can tear only the log's last group. In one write, a power loss could
// keep group k+1 and lose group k, and recovery must refuse that as corruption although nothing in
// either group was acknowledged: a replica that cannot restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileLog } from '../../src/storage/file-log.js';
import { nodeIo, type StorageIo } from '../../src/storage/io.js';
import { inTempDir, makeRecord } from './compliance.js';

for (const path of ['native', 'io'] as const) {
  test(`a flush of several groups syncs each one before writing the next (${path === 'native' ? 'the ordered native writer when built' : 'the JS write path'})`, async () => {
    // An injected io (the JS path) that records the order of writes and syncs.
    const events: Array<[number, 'write' | 'sync']> = [];
    const io: StorageIo = {
      ...nodeIo,
      writev: (fd, buffers, position) => (events.push([fd, 'write']), nodeIo.writev(fd, buffers, position)),
      fdatasync: (fd) => (events.push([fd, 'sync']), nodeIo.fdatasync(fd)),
    };
    await inTempDir(async (dir) => {
      const log = await FileLog.open(dir, { segmentBytes: 1 << 20, groupBytesMax: 4096, ...(path === 'io' ? { io } : {}) });
      events.length = 0;
      const before = log.stats().syncs;
      for (let i = 1; i <= 20; i++) log.tentativelyAppend(makeRecord(i, 1000)); // ~20 KiB: 5+ groups of at most 4 KiB
      await log.commit();
      const syncs = log.stats().syncs - before;
      assert.ok(syncs >= 5, `one sync per group: ${syncs}`);
      // The next segment is prepared in the background (its zero-fill is written, then synced):
      // read the order once the log is closed, so that no file is caught between a write and its sync.
      await log.close();
      if (path === 'io') {
        // On each file (the segment's, and the next segment being prepared in the background),
        // every write is followed by its sync before the next write to that file.
        const byFd = new Map<number, string[]>();
        for (const [fd, e] of events) byFd.set(fd, [...(byFd.get(fd) ?? []), e]);
        for (const [fd, seq] of byFd) {
          for (let i = 0; i < seq.length; i += 2) assert.deepEqual(seq.slice(i, i + 2), ['write', 'sync'], `fd ${fd}: ${seq.join(' ')}`);
        }
        assert.ok([...byFd.values()].some((seq) => seq.length >= 10), 'the groups went to one file, each with its sync');
      }
      const again = await FileLog.open(dir, { segmentBytes: 1 << 20, groupBytesMax: 4096 });
      assert.equal(again.recovery.tailLsn, 21, 'every record is there (tailLsn: the next LSN)');
      await again.close();
    });
  });
}
