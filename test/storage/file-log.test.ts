// File-log specific tests: torn tails, bit flips at random offsets, full disk and EIO (injected), fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, readSync, readdirSync, statSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FileLog } from '../../src/storage/file-log.js';
import { isStorageError } from '../../src/storage/errors.js';
import { mkdirDurable, nodeIo, orderedWriterOf, setDiskFaultHook, type DiskFaultMode, type StorageIo } from '../../src/storage/io.js';
import { tryLoadNative } from '../../src/storage/native.js';
import { segmentFileName } from '../../src/storage/format.js';
import type { LogRecord } from '../../src/storage/log.js';
import { inTempDir, makeRecord, tempDir } from './compliance.js';
import { BULK_STEP_BYTES, type PacerClock } from '../../src/storage/pacer.js';

const SMALL = { segmentBytes: 64 * 1024, spareSegmentsMax: 1 };

function patch(path: string, offset: number, mutate: (byte: number) => number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] = mutate(b[0]!) & 0xff;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

/** Builds a log of `groups` commits; returns the records and where the last group starts. */
async function buildLog(dir: string, groups: number, perGroup: number) {
  const log = await FileLog.open(dir, SMALL);
  const records: LogRecord[] = [];
  let lastGroup = { segment: '', offset: 0, firstLsn: 0 };
  for (let g = 0; g < groups; g++) {
    const segments = (log as unknown as { segments: { path: string; durableEnd: number; capacity: number }[] }).segments;
    const tail = segments[segments.length - 1]!;
    lastGroup = { segment: tail.path, offset: tail.durableEnd, firstLsn: records.length + 1 };
    for (let i = 0; i < perGroup; i++) {
      const r = makeRecord(records.length + 1, 50 + ((g * 31 + i * 17) % 700));
      records.push(r);
      log.tentativelyAppend(r);
    }
    await log.commit();
  }
  // The last group may have rolled into a new segment.
  const segments = (log as unknown as { segments: { path: string; firstLsn: number | null }[] }).segments;
  const last = segments[segments.length - 1]!;
  if (last.firstLsn === lastGroup.firstLsn) lastGroup = { segment: last.path, offset: 128, firstLsn: lastGroup.firstLsn };
  await log.close();
  return { records, lastGroup };
}

async function readAll(log: FileLog): Promise<(LogRecord & { lsn: number })[]> {
  const out: (LogRecord & { lsn: number })[] = [];
  let next = log.headTailCapacity().head;
  for (;;) {
    const batch = await log.read(next, { recordsMax: 500 });
    if (batch.length === 0) return out;
    out.push(...batch);
    next = batch[batch.length - 1]!.lsn + 1;
  }
}

test('a torn last group is cut off; everything before it survives; appends continue after it', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const { records, lastGroup } = await buildLog(dir, 12, 9);
    // Tear the last group: garbage over its second half.
    const size = statSync(lastGroup.segment).size;
    for (let at = lastGroup.offset + 200; at < Math.min(lastGroup.offset + 600, size); at++) patch(lastGroup.segment, at, (b) => b ^ 0x5a);
    const log = await FileLog.open(dir, SMALL);
    assert.ok(log.recovery.tornTail, 'torn tail reported');
    assert.equal(log.recovery.tornTail!.file, lastGroup.segment);
    assert.equal(log.recovery.tornTail!.offset, lastGroup.offset);
    assert.equal(log.recovery.tailLsn, lastGroup.firstLsn);
    const all = await readAll(log);
    assert.equal(all.length, lastGroup.firstLsn - 1);
    all.forEach((r) => assert.deepEqual(r.payload, records[r.lsn - 1]!.payload));
    log.tentativelyAppend(makeRecord(lastGroup.firstLsn, 3));
    await log.commit();
    await log.close();
    const again = await FileLog.open(dir, SMALL);
    assert.equal(again.recovery.tornTail, null);
    assert.equal(again.recovery.tailLsn, lastGroup.firstLsn + 1);
    await again.close();
  } finally {
    cleanup();
  }
});

test('bit flips at random offsets: corruption before the last group stops recovery naming file and offset; nothing wrong is ever returned', async () => {
  let seed = 99;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const { dir: pristine, cleanup: cleanPristine } = tempDir();
  const { records, lastGroup } = await buildLog(pristine, 30, 7);
  const files = readdirSync(pristine).filter((n) => n.startsWith('seg-'));
  let corrupt = 0;
  let torn = 0;
  try {
    for (let trial = 0; trial < 60; trial++) {
      const { dir, cleanup } = tempDir();
      try {
        cpSync(pristine, dir, { recursive: true });
        const name = files[Math.floor(random() * files.length)]!;
        const path = `${dir}/${name}`;
        // Flip inside the written part of the segment (header included).
        const probe = await FileLog.open(pristine, SMALL);
        const seg = (probe as unknown as { segments: { path: string; durableEnd: number }[] }).segments.find((s) => s.path.endsWith(name));
        await probe.close();
        const end = seg ? seg.durableEnd : 128;
        const offset = Math.floor(random() * end);
        patch(path, offset, (b) => b ^ (1 << Math.floor(random() * 8)));
        const inLastGroup = `${pristine}/${name}` === lastGroup.segment && offset >= lastGroup.offset;
        try {
          const log = await FileLog.open(dir, SMALL);
          // Accepted only as a torn tail inside the last group.
          assert.ok(inLastGroup, `flip at ${name}:${offset} went unnoticed`);
          assert.ok(log.recovery.tornTail);
          const all = await readAll(log);
          assert.equal(all.length, lastGroup.firstLsn - 1);
          all.forEach((r) => assert.deepEqual(r.payload, records[r.lsn - 1]!.payload));
          await log.close();
          torn++;
        } catch (error) {
          if (!isStorageError(error, 'SYNOD_STORAGE_CORRUPT')) throw error;
          assert.ok(!inLastGroup || offset < 128, `flip in the last group at ${offset} should be a torn tail`);
          assert.equal(error.file, path);
          assert.ok(error.offset !== null && error.offset <= offset, `reported offset ${error.offset} after the flip at ${offset}`);
          assert.match(error.message, new RegExp(`corrupt log data in ${path} at byte ${error.offset}`));
          corrupt++;
        }
      } finally {
        cleanup();
      }
    }
    assert.ok(corrupt > 20, `expected many corruptions, got ${corrupt} (torn ${torn})`);
  } finally {
    cleanPristine();
  }
});

test('a missing middle segment is corruption, not a silent gap', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await buildLog(dir, 30, 7);
    const { unlinkSync } = await import('node:fs');
    unlinkSync(`${dir}/${segmentFileName(2)}`);
    await assert.rejects(FileLog.open(dir, SMALL), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_CORRUPT') && /missing/.test((e as Error).message));
  } finally {
    cleanup();
  }
});

/** An io that fails with `code` once `budget` bytes have been written (writev/write), or on fdatasync. */
function faultyIo(options: { writeBudget?: number; failSync?: boolean; code: string }): StorageIo {
  let written = 0;
  const fail = (op: string) => Object.assign(new Error(`${options.code}: injected on ${op}`), { code: options.code });
  return {
    ...nodeIo,
    async writev(fd, buffers, position) {
      let n = 0;
      for (const b of buffers) n += b.length;
      if (options.writeBudget !== undefined && written + n > options.writeBudget) throw fail('writev');
      written += n;
      return nodeIo.writev(fd, buffers, position);
    },
    async write(fd, buffer, position) {
      if (options.writeBudget !== undefined && written + buffer.length > options.writeBudget) throw fail('write');
      written += buffer.length;
      return nodeIo.write(fd, buffer, position);
    },
    async fdatasync(fd) {
      if (options.failSync) throw fail('fdatasync');
      return nodeIo.fdatasync(fd);
    },
  };
}

/**
 * After a storage failure: the error is the expected one and says what to do, something had been
 * acknowledged, the log stays failed (no further acknowledgements), and a reopen recovers every
 * acknowledged record (900-byte payloads) intact.
 */
async function assertStoppedLosingNothing(log: FileLog, dir: string, error: unknown, expect: 'SYNOD_STORAGE_IO' | 'SYNOD_STORAGE_NO_SPACE', acked: number): Promise<void> {
  assert.ok(isStorageError(error, expect), `expected ${expect}, got ${String(error)}`);
  assert.match((error as Error).message, expect === 'SYNOD_STORAGE_NO_SPACE' ? /no space left.*free space/ : /I\/O error.*stops voting/);
  assert.ok(acked > 0);
  assert.throws(() => log.tentativelyAppend(makeRecord(99_999)), (e: unknown) => isStorageError(e, expect));
  await assert.rejects(log.commit(), (e: unknown) => isStorageError(e, expect));
  await log.close();
  const again = await FileLog.open(dir, SMALL);
  assert.ok(again.recovery.tailLsn - 1 >= acked, `acked ${acked}, recovered ${again.recovery.tailLsn - 1}`);
  const all = await readAll(again);
  for (const r of all) assert.deepEqual(r.payload, makeRecord(r.lsn, 900).payload);
  await again.close();
}

for (const scenario of [
  { name: 'a full disk (ENOSPC)', code: 'ENOSPC', expect: 'SYNOD_STORAGE_NO_SPACE' as const, sync: false },
  { name: 'EIO from fdatasync', code: 'EIO', expect: 'SYNOD_STORAGE_IO' as const, sync: true },
]) {
  test(`${scenario.name} gives a clear error, stops the log, and loses nothing acknowledged`, async () => {
    const { dir, cleanup } = tempDir();
    try {
      // Open normally (creates and preallocates), then fail after a budget of bytes.
      const first = await FileLog.open(dir, SMALL);
      await first.close();
      const io = scenario.sync ? faultyIo({ failSync: false, code: scenario.code }) : faultyIo({ writeBudget: 300 * 1024, code: scenario.code });
      let failSync = false;
      const log = await FileLog.open(dir, { ...SMALL, io: { ...io, fdatasync: (fd) => (failSync ? Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) : io.fdatasync(fd)) } });
      let acked = 0;
      let error: unknown = null;
      for (let i = 1; i <= 2000 && error === null; i++) {
        log.tentativelyAppend(makeRecord(i, 900));
        if (scenario.sync && i === 40) failSync = true;
        try {
          acked = await log.commit();
        } catch (e) {
          error = e;
        }
      }
      await assertStoppedLosingNothing(log, dir, error, scenario.expect, acked);
    } finally {
      cleanup();
    }
  });
}

/**
 * Appends and commits `perRound` records at a time without waiting between them (several writer
 * jobs queued at once), round after round until a commit fails or `rounds` ran: the highest LSN
 * acknowledged, and the first failure.
 */
async function commitInRounds(log: FileLog, o: { rounds: number; perRound: number; beforeRound?: (round: number) => void }): Promise<{ acked: number; error: unknown }> {
  let acked = 0;
  let error: unknown = null;
  for (let round = 0; round < o.rounds && error === null; round++) {
    o.beforeRound?.(round);
    const commits: Promise<number>[] = [];
    for (let k = 0; k < o.perRound; k++) {
      log.tentativelyAppend(makeRecord(round * o.perRound + k + 1, 900));
      commits.push(log.commit());
    }
    for (const c of await Promise.allSettled(commits)) {
      if (c.status === 'fulfilled') acked = Math.max(acked, c.value);
      else error ??= c.reason;
    }
  }
  return { acked, error };
}

/**
 * The log's own io, with the native addon's ordered writer (orderedWriterOf) over a disk whose
 * fdatasync fails with EIO from the writer's `failFrom`th job on, as a dying disk's would.
 */
function orderedWriterIo(failFrom: number): StorageIo & { jobs: () => number } {
  let jobs = 0;
  const dying: StorageIo = {
    ...nodeIo,
    fdatasync: (fd) => (++jobs >= failFrom ? Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', syscall: 'fdatasync' })) : nodeIo.fdatasync(fd)),
  };
  return { ...nodeIo, jobs: () => jobs, orderedWriter: () => orderedWriterOf(dying) };
}

test('the pipelined (native) write path: EIO from a job\'s fdatasync stops the log with a clear error, with jobs in flight, and loses nothing acknowledged', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const first = await FileLog.open(dir, SMALL);
    await first.close();
    const io = orderedWriterIo(25);
    const log = await FileLog.open(dir, { ...SMALL, io });
    // Commits issued 8 at a time without waiting, so that several jobs are queued when one fails.
    const { acked, error } = await commitInRounds(log, { rounds: 200, perRound: 8 });
    assert.ok(io.jobs() >= 25, `${io.jobs()} jobs ran`);
    await assertStoppedLosingNothing(log, dir, error, 'SYNOD_STORAGE_IO', acked);
  } finally {
    cleanup();
  }
});

test('format version 1 fixture (checked in) still loads', async () => {
  const fixture = fileURLToPath(new URL('../../../test/storage/fixtures/log-v1', import.meta.url));
  const { dir, cleanup } = tempDir();
  try {
    cpSync(fixture, dir, { recursive: true });
    const log = await FileLog.open(dir, SMALL);
    assert.equal(log.recovery.headLsn, 11);
    assert.equal(log.recovery.tailLsn, 121);
    assert.equal(log.highestBallot(), 7 * 1024 + 3);
    const all = await readAll(log);
    assert.equal(all.length, 110);
    for (const r of all) {
      const expected = makeRecord(r.lsn, (r.lsn * 29) % 1200, r.lsn < 60 ? 1024 + 3 : 7 * 1024 + 3);
      assert.deepEqual({ ...r, lsn: 0 }, { ...expected, lsn: 0 });
    }
    await log.close();
  } finally {
    cleanup();
  }
});

test('a new segment is zero-filled a step (256 KiB) at a time, each flushed before the next: a roll never queues a whole segment of dirty bytes ahead of the log fdatasync', async () => {
  const { dir, cleanup } = tempDir();
  const unsynced = new Map<number, number>(); // fd -> bytes written since its last fdatasync
  let worst = 0;
  const count = (fd: number, n: number) => {
    const now = (unsynced.get(fd) ?? 0) + n;
    unsynced.set(fd, now);
    worst = Math.max(worst, now);
  };
  const io: StorageIo = {
    ...nodeIo,
    async writev(fd, buffers, position) {
      for (const b of buffers) count(fd, b.length);
      return nodeIo.writev(fd, buffers, position);
    },
    async write(fd, buffer, position) {
      count(fd, buffer.length);
      return nodeIo.write(fd, buffer, position);
    },
    async fdatasync(fd) {
      await nodeIo.fdatasync(fd);
      unsynced.set(fd, 0);
    },
  };
  const segmentBytes = 4 * 1024 * 1024;
  const log = await FileLog.open(dir, { segmentBytes, spareSegmentsMax: 1, io });
  for (let i = 1; i <= 4; i++) log.tentativelyAppend(makeRecord(i, 100));
  await log.commit();
  await log.close();
  cleanup();
  assert.ok(unsynced.size >= 2, 'the log wrote at least one segment file');
  assert.ok(worst <= BULK_STEP_BYTES + 64 * 1024, `at most ~256 KiB unflushed on any file at once, saw ${worst} bytes`);
});

/** A pacer clock that counts rests and makes each one last `restMs` of real time (whatever was asked). */
function countingClock(restMs: number) {
  const rests: number[] = [];
  const clock: PacerClock = {
    now: () => performance.now(),
    sleep: (ms) => {
      rests.push(ms);
      return new Promise((resolve) => setTimeout(resolve, restMs));
    },
  };
  return { clock, rests };
}

test('a segment prepared ahead is zero-filled in paced steps (a rest after each), the one open() waits for is not', async () => {
  const { dir, cleanup } = tempDir();
  const { clock, rests } = countingClock(1);
  const segmentBytes = 4 * 1024 * 1024; // 16 steps
  const log = await FileLog.open(dir, { segmentBytes, spareSegmentsMax: 1, pacerClock: clock });
  try {
    assert.equal(rests.length, 0, 'segment 1 (open() waits for it) did not rest');
    for (let i = 0; i < 200 && rests.length < segmentBytes / BULK_STEP_BYTES; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(rests.length, segmentBytes / BULK_STEP_BYTES, 'segment 2, prepared ahead, rested after each of its steps');
    assert.ok(rests.every((ms) => ms > 0 && ms <= 20), `each rest as long as its step, at most 20 ms: ${rests.join(', ')}`);
  } finally {
    await log.close();
    cleanup();
  }
});

test('a roll that needs the segment being prepared, or a close, stops its rests: nothing waits for a paced fill', async () => {
  for (const how of ['roll', 'close'] as const) {
    const { dir, cleanup } = tempDir();
    // Rests of 300 ms: a 4 MiB fill would take ~5 s with all of them; urgent, it takes one at most.
    const { clock, rests } = countingClock(300);
    const log = await FileLog.open(dir, { segmentBytes: 4 * 1024 * 1024, spareSegmentsMax: 1, pacerClock: clock });
    try {
      const started = performance.now();
      if (how === 'roll') {
        // ~4.4 MiB of records right away: the log rolls into segment 2 while it is still being filled.
        for (let i = 1; i <= 70; i++) log.tentativelyAppend(makeRecord(i, 64 * 1024));
        await log.commit();
        const segments = (log as unknown as { segments: unknown[] }).segments;
        assert.ok(segments.length >= 2, 'the log rolled');
      } else {
        await log.close();
      }
      const ms = performance.now() - started;
      assert.ok(rests.length <= 2, `${how}: at most the rest under way when it started (and one racing it), saw ${rests.length}`);
      assert.ok(ms < 2_500, `${how}: done in ${ms.toFixed(0)} ms, not after the fill's rests`);
    } finally {
      await log.close();
      cleanup();
    }
  }
});

test('a segment prepared before a restart with another segmentBytes is prepared again at the new size: no write past a segment\'s capacity (storage simulator seed 309)', async () => {
  await inTempDir(async (dir) => {
    // Life 1: 64 KiB segments; close() leaves the segment prepared ahead (empty) on disk.
    const first = await FileLog.open(dir, { segmentBytes: 64 * 1024, spareSegmentsMax: 1 });
    const records: LogRecord[] = [];
    for (let i = 1; i <= 10; i++) records.push(makeRecord(i, 3_000));
    for (const r of records) first.tentativelyAppend(r);
    await first.commit();
    await first.close();
    // Life 2: 128 KiB segments; appended before one commit (as a busy leader does), enough records
    // to fill the first segment and 100 KiB of the next, which is the one prepared in life 1.
    const second = await FileLog.open(dir, { segmentBytes: 128 * 1024, spareSegmentsMax: 1 });
    for (let i = 11; i <= 60; i++) {
      const r = makeRecord(i, 3_000);
      records.push(r);
      second.tentativelyAppend(r);
    }
    await second.commit();
    await second.close();
    // Every segment file is as large as its header says, and everything reads back.
    const third = await FileLog.open(dir, { segmentBytes: 128 * 1024 });
    const back = await readAll(third);
    assert.equal(back.length, records.length);
    back.forEach((r, i) => assert.deepEqual(r.payload, records[i]!.payload));
    await third.close();
  });
});

test('head moves that overlap (the runtime does not await them) run one after the other: no shared temp file, segments freed lowest first (storage simulator seed 1147)', async () => {
  await inTempDir(async (dir) => {
    const log = await FileLog.open(dir, SMALL);
    for (let i = 1; i <= 120; i++) log.tentativelyAppend(makeRecord(i, 2_000));
    await log.commit();
    const segments = () => (log as unknown as { segments: { index: number }[] }).segments.map((s) => s.index);
    assert.ok(segments().length >= 4, `several segments: ${segments().join(',')}`);
    // Two compactions in a row, neither awaited, as the runtime's compactBelow issues them.
    await Promise.all([log.advanceHead(40), log.advanceHead(100), log.advanceHead(70)]);
    assert.equal(log.headTailCapacity().head, 100);
    await log.close();
    const again = await FileLog.open(dir, SMALL);
    assert.equal(again.headTailCapacity().head, 100);
    assert.equal((await readAll(again)).length, 21);
    await again.close();
  });
});

test('mkdirDurable fsyncs each directory that gained a name (a new directory is lost with its parent\'s unsynced names), and nothing when all were there', async () => {
  await inTempDir(async (dir) => {
    const synced: string[] = [];
    const dirFds = new Map<number, string>();
    const io: StorageIo = {
      ...nodeIo,
      async open(path, flags, mode) {
        const fd = await nodeIo.open(path, flags, mode);
        dirFds.set(fd, path);
        return fd;
      },
      async fsync(fd) {
        const path = dirFds.get(fd);
        if (path !== undefined && statSync(path).isDirectory()) synced.push(path);
        return nodeIo.fsync(fd);
      },
    };
    await mkdirDurable(io, `${dir}/a/b/c`);
    assert.deepEqual(synced, [dir, `${dir}/a`, `${dir}/a/b`]);
    synced.length = 0;
    await mkdirDurable(io, `${dir}/a/b/c`);
    assert.deepEqual(synced, [], 'nothing created, nothing synced');
    await mkdirDurable(io, `${dir}/a/b/d`);
    assert.deepEqual(synced, [`${dir}/a/b`]);
  });
});

// The black-box harness's disk faults (SYNOD_TEST_DISK_FAULT: the nodeIo hook) reach the native
// writer's pipelined path too (withDiskFaults). Until session 22 a replica with the hook installed
// wrote through the JS flush loop instead, so those faults never met the path production takes.
const nativeAddon = tryLoadNative().addon;
for (const scenario of [
  { mode: 'ENOSPC' as const, expect: 'SYNOD_STORAGE_NO_SPACE' as const },
  { mode: 'EIO' as const, expect: 'SYNOD_STORAGE_IO' as const },
]) {
  test(`the native writer under the test hook's ${scenario.mode}: a clear error, the log stops, nothing acknowledged lost`, { skip: typeof nativeAddon?.writeSync !== 'function' && 'no native addon' }, async () => {
    const { dir, cleanup } = tempDir();
    let mode: DiskFaultMode | null = null;
    setDiskFaultHook(() => mode);
    try {
      const log = await FileLog.open(dir, SMALL);
      assert.equal(log.writePath, 'native', 'the hook no longer turns the native writer off');
      const { acked, error } = await commitInRounds(log, { rounds: 100, perRound: 4, beforeRound: (round) => {
        if (round === 20) mode = scenario.mode;
      } });
      assert.ok(acked >= 80, `acknowledged before the fault: ${acked}`);
      mode = null;
      await assertStoppedLosingNothing(log, dir, error, scenario.expect, acked);
    } finally {
      setDiskFaultHook(null);
      cleanup();
    }
  });
}
