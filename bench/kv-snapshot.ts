// A KV snapshot's cost outside a cluster: serializing the machine (snapshotStream() drained), and
// saving it through the snapshot store into a new file or over the spare (recycle on / off,
// alternating which goes first). Between rounds, random PUTs change the values. Prints the medians:
// serialize ms; per store mode, wall ms and the process's user / system CPU ms per save.
//
//   npm run bench:kv-snapshot -- [--keys 100000] [--value 64] [--rounds 12] [--no-save]
//
// Run the built script of two checkouts alternately to compare them (BENCHMARKS.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numberArg } from './args.js';
import { KvMachine } from '../src/kv/machine.js';
import { encodeCommand } from '../src/kv/codec.js';
import { SnapshotStore } from '../src/storage/snapshot-store.js';
import { tryNativeCrc } from '../src/storage/native.js';

const keys = numberArg('keys', 100_000, 1);
const valueBytes = numberArg('value', 64);
const rounds = Math.max(3, numberArg('rounds', 12));
const save = !process.argv.includes('--no-save');
tryNativeCrc();

const value = new Uint8Array(valueBytes).fill(0x61);
const keyOf = (i: number) => new TextEncoder().encode(`key-${String(i).padStart(12, '0')}`); // 16 bytes
const commands = Array.from({ length: keys }, (_, i) => encodeCommand({ op: 'put', key: keyOf(i), value }));
const machine = new KvMachine();
for (const c of commands) machine.apply(c);
const context = { slot: 1, clientId: 1, seq: 1, timeMs: 0 };
let seed = 12345;
const randomKey = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return Math.floor((seed / 2 ** 32) * keys);
};

const dir = mkdtempSync(join(tmpdir(), 'synod-kv-snapshot-'));
const stores = {
  new: await SnapshotStore.open(join(dir, 'new'), { recycle: false }),
  recycle: await SnapshotStore.open(join(dir, 'recycle')),
};
type Mode = keyof typeof stores;
const serializeMs: number[] = [];
const saves: Record<Mode, { wall: number[]; user: number[]; system: number[] }> = {
  new: { wall: [], user: [], system: [] },
  recycle: { wall: [], user: [], system: [] },
};
let bytes = 0;
let slot = 1;
try {
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < keys; i++) machine.apply(commands[randomKey()]!, context);
    const t0 = performance.now();
    bytes = 0;
    for (const chunk of machine.snapshotStream()) bytes += chunk.length;
    const warm = r >= 2; // the first rounds fill the clone pool and the spare
    if (warm) serializeMs.push(performance.now() - t0);
    if (!save) continue;
    for (const mode of (r % 2 === 0 ? ['recycle', 'new'] : ['new', 'recycle']) as Mode[]) {
      const cpu = process.cpuUsage();
      const start = performance.now();
      const app = machine.snapshotStream();
      await stores[mode].save(slot++, new Uint8Array(0), (async function* () {
        for (const chunk of app) {
          if (chunk.length === 0) await new Promise<void>((resolve) => setImmediate(resolve)); // as the runtime does
          else yield chunk;
        }
      })());
      const used = process.cpuUsage(cpu);
      if (!warm) continue;
      saves[mode].wall.push(performance.now() - start);
      saves[mode].user.push(used.user / 1000);
      saves[mode].system.push(used.system / 1000);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(1);
console.log(`${keys} keys, ${(bytes / 1e6).toFixed(1)} MB snapshot, ${serializeMs.length} measured rounds (medians)`);
console.log(`serialize: ${median(serializeMs)} ms`);
if (save) {
  for (const mode of ['new', 'recycle'] as Mode[]) {
    const s = saves[mode];
    console.log(`save into ${mode === 'new' ? 'a new file' : 'the spare'}: ${median(s.wall)} ms wall, CPU ${median(s.user)} user + ${median(s.system)} system ms`);
  }
}
