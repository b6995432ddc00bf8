// The consensus engine alone, in one process: 3 (or 5) SynodReplicas over the in-memory transport
// and the memory log, with a state machine that does almost nothing (it counts the commands and
// their bytes, and answers one byte), under a closed loop of lanes proposing through
// proposeWith() with client sessions, as the binary server does. What a command costs the
// library itself (batching, the core, replication, the log, commit, the session table, apply
// dispatch, the answer) for every replica, without the key-value store's apply. `synod bench
// --inproc` measures the same path with the KV machine.
//
//   npm run bench:engine -- [--replicas 3] [--lanes 1024] [--clients 16] [--bytes 100] [--seconds 5] [--rounds 3] [--views]
//
// The machine applies a command where it lies in its batch's bytes (StateMachine.applyAt, as the KV
// machine does); `--views` takes that away, so that the runtime makes a view per command for
// apply() (what a machine with only apply() costs the engine).
//
// Prints committed commands per second and CPU µs per command (the whole process) per round, and
// the median. Every command is answered (checked), and every replica applies every command
// (checked at the end: the counts agree).
import { numberArg } from './args.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodReplica } from '../src/runtime/replica.js';
import type { ApplyContext, StateMachine } from '../src/runtime/api.js';
import { MemoryNetwork } from '../src/transport/memory.js';
import { electionCore } from '../src/cli/start.js';

const replicas = numberArg('replicas', 3, 1);
const lanes = numberArg('lanes', 1024, 1);
const clients = Math.min(numberArg('clients', 16, 1), lanes);
const commandBytes = numberArg('bytes', 100, 1);
const seconds = numberArg('seconds', 5, 1);
const rounds = numberArg('rounds', 3, 1);

const OK = Uint8Array.of(0);
const views = process.argv.includes('--views');

/** Counts what it applies; its state is the count and a running sum of the bytes (so a snapshot is 16 bytes). */
class CountingMachine implements StateMachine {
  applied = 0;
  sum = 0;
  apply(command: Uint8Array, _context: ApplyContext): Uint8Array {
    this.applied++;
    this.sum = (this.sum + command.length + command[0]!) % 2 ** 48;
    return OK;
  }
  query(): Uint8Array {
    return OK;
  }
  snapshot(): Uint8Array {
    const out = new Uint8Array(16);
    const v = new DataView(out.buffer);
    v.setFloat64(0, this.applied);
    v.setFloat64(8, this.sum);
    return out;
  }
  restore(s: Uint8Array): void {
    const v = new DataView(s.buffer, s.byteOffset, s.byteLength);
    this.applied = v.getFloat64(0);
    this.sum = v.getFloat64(8);
  }
}

/** The same machine, also applying a command where it lies (StateMachine.applyAt). */
class InPlaceCountingMachine extends CountingMachine {
  applyAt(bytes: Uint8Array, offset: number, length: number, _context: ApplyContext): Uint8Array {
    this.applied++;
    this.sum = (this.sum + length + bytes[offset]!) % 2 ** 48;
    return OK;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'synod-engine-'));
const network = new MemoryNetwork();
const members = new Map(Array.from({ length: replicas }, (_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
const machines: CountingMachine[] = [];
const nodes: SynodReplica[] = [];
for (let id = 1; id <= replicas; id++) {
  const sm = views ? new CountingMachine() : new InPlaceCountingMachine();
  machines.push(sm);
  nodes.push(await SynodReplica.start({ id, clusterId: 'synod-engine', dataDir: join(dir, `r${id}`), members, stateMachine: sm, transport: network.createTransport({ replicaId: id }), logBackend: 'memory', core: electionCore(300) }));
}
let leader: SynodReplica | undefined;
for (let i = 0; i < 200 && !leader; i++) {
  leader = nodes.find((n) => n.status().role === 'leader');
  if (!leader) await new Promise((r) => setTimeout(r, 25));
}
if (!leader) throw new Error('no leader elected within 5 s');
const L = leader;

const sessions = await Promise.all(Array.from({ length: clients }, () => L.openSession()));
const seqs = new Array<number>(clients).fill(0);
const outstanding = Array.from({ length: clients }, () => new Set<number>());
const floors = new Array<number>(clients).fill(1);
const command = new Uint8Array(commandBytes).fill(0x61);

let answered = 0;
let running = true;
let inflight = 0;
let failure: unknown = null;

/**
 * A lane has one command in flight: its options object and its callback are made once (proposeWith
 * reads the options before it returns when they name a session), so the generator allocates
 * nothing per command and what is measured is the engine's allocation, not the load's.
 */
class Lane {
  readonly c: number;
  readonly options = { clientId: 0, seq: 0, floor: 0 };
  constructor(lane: number) {
    this.c = lane % clients;
    this.options.clientId = sessions[this.c]!;
  }
  issue(): void {
    const c = this.c;
    const seq = ++seqs[c]!;
    if (outstanding[c]!.size === 0) floors[c] = seq;
    outstanding[c]!.add(seq);
    inflight++;
    this.options.seq = seq;
    this.options.floor = floors[c]!;
    L.proposeWith(command, this.options, this.done);
  }
  readonly done = (error: Error | null, result: Uint8Array | null): void => {
    inflight--;
    const c = this.c;
    const seq = this.options.seq;
    const o = outstanding[c]!;
    o.delete(seq);
    if (seq === floors[c]) while (floors[c]! <= seqs[c]! && !o.has(floors[c]!)) floors[c]!++;
    if (error !== null || result === null || result.length !== 1 || result[0] !== 0) {
      failure ??= error ?? new Error('unexpected answer');
      return;
    }
    answered++;
    if (running) this.issue();
  };
}

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
for (let lane = 0; lane < lanes; lane++) new Lane(lane).issue();
await new Promise((r) => setTimeout(r, 1000)); // warm-up
const results: Array<{ rate: number; cpuUs: number }> = [];
for (let r = 0; r < rounds; r++) {
  const a0 = answered;
  const c0 = cpu();
  const t0 = performance.now();
  await new Promise((res) => setTimeout(res, seconds * 1000));
  const n = answered - a0;
  const s = (performance.now() - t0) / 1000;
  results.push({ rate: n / s, cpuUs: ((cpu() - c0) / n) * 1e6 });
  console.log(`round ${r + 1}: ${Math.round(n / s).toLocaleString('en-US')} commands/s, ${(((cpu() - c0) / n) * 1e6).toFixed(2)} CPU µs per command (process)`);
}
running = false;
while (inflight > 0 && failure === null) await new Promise((r) => setTimeout(r, 10));
if (failure !== null) throw failure;
// Every replica applies every command (the followers may trail by the last slots: wait for them).
const target = machines[nodes.indexOf(L)]!.applied;
for (let i = 0; i < 200 && machines.some((m) => m.applied < target); i++) await new Promise((r) => setTimeout(r, 25));
const counts = machines.map((m) => m.applied);
if (counts.some((n) => n !== target) || target < answered) throw new Error(`replicas applied ${counts.join(' / ')} commands, ${answered} answered`);
await Promise.all(nodes.map((n) => n.close()));
rmSync(dir, { recursive: true, force: true });
const median = [...results].sort((a, b) => a.rate - b.rate)[Math.floor(results.length / 2)]!;
console.log(
  `engine, ${replicas} replicas in process, memory log, ${lanes} lanes on ${clients} sessions, ${commandBytes}-byte commands: median ${Math.round(median.rate).toLocaleString('en-US')} commands/s (${median.cpuUs.toFixed(2)} CPU µs per command); every replica applied ${target.toLocaleString('en-US')}`,
);
