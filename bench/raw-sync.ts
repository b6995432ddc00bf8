// The disk's raw write + fdatasync loop: what the log benchmarks compare against (bench/storage.ts,
// its MB/s ceiling) and what bench/fsync-latency.ts reports the latency of. One loop, so that both
// measure the same thing: a preallocated file overwritten in a ring (no file growth, no metadata
// to sync beyond the data's own), one write of `bytesPerSync` bytes then one fdatasync per turn.
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface RawSyncRun {
  /** Each write + fdatasync's duration, in the order they ran (ms). */
  latenciesMs: number[];
  /** Bytes written and synced, and the wall time the loop took (ms). */
  bytes: number;
  elapsedMs: number;
}

/**
 * Runs the loop for `seconds` in a fresh directory under `base` (removed afterwards), over a file
 * of `fileBytes` (at least one block) written and synced once before the clock starts.
 */
export function rawSyncLoop(base: string, bytesPerSync: number, seconds: number, fileBytes: number): RawSyncRun {
  const dir = mkdtempSync(join(base, 'synod-raw-'));
  const fd = openSync(join(dir, 'raw'), 'w+');
  const blocks = Math.max(1, Math.floor(fileBytes / bytesPerSync));
  const block = Buffer.alloc(bytesPerSync, 0x5a);
  const latenciesMs: number[] = [];
  try {
    const zeros = Buffer.alloc(Math.min(4 * 1024 * 1024, blocks * bytesPerSync));
    for (let at = 0; at < blocks * bytesPerSync; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, blocks * bytesPerSync - at), at);
    fdatasyncSync(fd);
    const started = performance.now();
    const end = started + seconds * 1000;
    for (let i = 0; performance.now() < end; i++) {
      const t = performance.now();
      writeSync(fd, block, 0, bytesPerSync, (i % blocks) * bytesPerSync);
      fdatasyncSync(fd);
      latenciesMs.push(performance.now() - t);
    }
    return { latenciesMs, bytes: latenciesMs.length * bytesPerSync, elapsedMs: performance.now() - started };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}
