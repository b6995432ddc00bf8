// What one tick's expiry costs a leader whose queue is full (sustained overload): the core's
// withdrawQueued over a queue of `--queued` commands (default proposalQueueCommandsMax, 131,072),
// with the runtime's test (a lookup by (clientId, seq) in the pending table), taking back the
// `--expiring` oldest, as a tick does when deadlines follow arrival. Once scanning the whole
// queue; once stopping at `atMost` (what the runtime passes since session 21).
//
//   node dist/bench/withdraw-scan.js [--queued 131072] [--expiring 100] [--rounds 7]
//
// Prints the median time of each way and their ratio.
import { numberArg } from './args.js';
import { Replica } from '../src/core/replica.js';
import { coreOptions } from '../src/core/options.js';
import type { Command } from '../src/core/types.js';
import { PendingEntry, PendingTable } from '../src/runtime/pending.js';

const queued = numberArg('queued', 131_072, 1);
const expiring = Math.min(numberArg('expiring', 100, 1), queued);
const rounds = numberArg('rounds', 7, 1);
const CLIENTS = 64;

/** A lone leader whose window stays full (nothing is ever made durable), holding `queued` commands. */
function leaderWithQueue(): { core: Replica; pending: PendingTable } {
  const core = new Replica(coreOptions({ id: 1, members: [1], pipelineWindowSlots: 1, batchCommandsMax: 1 }), () => 0.5, 0);
  core.campaign(0);
  // Its promise made durable: it leads. Nothing after is, so the window stays full.
  for (let ready = core.takeReady(); ready; ready = core.takeReady()) for (const op of ready.persist) core.persisted(op.seq, 0);
  if (!core.isLeader) throw new Error('the lone replica did not become leader');
  const pending = new PendingTable();
  const commands: Command[] = [];
  for (let i = 0; i < queued + 1; i++) {
    const clientId = 1 + (i % CLIENTS);
    const seq = 1 + Math.floor(i / CLIENTS);
    pending.add(new PendingEntry(pending, clientId, seq, 5_000, 0, null, () => {}, null));
    commands.push({ clientId, seq, floor: 0, payload: new Uint8Array(8) });
  }
  core.propose(commands, 1);
  while (core.takeReady()) {}
  // The one slot the window allows holds the election's no-op or the first command.
  const first = queued + 1 - core.queuedCommands;
  if (first > 1) throw new Error(`expected ${queued} or more queued, the core holds ${core.queuedCommands}`);
  for (let i = first; i < first + expiring; i++) pending.get(commands[i]!.clientId, commands[i]!.seq)!.expiring = true;
  return { core, pending };
}

function timeOnce(bounded: boolean): number {
  const { core, pending } = leaderWithQueue();
  const gone = (c: Command): boolean => pending.get(c.clientId, c.seq)?.expiring === true;
  const t0 = performance.now();
  const withdrawn = core.withdrawQueued(gone, bounded ? expiring : Infinity);
  const ms = performance.now() - t0;
  if (withdrawn.length !== expiring) throw new Error(`withdrew ${withdrawn.length}, expected ${expiring}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const full: number[] = [];
const stop: number[] = [];
for (let r = 0; r < rounds; r++) {
  full.push(timeOnce(false));
  stop.push(timeOnce(true));
}
console.log(`withdrawQueued, ${queued.toLocaleString('en-US')} queued, ${expiring} expiring at the front, median of ${rounds}:`);
console.log(`  whole queue scanned:   ${median(full).toFixed(3)} ms`);
console.log(`  stopping at atMost:    ${median(stop).toFixed(3)} ms (${(median(full) / median(stop)).toFixed(0)}x less)`);
