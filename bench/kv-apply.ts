// The KV state machine's apply path alone, as a replica drives it: slots of B PUTs of random keys
// over a key space of K keys (beforeBatch, prefetch if the machine has it, apply per command),
// with E MiB of unrelated memory touched between slots (what the other processes and the rest of
// the replica do to the caches between two slots; 0 for a hot-cache figure). Prints nanoseconds
// per applied command, per round and the median.
//
//   npm run bench:kv-apply -- [--keys 100000] [--batch 300] [--value 64] [--evict-mib 16] [--rounds 7] [--no-prefetch]
//
// Run the built script of two checkouts alternately to compare them (BENCHMARKS.md).
import { numberArg } from './args.js';
import { KvMachine } from '../src/kv/machine.js';
import { encodeCommand } from '../src/kv/codec.js';
import type { StateMachine } from '../src/runtime/api.js';

const keys = numberArg('keys', 100_000);
const batch = Math.max(1, numberArg('batch', 300));
const valueBytes = numberArg('value', 64);
const evictMiB = numberArg('evict-mib', 16);
const rounds = Math.max(1, numberArg('rounds', 7));
const commandsPerRound = 600_000;
const usePrefetch = !process.argv.includes('--no-prefetch');

const value = new Uint8Array(valueBytes).fill(0x61);
const keyOf = (i: number) => new TextEncoder().encode(`key-${String(i).padStart(12, '0')}`); // 16 bytes
// Every key's command made up front (the network hands the replica fresh bytes: no encoding here).
const commands = Array.from({ length: keys }, (_, i) => encodeCommand({ op: 'put', key: keyOf(i), value }));
const machine = new KvMachine();
for (const c of commands) machine.apply(c); // the full key space, as after the benchmark's warm-up

let seed = 12345;
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const junk = new Uint8Array(evictMiB * 1024 * 1024);
const slot: Uint8Array[] = [];
const context = { slot: 1, clientId: 1, seq: 1, timeMs: 0 };
const results: number[] = [];
const m: StateMachine = machine;
for (let r = 0; r < rounds; r++) {
  let ns = 0;
  for (let done = 0; done < commandsPerRound; done += batch) {
    for (let i = 0; i < junk.length; i += 64) junk[i]!++;
    slot.length = 0;
    // As a replica gets them: views into one fresh buffer (a decoded message), not long-lived arrays.
    const picked = Array.from({ length: batch }, () => commands[Math.floor(random() * keys)]!);
    const wire = new Uint8Array(picked.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of picked) {
      wire.set(c, at);
      slot.push(wire.subarray(at, at + c.length));
      at += c.length;
    }
    const t0 = process.hrtime.bigint();
    m.beforeBatch?.(done);
    if (usePrefetch) m.prefetch?.(slot);
    for (const c of slot) m.apply(c, context);
    m.afterBatch?.(done);
    ns += Number(process.hrtime.bigint() - t0);
  }
  results.push(ns / commandsPerRound);
  console.log(`round ${r + 1}: ${(ns / commandsPerRound).toFixed(0)} ns per command`);
}
results.sort((a, b) => a - b);
console.log(
  JSON.stringify({ nsPerCommandMedian: Math.round(results[rounds >> 1]!), keys, batch, valueBytes, evictMiB, prefetch: usePrefetch && typeof m.prefetch === 'function' }),
);
