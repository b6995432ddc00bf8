// The disk's own write + fdatasync latency, for reading a benchmark's tail against it: writes
// --bytes (default 32 KiB) and fdatasyncs it in a loop for --seconds in --dir (default the OS's
// temp directory, where `synod bench` keeps its replicas' data), and prints the quantiles. The
// loop is bench/storage.ts's raw ceiling (bench/raw-sync.ts), over a file of 64 blocks. Run it
// alone for the idle disk, or beside a `synod bench` to see what the disk does under that load.
//
//   npm run bench:fsync -- [--seconds 6] [--bytes 32768] [--dir /tmp]
import { tmpdir } from 'node:os';
import { numberArg } from './args.js';
import { rawSyncLoop } from './raw-sync.js';

const seconds = numberArg('seconds', 6, 0.1);
const bytes = numberArg('bytes', 32 * 1024, 1);
const dirArg = process.argv.indexOf('--dir');
const base = dirArg >= 0 ? process.argv[dirArg + 1]! : tmpdir();
const latencies = rawSyncLoop(base, bytes, seconds, 64 * bytes).latenciesMs.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(2);
console.log(
  `write ${bytes} B + fdatasync in ${base}, ${latencies.length.toLocaleString('en-US')} times in ${seconds} s: ` +
    `p50 ${q(0.5)} / p90 ${q(0.9)} / p99 ${q(0.99)} / p99.9 ${q(0.999)} / max ${latencies[latencies.length - 1]!.toFixed(2)} ms`,
);
