// Recovery of a damaged file log (findings of the storage review): damage that must be refused as
// corruption naming the real file and byte, never taken for the end of the log or a torn tail, and
// never "repaired" over acknowledged records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { FileLog } from '../../src/storage/file-log.js';
import { isStorageError, type StorageError } from '../../src/storage/errors.js';
import { nodeIo } from '../../src/storage/io.js';
import { DATA_START, GROUP_HEADER_BYTES, decodeGroupHeader, segmentFileName } from '../../src/storage/format.js';
import type { LogOptions } from '../../src/storage/log.js';
import { makeRecord, tempDir } from './compliance.js';

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
  const { dir, cleanup } = tempDir();
  try {
    const acked = await buildLog(dir, 60); // seg-1: groups 1..38, seg-2: 22 groups from lsn 191
    const groups = groupsOf(segPath(dir, 2));
    const lost = groups[7]!; // lsn 226
    assert.equal(lost.firstLsn, 226);
    zeroHeader(segPath(dir, 2), lost.offset);
    assert.equal(acked, 300);
    await refusesCorrupt(dir, segPath(dir, 2), lost.offset, new RegExp(`zero group header .*a valid group of this segment follows at byte ${groups[8]!.offset}`));
  } finally {
    cleanup();
  }
});

test('a zeroed group header in the middle of an earlier segment is named where it is, not where the next segment starts', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await buildLog(dir, 60);
    const lost = groupsOf(segPath(dir, 1))[20]!; // lsn 101, seg-2 holds several groups
    zeroHeader(segPath(dir, 1), lost.offset);
    await refusesCorrupt(dir, segPath(dir, 1), lost.offset, /zero group header.*follows at byte/);
  } finally {
    cleanup();
  }
});
