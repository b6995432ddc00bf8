// The addon's fast paths used by the file log: 3-way CRC32C, sealRecords (3 records at a time) and the
// ordered writer (write + fdatasync as one job, jobs strictly in order, > IOV_MAX buffers, sticky errors).
// Each is checked against the TypeScript reference or against the file's bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tryLoadNative } from '../../src/storage/native.js';
import { crc32c as crc32cJs } from '../../src/codec/crc32c.js';
import { encodeRecordUnsealed, sealRecords } from '../../src/storage/format.js';
import { FileLog } from '../../src/storage/file-log.js';
import { tempDir } from './compliance.js';

const addon = tryLoadNative().addon;
const skip = addon === null ? 'addon unavailable' : false;

let seed = 12345;
const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => (random() * 256) | 0);

test('native crc32c equals the TS one at every length class (3-way long/short blocks, tails, unaligned)', { skip }, () => {
  const bytes = randomBytes(3 * 8192 * 2 + 5000);
  const lengths = [0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1052, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 13, 2 * 3 * 8192 + 777];
  for (const length of lengths) {
    for (const start of [0, 1, 3, 4, 7]) {
      const previous = (random() * 2 ** 32) >>> 0;
      assert.equal(addon!.crc32c(bytes, previous, start, start + length), crc32cJs(bytes, previous, start, start + length), `length ${length} at ${start}`);
    }
  }
  for (let k = 0; k < 300; k++) {
    const start = (random() * 1000) | 0;
    const length = (random() * (bytes.length - start)) | 0;
    assert.equal(addon!.crc32c(bytes, 0, start, start + length), crc32cJs(bytes, 0, start, start + length));
  }
});

test('native sealRecords equals the TS encodeRecord + chain, for runs of 0..40 records of mixed sizes', { skip }, () => {
  const seal = addon!.sealRecords;
  if (typeof seal !== 'function') return;
  for (let run = 0; run < 200; run++) {
    const count = (random() * 41) | 0;
    const sameSize = random() < 0.3;
    const size = (random() * 1500) | 0;
    const target = new Uint8Array(count * (32 + 3008) + 64);
    const start = 8 * ((random() * 8) | 0);
    let at = start;
    for (let i = 0; i < count; i++) {
      const payload = randomBytes(sameSize ? size : (random() * 3000) | 0);
      at += encodeRecordUnsealed({ type: 1 + (i % 255), slot: (random() * 2 ** 40) | 0, ballot: i, payload }, 1 + i, target, at);
    }
    const reference = target.slice();
    const chain = (random() * 2 ** 32) >>> 0;
    // The TS reference: each record's CRC word, then the chain over the words.
    let wantChain = chain;
    const view = new DataView(reference.buffer);
    for (let p = start; p < at; ) {
      const length = view.getUint32(p + 4, true);
      const bytes = 32 + ((length + 7) & ~7);
      view.setUint32(p, crc32cJs(reference, 0, p + 4, p + bytes), true);
      wantChain = crc32cJs(reference, wantChain, p, p + 4);
      p += bytes;
    }
    const gotChain: number = seal.call(addon, target, start, at, chain);
    assert.equal(gotChain, wantChain, `run ${run}: chain`);
    assert.deepEqual(target, reference, `run ${run}: CRC words`);
    // The installed one (native when loaded) agrees too.
    const again = reference.slice();
    for (let p = start; p < at; p += 32 + ((new DataView(again.buffer).getUint32(p + 4, true) + 7) & ~7)) again.fill(0, p, p + 4);
    assert.equal(sealRecords(again, start, at, chain), wantChain);
    assert.deepEqual(again, reference);
  }
  assert.throws(() => seal.call(addon, new Uint8Array(64), 0, 40, 0), /runs past/);
});

test('ordered writer: jobs run in call order, > IOV_MAX buffers in one job, sticky failure', { skip }, async () => {
  if (typeof addon!.createWriter !== 'function' || typeof addon!.writeSync !== 'function') return;
  const { dir, cleanup } = tempDir();
  try {
    const path = `${dir}/f`;
    writeFileSync(path, new Uint8Array(0));
    const fd = openSync(path, 'r+');
    const writer = addon!.createWriter();
    // 2500 small buffers (IOV_MAX is 1024 on Linux) in one job.
    const buffers = Array.from({ length: 2500 }, (_, i) => new Uint8Array(1 + (i % 13)).fill(i & 0xff));
    const expected = new Uint8Array(buffers.reduce((n, b) => n + b.length, 0) + 100);
    let at = 100;
    for (const b of buffers) {
      expected.set(b, at);
      at += b.length;
    }
    await addon!.writeSync(writer, fd, buffers, 100, true);
    assert.deepEqual(new Uint8Array(readFileSync(path)), expected);
    // Twenty jobs over the same range, queued at once: the last one queued wins.
    const jobs: Promise<void>[] = [];
    for (let j = 0; j < 20; j++) jobs.push(addon!.writeSync(writer, fd, [new Uint8Array(4096).fill(j), new Uint8Array(0), new Uint8Array(10).fill(j)], 0, j % 2 === 0));
    await Promise.all(jobs);
    const after = new Uint8Array(readFileSync(path));
    assert.ok(after.subarray(0, 4106).every((b) => b === 19));
    closeSync(fd);
    // A failing job (closed fd): EBADF from pwritev; the next job on that writer writes nothing.
    await assert.rejects(addon!.writeSync(writer, fd, [new Uint8Array(8)], 0, true), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.syscall === 'pwritev');
    const fd2 = openSync(path, 'r+');
    await assert.rejects(addon!.writeSync(writer, fd2, [new Uint8Array(8).fill(0xee)], 0, true), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    closeSync(fd2);
    assert.equal(readFileSync(path)[0], 19);
    assert.throws(() => addon!.writeSync!(writer, 3, [new Uint8Array(1)], -1, true), /bad position/);
    assert.throws(() => addon!.writeSync!(writer, 3, [new Uint16Array(1) as unknown as Uint8Array], 0, true), /Uint8Array/);
  } finally {
    cleanup();
  }
});

test('file log on the native writer: many overlapping commits resolve in order and everything reads back', { skip }, async () => {
  const { dir, cleanup } = tempDir();
  try {
    const log = await FileLog.open(dir, { segmentBytes: 256 * 1024 });
    const payloads: Uint8Array[] = [];
    const resolved: number[] = [];
    const commits: Promise<void>[] = [];
    for (let round = 0; round < 60; round++) {
      const n = 1 + ((random() * 30) | 0);
      for (let i = 0; i < n; i++) {
        const payload = randomBytes((random() * 2000) | 0);
        payloads.push(payload);
        log.tentativelyAppend({ type: 1, slot: payloads.length, ballot: round, payload });
      }
      commits.push(log.commit().then((durable) => void resolved.push(durable)));
      if (round % 7 === 6) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(commits);
    assert.deepEqual(resolved, [...resolved].sort((a, b) => a - b));
    assert.equal(resolved[resolved.length - 1], payloads.length);
    assert.equal(log.highestBallot(), 59);
    await log.close();
    const again = await FileLog.open(dir, { segmentBytes: 256 * 1024 });
    assert.equal(again.recovery.tailLsn, payloads.length + 1);
    assert.equal(again.recovery.tornTail, null);
    let lsn = 1;
    while (lsn <= payloads.length) {
      const got = await again.read(lsn, { recordsMax: 500 });
      for (const r of got) assert.deepEqual(r.payload, payloads[r.lsn - 1]);
      lsn += got.length;
    }
    await again.close();
  } finally {
    cleanup();
  }
});
