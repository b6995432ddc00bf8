// Recovery of a damaged file log (findings of the storage review): damage that must be refused as
// corruption naming the real file and byte, never taken for the end of the log or a torn tail, and
// never "repaired" over acknowledged records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { FileLog } from '../../src/storage/file-log.js';
import { isStorageError, type StorageError } from '../../src/storage/errors.js';
import { nodeIo } from '../../src/storage/io.js';
import { encodeHead } from '../../src/storage/head-file.js';
import { DATA_START, GROUP_HEADER_BYTES, chainRecordCrc, decodeGroupHeader, encodeGroupHeader, encodeRecord, segmentFileName } from '../../src/storage/format.js';
import type { LogOptions } from '../../src/storage/log.js';
import { inTempDir, makeRecord } from './compliance.js';

const SMALL: LogOptions = { segmentBytes: 64 * 1024, spareSegmentsMax: 1 };
// Building the logs: no syncs (recovery reads what the page cache holds), so each test stays well under a second.
const FAST: LogOptions = { ...SMALL, io: { ...nodeIo, fdatasync: async () => {}, fsync: async () => {} } };

const segPath = (dir: string, index: number) => `${dir}/${segmentFileName(index)}`;

/** `groups` commits of `perGroup` records of 300 bytes (5 make a group of 1712 bytes: 38 fill a 64 KiB segment). */
async function buildLog(dir: string, groups: number, perGroup = 5, head?: number): Promise<number> {
  const log = await FileLog.open(dir, FAST);
  let lsn = 0;
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < perGroup; i++) log.tentativelyAppend(makeRecord(++lsn, 300, lsn));
    await log.commit();
  }
  if (head !== undefined) await log.advanceHead(head);
  await log.close();
  return lsn;
}

interface GroupAt {
  offset: number;
  firstLsn: number;
  count: number;
}

/** The groups of a segment file, read from its headers (before any damage). */
function groupsOf(path: string): GroupAt[] {
  const bytes = new Uint8Array(readFileSync(path));
  const out: GroupAt[] = [];
  for (let at = DATA_START; at + GROUP_HEADER_BYTES <= bytes.length; ) {
    const h = decodeGroupHeader(bytes, at);
    if (typeof h === 'string') break;
    out.push({ offset: at, firstLsn: h.firstLsn, count: h.recordCount });
    at += GROUP_HEADER_BYTES + h.bodyBytes;
  }
  return out;
}

function overwrite(path: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

const zeroHeader = (path: string, offset: number) => overwrite(path, offset, new Uint8Array(GROUP_HEADER_BYTES));

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((name) => [name, readFileSync(`${dir}/${name}`)]));
}

/**
 * open() must refuse with SYNOD_STORAGE_CORRUPT naming `file` at `offset` (the reason matching `reason`),
 * and leave every file as it was: nothing repaired, renamed or freed.
 */
async function refusesCorrupt(dir: string, file: string, offset: number, reason: RegExp): Promise<StorageError> {
  const before = filesOf(dir);
  let caught: unknown = null;
  try {
    const log = await FileLog.open(dir, SMALL);
    await log.close();
  } catch (error) {
    caught = error;
  }
  assert.ok(isStorageError(caught, 'SYNOD_STORAGE_CORRUPT'), `expected SYNOD_STORAGE_CORRUPT, got ${caught === null ? 'a successful open' : String(caught)}`);
  const error = caught as StorageError;
  assert.equal(error.file, file);
  assert.equal(error.offset, offset);
  assert.match(error.message, new RegExp(`corrupt log data in ${file} at byte ${offset}: `));
  assert.match(error.reason ?? '', reason);
  assert.deepEqual(filesOf(dir), before, 'the refused open changed no file');
  return error;
}

test('a zeroed group header in the middle of the last segment is corruption, not the end of the log', async () => {
  await inTempDir(async (dir) => {
    const acked = await buildLog(dir, 60); // seg-1: groups 1..38, seg-2: 22 groups from lsn 191
    const groups = groupsOf(segPath(dir, 2));
    const lost = groups[7]!; // lsn 226
    assert.equal(lost.firstLsn, 226);
    zeroHeader(segPath(dir, 2), lost.offset);
    assert.equal(acked, 300);
    await refusesCorrupt(dir, segPath(dir, 2), lost.offset, new RegExp(`zero group header .*a valid group of this segment follows at byte ${groups[8]!.offset}`));
  });
});

test('a zeroed group header in the middle of an earlier segment is named where it is, not where the next segment starts', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60);
    const lost = groupsOf(segPath(dir, 1))[20]!; // lsn 101, seg-2 holds several groups
    zeroHeader(segPath(dir, 1), lost.offset);
    await refusesCorrupt(dir, segPath(dir, 1), lost.offset, /zero group header.*follows at byte/);
  });
});

test('a whole group header with an unexpected lsn is never a torn tail: no terminator is written over acknowledged groups', async () => {
  // The last group of seg-1 reads back as zeros and seg-2 holds one group: seg-2's header is whole and of
  // this pass, so the records in between are missing, not torn. (It was "repaired" by a terminator at seg-2:128.)
  {
    await inTempDir(async (dir) => {
      await buildLog(dir, 39); // seg-1: 38 groups (lsn 1..190), seg-2: one group (lsn 191..195)
      assert.deepEqual(groupsOf(segPath(dir, 2)).map((g) => g.firstLsn), [191]);
      const lost = groupsOf(segPath(dir, 1)).at(-1)!;
      assert.equal(lost.firstLsn, 186);
      zeroHeader(segPath(dir, 1), lost.offset);
      await refusesCorrupt(dir, segPath(dir, 1), lost.offset, /stop here at lsn 186 .*\/seg-0000000002\.log starts at lsn 191: records 186\.\.190 are missing/);
    });
  }
  // A misdirected write: the last group of the log overwritten by a copy of an earlier group of the same
  // segment (whole, valid, of this epoch, at the wrong lsn). It was cut off as a torn tail.
  {
    await inTempDir(async (dir) => {
      await buildLog(dir, 45);
      const groups = groupsOf(segPath(dir, 2));
      const last = groups.at(-1)!;
      const bytes = readFileSync(segPath(dir, 2));
      overwrite(segPath(dir, 2), last.offset, bytes.subarray(groups[1]!.offset, groups[2]!.offset));
      await refusesCorrupt(dir, segPath(dir, 2), last.offset, /group starts at lsn 196, expected 221: a whole group header of this segment, not a torn write/);
    });
  }
});

/** One commit of `count` records of `size` bytes: 32 x 2000 B make one group that fills a 64 KiB segment. */
async function appendGroups(dir: string, groups: { count: number; size: number }[], head?: number): Promise<number> {
  const log = await FileLog.open(dir, FAST);
  let lsn = log.headTailCapacity().tail - 1;
  for (const g of groups) {
    for (let i = 0; i < g.count; i++) log.tentativelyAppend(makeRecord(++lsn, g.size, lsn));
    await log.commit();
  }
  if (head !== undefined) await log.advanceHead(head);
  await log.close();
  return lsn;
}

test('without a head file the log starts at lsn 1: a first segment that reads as empty is corruption, and nothing is freed', async () => {
  // seg-1 holds one group (lsn 1..32) whose header reads back as zeros; seg-2 holds lsn 33..: seg-1 was
  // taken as empty, the log started at 33 (read(1): COMPACTED) and seg-1 was renamed to a spare.
  {
    await inTempDir(async (dir) => {
      await appendGroups(dir, [{ count: 32, size: 2000 }, ...Array(5).fill({ count: 5, size: 300 })]);
      assert.deepEqual(groupsOf(segPath(dir, 1)).map((g) => g.firstLsn), [1]);
      assert.equal(groupsOf(segPath(dir, 2))[0]!.firstLsn, 33);
      zeroHeader(segPath(dir, 1), DATA_START);
      await refusesCorrupt(dir, segPath(dir, 1), DATA_START, /stop here at lsn 1 .*\/seg-0000000002\.log starts at lsn 33: records 1\.\.32 are missing/);
    });
  }
  // The same with many groups in seg-1 (the review's repro): named at seg-1:128.
  {
    await inTempDir(async (dir) => {
      await buildLog(dir, 75);
      zeroHeader(segPath(dir, 1), DATA_START);
      await refusesCorrupt(dir, segPath(dir, 1), DATA_START, /zero group header/);
    });
  }
});

test('an empty segment followed by a non-empty one is corruption, even below the head: it is not freed', async () => {
  await inTempDir(async (dir) => {
    // seg-1: lsn 1..190 (freed by the head), seg-2: one group 191..222, seg-3: 223..
    await appendGroups(dir, [...Array(38).fill({ count: 5, size: 300 }), { count: 32, size: 2000 }, ...Array(3).fill({ count: 5, size: 300 })], 200);
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('seg-'))[0], segmentFileName(2), 'seg-1 was freed');
    assert.deepEqual(groupsOf(segPath(dir, 2)).map((g) => g.firstLsn), [191]);
    // The head advanced to 225 and the crash came before seg-2 was freed; then seg-2's only group header was lost.
    writeFileSync(`${dir}/log.head`, encodeHead({ headLsn: 225, ballotFloor: 0 }));
    zeroHeader(segPath(dir, 2), DATA_START);
    await refusesCorrupt(dir, segPath(dir, 2), DATA_START, /segment holds no group, but the later .*\/seg-0000000003\.log does \(from lsn 223\)/);
  });
});

test('a head file with no segment file left is refused (was an empty log at the head, seg-1 rebuilt from a stale spare)', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60, 5, 250); // seg-1 freed to spare-0.log, log.head = 250
    assert.ok(readdirSync(dir).includes('spare-0.log'));
    for (const name of readdirSync(dir)) if (name.startsWith('seg-')) unlinkSync(`${dir}/${name}`);
    await refusesCorrupt(dir, `${dir}/log.head`, 12, /the head file says the log starts at lsn 250, but no segment file \(seg-\*\.log\) is left/);
    // Without the head file too, the spare alone still says the log existed.
    unlinkSync(`${dir}/log.head`);
    await refusesCorrupt(dir, `${dir}/spare-0.log`, 0, /a spare segment exists but no segment file .* and no log\.head/);
  });
  // A head file and only empty segments (the one holding the records lost, the prepared one left): the same.
  await inTempDir(async (dir2) => {
    await (await FileLog.open(dir2, FAST)).close();
    writeFileSync(`${dir2}/log.head`, encodeHead({ headLsn: 250, ballotFloor: 7 }));
    await refusesCorrupt(dir2, `${dir2}/log.head`, 12, /the head file says the log starts at lsn 250, but no segment holds a record/);
  });
});

test('a segment prepared from a spare starts with a terminator: the spare\'s stale groups are never at its first group', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60, 5, 250); // seg-1 -> spare-0.log; seg-3 prepared (new file)
    const stale = readFileSync(`${dir}/spare-0.log`).subarray(DATA_START, DATA_START + GROUP_HEADER_BYTES);
    assert.ok(stale.some((b) => b !== 0), 'the spare holds seg-1\'s groups');
    // Roll into seg-3: seg-4 is prepared ahead, from the spare.
    await appendGroups(dir, Array(25).fill({ count: 5, size: 300 }));
    assert.ok(!readdirSync(dir).includes('spare-0.log'), 'the spare was used');
    const seg4 = readFileSync(segPath(dir, 4));
    assert.deepEqual([...seg4.subarray(DATA_START, DATA_START + GROUP_HEADER_BYTES)], new Array(GROUP_HEADER_BYTES).fill(0));
    const log = await FileLog.open(dir, SMALL);
    assert.equal(log.recovery.tailLsn, 426);
    await log.close();
  });
});

test('log.head missing after the head advanced is refused naming log.head (its ballot floor would be lost)', async () => {
  await inTempDir(async (dir) => {
    // lsn 1: a promise of ballot 1000, freed with seg-1 when the head advances; only log.head keeps it.
    const log = await FileLog.open(dir, FAST);
    log.tentativelyAppend({ type: 2, slot: 0, ballot: 1000, payload: new Uint8Array(0) });
    await log.commit();
    await log.close();
    await appendGroups(dir, Array(60).fill({ count: 5, size: 300 }), 250);
    const reopened = await FileLog.open(dir, SMALL);
    assert.equal(reopened.highestBallot(), 1000);
    await reopened.close();
    unlinkSync(`${dir}/log.head`);
    await refusesCorrupt(dir, `${dir}/log.head`, 0, /log\.head is missing, but the log starts at seg-0000000002\.log: the head advanced/);
  });
  // seg-1 whose first group starts above lsn 1 (as the old recovery left it when every segment was lost
  // but log.head was kept: seg-1 rebuilt, appends from the head), then log.head lost too.
  await inTempDir(async (dir2) => {
    await (await FileLog.open(dir2, FAST)).close();
    const group = new Uint8Array(GROUP_HEADER_BYTES + 64);
    const size = encodeRecord(makeRecord(250, 20), 250, group, GROUP_HEADER_BYTES);
    encodeGroupHeader({ epoch: 1, bodyBytes: size, recordCount: 1, recordsCrc: chainRecordCrc(0, group, GROUP_HEADER_BYTES), firstLsn: 250 }, group, 0);
    overwrite(segPath(dir2, 1), DATA_START, group.subarray(0, GROUP_HEADER_BYTES + size));
    await refusesCorrupt(dir2, `${dir2}/log.head`, 0, /log\.head is missing, but the log starts at lsn 250 \(.*seg-0000000001\.log\)/);
  });
});

test('a refused open writes nothing: a torn-tail repair waits for the head checks', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60, 5, 301); // the head at the tail: lsn 296..300 (the last group) is acknowledged
    const last = groupsOf(segPath(dir, 2)).at(-1)!;
    assert.equal(last.firstLsn, 296);
    // Damage in its records reads as a torn last group; the head file says it was there.
    overwrite(segPath(dir, 2), last.offset + GROUP_HEADER_BYTES + 100, new Uint8Array(200).fill(0x5a));
    await refusesCorrupt(dir, `${dir}/log.head`, 12, /head lsn 301 is beyond the log's tail 296/);
  });
});

/** open() must fail with SYNOD_STORAGE_IO naming `file`, with advice for a file (not the device's). */
async function refusesFile(dir: string, file: string, code: string, options: LogOptions = SMALL): Promise<void> {
  await assert.rejects(FileLog.open(dir, options), (e: unknown) => {
    assert.ok(isStorageError(e, 'SYNOD_STORAGE_IO'), String(e));
    assert.equal(e.file, file);
    assert.match(e.message, new RegExp(`on ${file} failed \\(${code}\\)`));
    assert.match(e.message, code === 'EISDIR' ? /is a directory where a regular file is expected/ : /permission denied: .* \(check owner and mode\)/);
    assert.doesNotMatch(e.message, /dmesg/);
    return true;
  });
}

test('a log file that is a directory or not accessible: the error names that file and says it is not the device', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60, 5, 100);
    const backup = readFileSync(segPath(dir, 2));
    rmSync(segPath(dir, 2));
    mkdirSync(segPath(dir, 2));
    await refusesFile(dir, segPath(dir, 2), 'EISDIR');
    rmdirSync(segPath(dir, 2));
    writeFileSync(segPath(dir, 2), backup);

    const head = readFileSync(`${dir}/log.head`);
    rmSync(`${dir}/log.head`);
    mkdirSync(`${dir}/log.head`);
    await refusesFile(dir, `${dir}/log.head`, 'EISDIR');
    rmdirSync(`${dir}/log.head`);
    writeFileSync(`${dir}/log.head`, head);

    mkdirSync(`${dir}/junk.tmp`);
    writeFileSync(`${dir}/junk.tmp/x`, 'x');
    await refusesFile(dir, `${dir}/junk.tmp`, 'EISDIR');
    rmSync(`${dir}/junk.tmp`, { recursive: true });

    // Permissions (injected: the tests may run as root, which opens anything).
    const denied = (path: string): LogOptions => ({
      ...SMALL,
      io: {
        ...nodeIo,
        open: (p, flags, mode) => (p === path ? Promise.reject(Object.assign(new Error(`EACCES: permission denied, open '${p}'`), { code: 'EACCES' })) : nodeIo.open(p, flags, mode)),
      },
    });
    await refusesFile(dir, segPath(dir, 3), 'EACCES', denied(segPath(dir, 3)));
    await refusesFile(dir, `${dir}/log.head`, 'EACCES', denied(`${dir}/log.head`));

    const log = await FileLog.open(dir, SMALL);
    assert.equal(log.recovery.tailLsn, 301, 'the files put back open as before');
    await log.close();
  });
});

test('a spare-N.log that is a directory is refused at open, naming it (it broke the next roll and left a prep-N.tmp directory)', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60);
    mkdirSync(`${dir}/spare-7.log`);
    await refusesFile(dir, `${dir}/spare-7.log`, 'EISDIR');
    rmdirSync(`${dir}/spare-7.log`);
    const log = await FileLog.open(dir, SMALL);
    assert.equal(log.recovery.tailLsn, 301);
    await log.close();
  });
});

test('a spare that cannot be opened at a roll stays a spare: no prep-N.tmp is left behind', async () => {
  await inTempDir(async (dir) => {
    await buildLog(dir, 60, 5, 250); // spare-0.log; seg-3 prepared
    let opens = 0;
    const log = await FileLog.open(dir, {
      ...FAST,
      io: {
        ...FAST.io!,
        // The open-time check passes; the roll's open of the spare (under either name) fails.
        open: (p, flags, mode) => ((p.endsWith('spare-0.log') && ++opens > 1) || p.endsWith('prep-4.tmp') ? Promise.reject(Object.assign(new Error('EACCES'), { code: 'EACCES' })) : nodeIo.open(p, flags, mode)),
      },
    });
    let lsn = 300;
    let failure: unknown = null;
    for (let g = 0; g < 100 && failure === null; g++) {
      for (let i = 0; i < 5; i++) log.tentativelyAppend(makeRecord(++lsn, 300, lsn));
      await log.commit().catch((e: unknown) => (failure = e));
    }
    await log.close();
    assert.ok(isStorageError(failure, 'SYNOD_STORAGE_IO') && failure.file === `${dir}/spare-0.log`, String(failure));
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
    assert.ok(readdirSync(dir).includes('spare-0.log'));
    const again = await FileLog.open(dir, SMALL);
    assert.ok(again.recovery.tailLsn > 400);
    await again.close();
  });
});
