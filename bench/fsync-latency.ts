// The disk's own write + fdatasync latency, for reading a benchmark's tail against it: writes
// --bytes (default 32 KiB) and fdatasyncs it in a loop for --seconds in --dir (default the OS's
// temp directory, where `synod bench` keeps its replicas' data), and prints the quantiles. Run it
// alone for the idle disk, or beside a `synod bench` to see what the disk does under that load.
//
//   npm run bench:fsync -- [--seconds 6] [--bytes 32768] [--dir /tmp]
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numberArg } from './args.js';

const seconds = numberArg('seconds', 6, 0.1);
const bytes = numberArg('bytes', 32 * 1024, 1);
const dirArg = process.argv.indexOf('--dir');
const base = dirArg >= 0 ? process.argv[dirArg + 1]! : tmpdir();
const dir = mkdtempSync(join(base, 'synod-fsync-'));
const fd = openSync(join(dir, 'probe'), 'w');
const block = Buffer.alloc(bytes, 0x5a);
const latencies: number[] = [];
try {
  const end = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const t = performance.now();
    writeSync(fd, block, 0, bytes, (i % 64) * bytes); // a 64-block ring: the file stays small
    fdatasyncSync(fd);
    latencies.push(performance.now() - t);
  }
} finally {
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
}
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(2);
console.log(
  `write ${bytes} B + fdatasync in ${base}, ${latencies.length.toLocaleString('en-US')} times in ${seconds} s: ` +
    `p50 ${q(0.5)} / p90 ${q(0.9)} / p99 ${q(0.99)} / p99.9 ${q(0.999)} / max ${latencies[latencies.length - 1]!.toFixed(2)} ms`,
);
