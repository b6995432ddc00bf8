// npm run bench:storage [-- --ci] [-- --recovery] [-- --only file] [-- --size 1024] [-- --runs N]
// Durable appends/s and MB/s for 64 B, 1 KiB and 64 KiB records on each log backend, beside the raw
// ceiling of the same disk measured in the same run (a bare write + fdatasync loop of the same bytes per
// sync as the log's groups, overwriting a preallocated file). Median of RUNS runs.
// /dev/shm (tmpfs) figures measure the persist path only: msync/fdatasync on tmpfs makes nothing durable.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openLog, type LogBackend } from '../src/storage/log.js';
import type { FileLogOptions } from '../src/storage/file-log.js';
import { tryLoadNative } from '../src/storage/native.js';
import { rawSyncLoop } from './raw-sync.js';

const CI = process.argv.includes('--ci');
const RECOVERY = process.argv.includes('--recovery') || (!CI && !process.argv.includes('--no-recovery') && !process.argv.includes('--only'));
const SECONDS = CI ? 0.4 : 2;
function argValue(name: string): string | null {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : null;
}
const RUNS = Number(argValue('--runs') ?? (CI ? 1 : 3));
const ONLY = argValue('--only'); // a case name prefix: file, pmem, memory
const SIZES = argValue('--size') ? [Number(argValue('--size'))] : [64, 1024, 65536];
const SEGMENT_BYTES = 64 * 1024 * 1024;
const BATCH_BYTES = 4 * 1024 * 1024;
const WARMUP_SEGMENTS = CI ? 1 : 5;
const RECOVERY_BYTES = CI ? 64 * 1024 * 1024 : 1024 * 1024 * 1024;

interface Result { appendsPerSec: number; mbPerSec: number; bytesPerSync: number; loopDelayMaxMs: number }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function runLog(base: string, backend: LogBackend, size: number, extra: FileLogOptions = {}): Promise<Result> {
  const dir = mkdtempSync(join(base, 'synod-bench-'));
  try {
    const log = await openLog(dir, backend, { segmentBytes: SEGMENT_BYTES, spareSegmentsMax: 4, ...extra } as FileLogOptions);
    const payload = new Uint8Array(size).fill(0xab);
    const record = { type: 1, slot: 0, ballot: 1, payload };
    const perBatch = Math.max(1, Math.floor(BATCH_BYTES / (size + 32)));
    // A replica snapshots and advances the head: keep ~2 segments so freed ones are recycled.
    const keepRecords = Math.floor((2 * SEGMENT_BYTES) / (size + 32));
    // Warm up to the steady state, outside the measurement (as the raw ceiling's file is preallocated
    // outside it): write WARMUP_SEGMENTS segments, so the first ones were zero-filled, freed below the head
    // and recycled as spares; from then on a roll reuses a spare and writes nothing but its header.
    let warm = 0;
    while (warm * (size + 32) < WARMUP_SEGMENTS * SEGMENT_BYTES) {
      for (let i = 0; i < perBatch; i++, warm++) log.tentativelyAppend(record);
      await log.commit();
      const htc = log.headTailCapacity();
      if (htc.usedBytes > 3 * SEGMENT_BYTES) await log.advanceHead(htc.tail - keepRecords);
    }
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const before = log.stats();
    let inflight: Promise<number>[] = [];
    let appended = 0;
    // As the runtime does (replica.ts), the head advances in the background: appends do not wait for it.
    let advancing: Promise<void> | null = null;
    const started = performance.now();
    while (performance.now() - started < SECONDS * 1000) {
      for (let i = 0; i < perBatch; i++) {
        record.slot = appended++;
        log.tentativelyAppend(record);
      }
      inflight.push(log.commit());
      if (inflight.length >= 2) {
        await inflight.shift();
      }
      const htc = log.headTailCapacity();
      if (advancing === null && htc.usedBytes > 3 * SEGMENT_BYTES) {
        advancing = log.advanceHead(htc.tail - keepRecords).finally(() => (advancing = null));
      }
    }
    await Promise.all(inflight);
    await advancing;
    const seconds = (performance.now() - started) / 1000;
    histogram.disable();
    const after = log.stats();
    await log.close();
    return {
      appendsPerSec: appended / seconds,
      mbPerSec: (appended * size) / seconds / 1e6,
      bytesPerSync: (after.bytesWritten - before.bytesWritten) / Math.max(1, after.syncs - before.syncs),
      loopDelayMaxMs: histogram.max / 1e6,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function rawCeiling(base: string, bytesPerSync: number): number {
  const run = rawSyncLoop(base, Math.max(4096, Math.round(bytesPerSync / 4096) * 4096), SECONDS, 256 * 1024 * 1024);
  return run.bytes / (run.elapsedMs / 1000) / 1e6;
}

/**
 * Before each measured run: the previous run deleted hundreds of MiB of files, and with the `discard`
 * mount option (as here) the device is still busy discarding them; let it finish, so that neither the log
 * nor the raw loop pays for the other's cleanup.
 */
async function settle(): Promise<void> {
  try {
    execSync('sync', { stdio: 'ignore' });
  } catch {
    /* no sync binary: the pause alone */
  }
  await new Promise((resolve) => setTimeout(resolve, CI ? 100 : 1000));
}

async function recoveryTime(base: string): Promise<{ gib: number; ms: number; records: number }> {
  const dir = mkdtempSync(join(base, 'synod-recovery-'));
  try {
    const log = await openLog(dir, 'file', { segmentBytes: SEGMENT_BYTES });
    const record = { type: 1, slot: 0, ballot: 1, payload: new Uint8Array(65536 - 32).fill(7) };
    const count = Math.floor(RECOVERY_BYTES / 65536);
    for (let i = 0; i < count; i++) {
      record.slot = i;
      log.tentativelyAppend(record);
      if (i % 64 === 63) await log.commit();
    }
    await log.commit();
    await log.close();
    try {
      execSync('sync; echo 1 > /proc/sys/vm/drop_caches', { stdio: 'ignore' });
    } catch {
      /* not permitted: the figure is then for a warm page cache */
    }
    const again = await openLog(dir, 'file', { segmentBytes: SEGMENT_BYTES, onRecord: () => {} });
    const result = { gib: RECOVERY_BYTES / 2 ** 30, ms: again.recovery.durationMs, records: again.recovery.recordsFound };
    await again.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const diskBase = process.env['SYNOD_BENCH_DIR'] ?? tmpdir();
  const shm = existsSync('/dev/shm') ? '/dev/shm' : null;
  const native = tryLoadNative();
  let fsLine = '';
  try {
    fsLine = execSync(`df -T ${diskBase} | tail -1`, { encoding: 'utf8' }).trim().split(/\s+/).slice(0, 2).join(' ');
  } catch {
    fsLine = 'unknown';
  }
  console.log(`# synod storage bench: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}, disk dir ${diskBase} (${fsLine})`);
  console.log(`# ${RUNS} run(s) of ${SECONDS}s each, median; CRC32C: ${native.addon ? 'SSE4.2 (addon)' : 'pure TS'}; pmem: ${native.addon ? 'available' : native.reason}`);
  const rows: string[] = [];
  const cases: { name: string; base: string; backend: LogBackend; extra?: FileLogOptions }[] = [{ name: 'file', base: diskBase, backend: 'file' }];
  if (native.addon && shm) {
    cases.push({ name: 'pmem msync (/dev/shm)', base: shm, backend: 'pmem', extra: { pmemFlush: 'msync' } });
    cases.push({ name: 'pmem clwb+sfence (/dev/shm)', base: shm, backend: 'pmem', extra: { pmemFlush: 'cacheline' } });
  }
  cases.push({ name: 'memory', base: tmpdir(), backend: 'memory' });
  for (const c of cases) {
    if (ONLY !== null && !c.name.startsWith(ONLY)) continue;
    for (const size of SIZES) {
      // Each log run is followed at once by a raw run with its bytes per sync: on a shared, noisy machine
      // the disk's speed drifts over seconds, so the share of raw is taken per pair, then the median.
      const results: Result[] = [];
      const raws: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        await settle();
        const result = await runLog(c.base, c.backend, size, c.extra);
        results.push(result);
        if (c.backend === 'memory') continue;
        await settle();
        raws.push(rawCeiling(c.base, result.bytesPerSync));
      }
      const appends = median(results.map((x) => x.appendsPerSec));
      const mb = median(results.map((x) => x.mbPerSec));
      const perSync = median(results.map((x) => x.bytesPerSync));
      let ceiling = '';
      if (c.backend !== 'memory') {
        const raw = median(raws);
        const share = median(results.map((x, r) => x.mbPerSec / raws[r]!));
        const pairs = RUNS > 1 ? ` [${results.map((x, r) => `${x.mbPerSec.toFixed(0)}/${raws[r]!.toFixed(0)}`).join(' ')}]` : '';
        ceiling = `raw write+fdatasync ${raw.toFixed(0)} MB/s at ${(perSync / 1024).toFixed(0)} KiB/sync -> ${(share * 100).toFixed(0)}% (payload, median of per-run shares)${pairs}`;
      }
      const line = `${c.name.padEnd(28)} ${String(size).padStart(6)} B  ${Math.round(appends).toLocaleString('en-US').padStart(11)} appends/s  ${mb.toFixed(1).padStart(7)} MB/s  ${ceiling}`;
      console.log(line);
      rows.push(line);
    }
  }
  if (RECOVERY) {
    const rec = await recoveryTime(diskBase);
    console.log(`recovery (file, open + full scan + CRC check) of ${rec.gib.toFixed(2)} GiB, ${rec.records} records of 64 KiB: ${rec.ms.toFixed(0)} ms`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
