// Catch-up answered by the runtime below the core's log: the recent log in memory and the log on
// disk give the last record written for each slot (its chosen value), stop at a slot whose last
// record is not durable yet, and never answer past what they hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEntry } from '../../src/codec/values.js';
import type { Entry, Value } from '../../src/core/types.js';
import { openLog } from '../../src/storage/log.js';
import { readChosenEntries } from '../../src/runtime/log-catchup.js';
import { RecentLog, SLOT_OVERHEAD_BYTES } from '../../src/runtime/log-window.js';
import { RECORD_ENTRY } from '../../src/runtime/durable.js';

const batch = (tag: string): Value => ({ kind: 'batch', commands: [{ clientId: 7, seq: 1, floor: 1, payload: new TextEncoder().encode(tag) }], timeMs: 1 });
const tagOf = (e: Entry) => (e.value.kind === 'batch' ? new TextDecoder().decode(e.value.commands[0]!.payload) : e.value.kind);

test('readChosenEntries: the last record of each slot, from the durable log only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-logcatchup-'));
  const log = await openLog(join(dir, 'log'), 'file');
  try {
    const lsns: Array<[number, number]> = [];
    const append = (slot: number, ballot: number, tag: string) => {
      const lsn = log.tentativelyAppend({ type: RECORD_ENTRY, slot, ballot, payload: encodeEntry({ slot, ballot, value: batch(tag), chosen: false }) });
      lsns.push([lsn, slot]);
    };
    append(1, 1, 'one');
    append(2, 1, 'stale'); // accepted at ballot 1, then replaced by the chosen value at ballot 2
    append(3, 2, 'three');
    append(2, 2, 'two');
    append(4, 2, 'four');
    await log.commit();
    append(5, 2, 'five'); // appended, not durable
    const limits = { entriesMax: 100, bytesMax: 1 << 20 };
    const got = await readChosenEntries(log, lsns, 1, 5, limits);
    assert.deepEqual(got.map((e) => [e.slot, e.ballot, tagOf(e), e.chosen]), [
      [1, 1, 'one', true],
      [2, 2, 'two', true],
      [3, 2, 'three', true],
      [4, 2, 'four', true],
    ]);
    assert.deepEqual((await readChosenEntries(log, lsns, 2, 3, limits)).map(tagOf), ['two', 'three'], 'stops at lastSlot');
    assert.deepEqual((await readChosenEntries(log, lsns, 1, 5, { entriesMax: 2, bytesMax: 1 << 20 })).map(tagOf), ['one', 'two'], 'entriesMax');
    assert.deepEqual(await readChosenEntries(log, lsns, 5, 5, limits), [], 'the last record of slot 5 is not durable yet');
    await log.commit();
    assert.deepEqual((await readChosenEntries(log, lsns, 5, 5, limits)).map(tagOf), ['five']);
    assert.deepEqual(await readChosenEntries(log, lsns, 9, 12, limits), [], 'slots the log does not hold');
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('RecentLog: last record per slot, bounded by bytes over applied slots, forgets what the disk log released', () => {
  const recent = new RecentLog();
  const record = (slot: number, tag: string) => encodeEntry({ slot, ballot: 3, value: batch(tag), chosen: false });
  for (let slot = 1; slot <= 10; slot++) recent.appended(slot, record(slot, `v${slot}`));
  recent.appended(4, record(4, 'w4'));
  for (let slot = 1; slot <= 8; slot++) recent.applied(slot); // 9 and 10: accepted, not applied
  const perSlot = record(1, 'v1').length + SLOT_OVERHEAD_BYTES;
  assert.equal(recent.heldBytes, 8 * perSlot);
  assert.deepEqual(recent.entries(3, 8, 100, 1 << 20).map(tagOf), ['v3', 'w4', 'v5', 'v6', 'v7', 'v8']);
  assert.ok(recent.entries(3, 8, 100, 1 << 20).every((e) => e.chosen));
  assert.deepEqual(recent.entries(3, 8, 100, 1).map(tagOf), ['v3'], 'past the byte limit: the first entry only');
  recent.release(3 * perSlot); // keeps the newest applied slots holding 3 slots' worth
  assert.deepEqual(recent.entries(1, 8, 100, 1 << 20), [], 'slot 1 is gone');
  assert.deepEqual(recent.entries(6, 8, 100, 1 << 20).map(tagOf), ['v6', 'v7', 'v8']);
  assert.equal(recent.heldBytes, 3 * perSlot);
  assert.deepEqual(recent.entries(5, 8, 100, 1 << 20), [], 'slot 5 is gone');
  recent.releaseThrough(7);
  assert.deepEqual(recent.entries(8, 8, 100, 1 << 20).map(tagOf), ['v8']);
  assert.equal(recent.heldBytes, perSlot);
  recent.reset(9); // a snapshot of slot 9 installed
  assert.equal(recent.heldBytes, 0);
  assert.deepEqual(recent.entries(10, 10, 100, 1 << 20).map(tagOf), ['v10'], 'slots above the snapshot stay');
});

test('RecentLog keeps copies in reused chunks: the caller may reuse a record; replaced and released records free their room', () => {
  const recent = new RecentLog(4096);
  const record = (slot: number, tag: string) => encodeEntry({ slot, ballot: 3, value: batch(tag), chosen: false });
  for (let slot = 1; slot <= 20_000; slot++) {
    const bytes = record(slot, `v${slot}`);
    recent.appended(slot, bytes);
    bytes.fill(0); // the runtime's record is the log's to reuse once appended
    if (slot % 3 === 0) recent.appended(slot, record(slot, `w${slot}`)); // a later ballot's record replaces it
    recent.applied(slot);
    recent.release(2048);
  }
  assert.deepEqual(recent.entries(19_998, 20_000, 100, 1 << 20).map(tagOf), ['w19998', 'v19999', 'v20000']);
  assert.ok(recent.arenaBytes <= 4 * 4096, `${recent.arenaBytes} bytes of chunks for ~2 KiB of records`);
  recent.reset(20_000);
  assert.ok(recent.arenaBytes <= 3 * 4096, 'after a snapshot: the current chunk and spares only');
});
