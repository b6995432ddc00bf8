// The KV table growing from empty, one thread: N inserts of 16-byte keys and 64-byte values into
// a ByteTable as the KV machine makes it (warmClones), a clone taken every 100,000 inserts and the
// previous one released (as snapshots do). Prints wall and CPU time, minor page faults, RSS, and
// every insert that took over --slow-ms (the table's growth stalls: its hash index, its entry
// fields, its lists of ids). Run the built script of two checkouts alternately to compare them.
//
//   npm run bench:table-growth -- [--inserts 2000000] [--slow-ms 2]
import { numberArg } from './args.js';
import { ByteTable } from '../src/kv/byte-table.js';

const inserts = numberArg('inserts', 2_000_000);
const slowMs = numberArg('slow-ms', 2);
const minorFaults = () => process.resourceUsage().minorPageFault;

const table = new ByteTable({ warmClones: true });
const key = new Uint8Array(16);
const value = new Uint8Array(64);
const view = new DataView(key.buffer);
let clone: ByteTable | null = null;
const slow: string[] = [];
const faults0 = minorFaults();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < inserts; i++) {
  view.setUint32(0, Math.imul(i, 0x9e3779b1) >>> 0); // spread over the key space, as random keys
  view.setUint32(4, i);
  const s = performance.now();
  table.set(key, 0, 16, value, 0, 64);
  const d = performance.now() - s;
  if (d > slowMs) slow.push(`${i.toLocaleString('en-US')}: ${d.toFixed(1)} ms`);
  if (i % 100_000 === 99_999) {
    clone?.releaseClone();
    clone = table.clone();
  }
}
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
if (table.size !== inserts) throw new Error(`the table holds ${table.size} keys, not ${inserts}`);
console.log(
  `${inserts.toLocaleString('en-US')} inserts: wall ${wallMs.toFixed(0)} ms, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, ` +
    `minor faults ${minorFaults() - faults0}, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
);
console.log(`inserts over ${slowMs} ms (${slow.length}): ${slow.join(', ') || 'none'}`);
