// One compliance suite for every LogStore backend (file, pmem, memory): the same calls, the same answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogOptions, LogRecord, LogStore } from '../../src/storage/log.js';
import { isStorageError } from '../../src/storage/errors.js';

export interface LogFactory {
  name: string;
  open(dir: string, options?: LogOptions): Promise<LogStore>;
  /** Where the backend keeps files (memory: any unique string). */
  baseDir?: string;
}

export function tempDir(base = tmpdir(), prefix = 'synod-log-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `body` in a fresh temporary directory, removed afterwards whatever happens. */
export async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    await body(dir);
  } finally {
    cleanup();
  }
}

export function makeRecord(lsnHint: number, size = lsnHint % 97, ballot = 0): LogRecord {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (lsnHint * 31 + i * 7) & 0xff;
  return { type: 1 + (lsnHint % 3), slot: lsnHint, ballot, payload };
}

function sameRecord(actual: LogRecord & { lsn: number }, expected: LogRecord, lsn: number): void {
  assert.equal(actual.lsn, lsn);
  assert.equal(actual.type, expected.type, `type at lsn ${lsn}`);
  assert.equal(actual.slot, expected.slot, `slot at lsn ${lsn}`);
  assert.equal(actual.ballot, expected.ballot, `ballot at lsn ${lsn}`);
  assert.deepEqual(actual.payload, expected.payload, `payload at lsn ${lsn}`);
}

export function logCompliance(factory: LogFactory): void {
  const small: LogOptions = { segmentBytes: 64 * 1024, spareSegmentsMax: 1 };
  const withLog = (name: string, body: (dir: string) => Promise<void>) =>
    test(`${factory.name} log: ${name}`, async () => {
      const { dir, cleanup } = tempDir(factory.baseDir);
      try {
        await body(dir);
      } finally {
        cleanup();
      }
    });

  withLog('an empty log opens at head 1, tail 1', async (dir) => {
    const log = await factory.open(dir, small);
    assert.equal(log.recovery.headLsn, 1);
    assert.equal(log.recovery.tailLsn, 1);
    assert.equal(log.recovery.recordsFound, 0);
    assert.deepEqual(await log.read(1), []);
    const htc = log.headTailCapacity();
    assert.equal(htc.head, 1);
    assert.equal(htc.tail, 1);
    await log.close();
  });

  withLog('appends get consecutive LSNs; commit makes them durable and readable; reopen finds them', async (dir) => {
    const log = await factory.open(dir, small);
    const records = Array.from({ length: 50 }, (_, i) => makeRecord(i + 1, (i * 13) % 200, i));
    const lsns = records.map((r) => log.tentativelyAppend(r));
    assert.deepEqual(lsns, records.map((_, i) => i + 1));
    assert.equal(log.headTailCapacity().tail, 1, 'nothing durable before commit');
    assert.equal(log.headTailCapacity().appendedTail, 51);
    assert.equal(await log.commit(), 50);
    const read = await log.read(1);
    assert.equal(read.length, 50);
    read.forEach((r, i) => sameRecord(r, records[i]!, i + 1));
    assert.equal(log.highestBallot(), 49);
    await log.close();
    const seen: number[] = [];
    const again = await factory.open(dir, { ...small, onRecord: (r) => seen.push(r.lsn) });
    assert.equal(again.recovery.tailLsn, 51);
    assert.equal(again.recovery.recordsFound, 50);
    assert.deepEqual(seen, lsns);
    assert.equal(again.highestBallot(), 49);
    const back = await again.read(20, { recordsMax: 5 });
    assert.deepEqual(back.map((r) => r.lsn), [20, 21, 22, 23, 24]);
    back.forEach((r) => sameRecord(r, records[r.lsn - 1]!, r.lsn));
    assert.equal(again.tentativelyAppend(makeRecord(51)), 51);
    await again.commit();
    await again.close();
  });

  withLog('reads hand out copies: changing what a read returned does not change the log', async (dir) => {
    const log = await factory.open(dir, small);
    log.tentativelyAppend(makeRecord(1, 40));
    await log.commit();
    const [first] = await log.read(1);
    first!.payload.fill(0xee);
    sameRecord((await log.read(1))[0]!, makeRecord(1, 40), 1);
    await log.close();
  });

  withLog('uncommitted appends are gone after close/reopen', async (dir) => {
    const log = await factory.open(dir, small);
    log.tentativelyAppend(makeRecord(1));
    await log.commit();
    log.tentativelyAppend(makeRecord(2));
    log.tentativelyAppend(makeRecord(3));
    await log.close();
    const again = await factory.open(dir, small);
    assert.equal(again.recovery.tailLsn, 2);
    assert.equal(again.tentativelyAppend(makeRecord(2, 5)), 2);
    await again.commit();
    sameRecord((await again.read(2))[0]!, makeRecord(2, 5), 2);
    await again.close();
  });

  withLog('concurrent commits share flushes and resolve in order', async (dir) => {
    const log = await factory.open(dir, small);
    const order: number[] = [];
    const commits: Promise<number>[] = [];
    for (let i = 1; i <= 200; i++) {
      log.tentativelyAppend(makeRecord(i, 8));
      const target = i;
      commits.push(
        log.commit().then((durable) => {
          assert.ok(durable >= target, `commit for ${target} resolved at ${durable}`);
          order.push(target);
          return durable;
        }),
      );
    }
    await Promise.all(commits);
    assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i + 1));
    const stats = log.stats();
    assert.ok(stats.syncs < 200, `expected group commit, got ${stats.syncs} syncs for 200 commits`);
    assert.equal(stats.appends, 200);
    await log.close();
  });

  withLog('records roll over many segments and come back intact', async (dir) => {
    const log = await factory.open(dir, small);
    const records: LogRecord[] = [];
    for (let i = 1; i <= 400; i++) {
      const r = makeRecord(i, (i * 37) % 3000);
      records.push(r);
      log.tentativelyAppend(r);
      if (i % 7 === 0) await log.commit();
    }
    await log.commit();
    await log.close();
    const again = await factory.open(dir, small);
    assert.equal(again.recovery.tailLsn, 401);
    let next = 1;
    while (next <= 400) {
      const batch = await again.read(next, { recordsMax: 64 });
      assert.ok(batch.length > 0);
      for (const r of batch) sameRecord(r, records[r.lsn - 1]!, next++);
    }
    await again.close();
  });

  withLog('a record larger than a segment is refused with a clear error', async (dir) => {
    const log = await factory.open(dir, small);
    assert.throws(
      () => log.tentativelyAppend({ type: 1, slot: 1, ballot: 1, payload: new Uint8Array(70 * 1024) }),
      (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_MISUSE') && /exceeds the limit/.test((e as Error).message),
    );
    assert.throws(() => log.tentativelyAppend({ type: 0, slot: 1, ballot: 1, payload: new Uint8Array(1) }), /record type/);
    assert.throws(() => log.tentativelyAppend({ type: 1, slot: -1, ballot: 1, payload: new Uint8Array(1) }), /slot/);
    assert.throws(() => log.tentativelyAppend({ type: 1, slot: 1, ballot: 2 ** 53, payload: new Uint8Array(1) }), /ballot/);
    // A record that fills most of a segment fits.
    const big = { type: 1, slot: 1, ballot: 1, payload: new Uint8Array(60 * 1024).fill(9) };
    log.tentativelyAppend(big);
    await log.commit();
    sameRecord((await log.read(1))[0]!, big, 1);
    await log.close();
  });

  withLog('advanceHead frees the prefix, survives reopen, keeps the ballot floor', async (dir) => {
    const log = await factory.open(dir, small);
    for (let i = 1; i <= 300; i++) log.tentativelyAppend(makeRecord(i, 1000, i === 5 ? 777 : 1));
    await log.commit();
    const before = log.headTailCapacity();
    await log.advanceHead(250);
    const after = log.headTailCapacity();
    assert.equal(after.head, 250);
    assert.equal(after.tail, 301);
    assert.ok(after.usedBytes <= before.usedBytes);
    await assert.rejects(log.read(100), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_COMPACTED'));
    assert.equal((await log.read(250))[0]!.lsn, 250);
    await assert.rejects(log.advanceHead(10), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_MISUSE'));
    await assert.rejects(log.advanceHead(400), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_MISUSE'));
    await log.close();
    const seen: number[] = [];
    const again = await factory.open(dir, { ...small, onRecord: (r) => seen.push(r.lsn) });
    assert.equal(again.recovery.headLsn, 250);
    assert.equal(seen[0], 250);
    assert.equal(seen.length, 51);
    assert.equal(again.highestBallot(), 777, 'the ballot of a freed record survives as the floor');
    await again.advanceHead(301); // everything covered
    assert.equal(again.headTailCapacity().head, 301);
    again.tentativelyAppend(makeRecord(301));
    await again.commit();
    await again.close();
    const third = await factory.open(dir, small);
    assert.equal(third.recovery.headLsn, 301);
    assert.equal(third.recovery.tailLsn, 302);
    await third.close();
  });

  withLog('a closed log refuses appends and commits', async (dir) => {
    const log = await factory.open(dir, small);
    await log.close();
    assert.throws(() => log.tentativelyAppend(makeRecord(1)), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_MISUSE'));
    await assert.rejects(log.commit(), (e: unknown) => isStorageError(e, 'SYNOD_STORAGE_MISUSE'));
  });
}
