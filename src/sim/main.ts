#!/usr/bin/env node
// npm run sim -- --seeds N [--start S] [--bug NAME] [--json]
// npm run sim -- --seed S [--trace]     replay one seed with a readable trace
// npm run sim -- --storage --seeds N [--start S] [--fault NAME] [--writer W] [--backend file|pmem] [--json]   the storage simulator (storage-sim.ts)
import cliProgress from 'cli-progress';
import type { PlantedBug } from '../core/options.js';
import { randomSimOptions, type SimOptions } from './options.js';
import { runSeed, type SimResult } from './simulation.js';
import { codecWire } from './wire.js';
import { runStorageSeed, type StorageSimResult, type StorageSimWriter } from './storage-sim.js';
import type { PowerLossFault } from './power-loss-fs.js';

interface Args {
  seeds: number;
  start: number;
  seed: number | null;
  trace: boolean;
  bug: PlantedBug | undefined;
  json: boolean;
  wire: boolean;
  contracts: boolean;
  transfers: boolean;
  storage: boolean;
  fault: PowerLossFault | null;
  writer: StorageSimWriter;
  backend: 'file' | 'pmem';
}

const WRITERS: readonly StorageSimWriter[] = ['flush-loop', 'ordered', 'mixed'];
const FAULTS: readonly PowerLossFault[] = ['lying-fsync', 'no-dir-fsync', 'writer-acks-early', 'pmem-flush-noop'];

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: 100, start: 1, seed: null, trace: false, bug: undefined, json: false, wire: true, contracts: true, transfers: false, storage: false, fault: null, writer: 'mixed', backend: 'file' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (v: string) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${a} needs a non-negative integer, got '${v}'`);
      return n;
    };
    if (a === '--seeds') args.seeds = int(value());
    else if (a === '--start') args.start = int(value());
    else if (a === '--seed') args.seed = int(value());
    else if (a === '--trace') args.trace = true;
    else if (a === '--bug') args.bug = value() as PlantedBug;
    else if (a === '--json') args.json = true;
    else if (a === '--no-wire') args.wire = false;
    else if (a === '--no-contracts') args.contracts = false;
    else if (a === '--transfers') args.transfers = true;
    else if (a === '--storage') args.storage = true;
    else if (a === '--fault') {
      const f = value() as PowerLossFault;
      if (!FAULTS.includes(f)) throw new Error(`--fault must be one of ${FAULTS.join(', ')}, got '${f}'`);
      args.fault = f;
    } else if (a === '--backend') {
      const b = argv[++i];
      if (b !== 'file' && b !== 'pmem') throw new Error(`--backend must be file or pmem, got '${b}'`);
      args.backend = b;
    } else if (a === '--writer') {
      const w = value() as StorageSimWriter;
      if (!WRITERS.includes(w)) throw new Error(`--writer must be one of ${WRITERS.join(', ')}, got '${w}'`);
      args.writer = w;
    }
    else if (a === '--help' || a === '-h') {
      console.log('usage: synod-sim --seeds N [--start S] [--bug NAME] [--json] [--no-wire] [--no-contracts] [--transfers] | --seed S [--trace] [--transfers]');
      console.log('       synod-sim --storage --seeds N [--start S] [--fault lying-fsync|no-dir-fsync|writer-acks-early|pmem-flush-noop] [--writer flush-loop|ordered|mixed] [--backend file|pmem] [--json] | --storage --seed S');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}' (try --help)`);
  }
  return args;
}

function replayCommand(seed: number, bug: PlantedBug | undefined, contractsOff = false, transfers = false): string {
  return `npm run sim -- --seed ${seed}${bug ? ` --bug ${bug}` : ''}${contractsOff ? ' --no-contracts' : ''}${transfers ? ' --transfers' : ''} --trace`;
}

function simOverrides(args: Args): Partial<SimOptions> {
  return { plantedBug: args.bug, wireCodec: args.wire, contracts: args.contracts, ...(args.transfers ? { faults: { transfers: true } as SimOptions['faults'] } : {}) };
}

function main(): void {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`synod sim: ${(e as Error).message}`);
    process.exit(2);
  }
  if (args.storage) {
    mainStorage(args).catch((e: unknown) => {
      console.error(e);
      process.exit(2);
    });
    return;
  }
  const wire = args.wire ? codecWire : null;
  if (args.seed !== null) {
    const options = randomSimOptions(args.seed, simOverrides(args));
    const result = runSeed(options, args.trace, wire);
    if (args.trace) for (const line of result.trace) console.log(line);
    console.log(JSON.stringify({ options: { ...options, core: options.core }, ...summarize(result) }, null, 2));
    if (!result.ok) console.log(`\nVIOLATION ${result.violation!.message}`);
    process.exit(result.ok ? 0 : 1);
  }
  const started = performance.now();
  const progress = new SeedProgress(args.seeds, args.json, 'sim [{bar}] {value}/{total} seeds | {failures} failed | {rate} steps/s | eta {eta_formatted}', { failures: 0, rate: 0 });
  const failures: SimResult[] = [];
  let steps = 0;
  let simulatedMs = 0;
  let acked = 0;
  let reads = 0;
  let expired = 0;
  let sessions = 0;
  let seedsWithExpiry = 0;
  let seedsWithConfigsOutOfOrder = 0;
  let notMemberDelivered = 0;
  let removalsNoticed = 0;
  for (let i = 0; i < args.seeds; i++) {
    const seed = args.start + i;
    const result = runSeed(randomSimOptions(seed, simOverrides(args)), false, wire);
    steps += result.steps;
    simulatedMs += result.simulatedMs;
    acked += result.ackedWrites;
    reads += result.reads;
    expired += result.expiredWrites;
    sessions += result.sessions;
    if (result.expiredWrites > 0) seedsWithExpiry++;
    if (result.configsOutOfOrder > 0) seedsWithConfigsOutOfOrder++;
    notMemberDelivered += result.notMemberDelivered;
    removalsNoticed += result.removalsNoticed;
    if (!result.ok) {
      failures.push(result);
      const line = `seed ${seed}: ${result.violation!.message}\n  replay: ${replayCommand(seed, args.bug, !args.contracts, args.transfers)}`;
      progress.failed(i + 1, line, { failures: failures.length, rate: 0 });
    }
    const rate = Math.round(steps / Math.max((performance.now() - started) / 1000, 1e-3));
    progress.advance(i + 1, { failures: failures.length, rate }, () => `sim: ${i + 1}/${args.seeds} seeds, ${failures.length} failed, ${rate} steps/s`);
  }
  progress.stop();
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    seeds: args.seeds,
    firstSeed: args.start,
    failures: failures.map((f) => ({ seed: f.seed, violation: f.violation!.message, replay: replayCommand(f.seed, args.bug, !args.contracts, args.transfers) })),
    steps,
    stepsPerSecond: Math.round(steps / seconds),
    simulatedSeconds: Math.round(simulatedMs / 1000),
    ackedWrites: acked,
    readsChecked: reads,
    sessionsRegistered: sessions,
    expiredWrites: expired,
    seedsWithExpiredSessions: seedsWithExpiry,
    seedsWithConfigsChosenOutOfOrder: seedsWithConfigsOutOfOrder,
    notMemberDelivered,
    removalsNoticed,
    wallSeconds: Number(seconds.toFixed(1)),
    plantedBug: args.bug ?? null,
  };
  if (args.json) console.log(JSON.stringify(summary));
  else {
    console.log(`seeds ${summary.seeds} (from ${summary.firstSeed}), failed ${failures.length}`);
    console.log(`steps ${steps} (${summary.stepsPerSecond}/s), simulated ${summary.simulatedSeconds} s in ${summary.wallSeconds} s wall`);
    console.log(`acknowledged writes checked ${acked}, reads checked ${reads}`);
    console.log(`sessions registered ${sessions}, writes answered SESSION_EXPIRED ${expired} (in ${seedsWithExpiry} seeds)`);
    console.log(`seeds where a configuration was chosen after one at a higher slot: ${seedsWithConfigsOutOfOrder}`);
    console.log(`notMember answers delivered ${notMemberDelivered}, taken as news of a removal ${removalsNoticed}`);
    for (const f of summary.failures) console.log(`FAIL seed ${f.seed}: ${f.violation}\n  replay: ${f.replay}`);
  }
  process.exit(failures.length === 0 ? 0 : 1);
}

async function mainStorage(args: Args): Promise<void> {
  const replay = (seed: number) => `npm run sim -- --storage --seed ${seed}${args.fault ? ` --fault ${args.fault}` : ''}${args.writer !== 'mixed' ? ` --writer ${args.writer}` : ''}${args.backend !== 'file' ? ` --backend ${args.backend}` : ''}`;
  if (args.seed !== null) {
    const result = await runStorageSeed(args.seed, { fault: args.fault, writer: args.writer, backend: args.backend });
    console.log(JSON.stringify(result, null, 2));
    process.exit(result.violation ? 1 : 0);
  }
  const started = performance.now();
  const progress = new SeedProgress(args.seeds, args.json, 'storage sim [{bar}] {value}/{total} seeds | {failures} failed | eta {eta_formatted}', { failures: 0 });
  const failures: StorageSimResult[] = [];
  const totals = { lives: 0, orderedLives: 0, acknowledged: 0, recovered: 0, readsChecked: 0, snapshots: 0, powerCuts: 0, writesKept: 0, writesLost: 0, writesTorn: 0, nameChangesLost: 0, directoriesLost: 0, persists: 0, linesEvicted: 0, linesLost: 0, pmemCrashes: 0 };
  for (let i = 0; i < args.seeds; i++) {
    const seed = args.start + i;
    const r = await runStorageSeed(seed, { fault: args.fault, writer: args.writer, backend: args.backend });
    for (const k of ['lives', 'orderedLives', 'acknowledged', 'recovered', 'readsChecked', 'snapshots'] as const) totals[k] += r[k];
    for (const k of ['powerCuts', 'writesKept', 'writesLost', 'writesTorn', 'nameChangesLost', 'directoriesLost', 'persists', 'linesEvicted', 'linesLost', 'pmemCrashes'] as const) totals[k] += r.fs[k];
    if (r.violation) {
      failures.push(r);
      const line = `seed ${seed}: ${r.violation.detail}\n  replay: ${replay(seed)}`;
      progress.failed(i + 1, line, { failures: failures.length });
    }
    progress.advance(i + 1, { failures: failures.length }, () => `storage sim: ${i + 1}/${args.seeds} seeds, ${failures.length} failed`);
  }
  progress.stop();
  const summary = {
    mode: 'storage',
    seeds: args.seeds,
    firstSeed: args.start,
    fault: args.fault,
    backend: args.backend,
    failures: failures.map((f) => ({ seed: f.seed, kind: f.violation!.kind, violation: f.violation!.detail, replay: replay(f.seed) })),
    ...totals,
    wallSeconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  };
  if (args.json) console.log(JSON.stringify(summary));
  else {
    console.log(`storage sim: seeds ${summary.seeds} (from ${summary.firstSeed}), failed ${failures.length}${args.fault ? ` (planted fault ${args.fault})` : ''}, ${summary.wallSeconds} s`);
    console.log(`lives ${totals.lives}, of them through the ordered (native) writer ${totals.orderedLives}`);
    console.log(`power cuts ${totals.powerCuts}; unsynced writes kept ${totals.writesKept}, torn ${totals.writesTorn}, lost ${totals.writesLost}; name changes lost ${totals.nameChangesLost} (directories with them ${totals.directoriesLost})`);
    if (args.backend === 'pmem') console.log(`pmem: ranges persisted (flush or msync) ${totals.persists}; power cuts inside one ${totals.pmemCrashes}; unflushed cache lines at a power cut: kept ${totals.linesEvicted}, lost ${totals.linesLost}`);
    console.log(`records acknowledged ${totals.acknowledged}, recovered and checked ${totals.recovered}, read back during lives ${totals.readsChecked}, snapshots saved ${totals.snapshots}`);
    for (const f of summary.failures) console.log(`FAIL seed ${f.seed}: ${f.violation}\n  replay: ${f.replay}`);
  }
  process.exit(failures.length === 0 ? 0 : 1);
}

/** A seed loop's progress: a bar on a terminal, else a line every 10 s (nothing with --json); failures printed as they come. */
class SeedProgress {
  private readonly bar: cliProgress.SingleBar | null;
  private lastLog = performance.now();

  constructor(
    private readonly total: number,
    private readonly json: boolean,
    format: string,
    payload: Record<string, number>,
  ) {
    this.bar = process.stderr.isTTY && !json ? new cliProgress.SingleBar({ format, stream: process.stderr }, cliProgress.Presets.shades_classic) : null;
    this.bar?.start(total, 0, payload);
  }

  failed(done: number, line: string, payload: Record<string, number>): void {
    if (this.bar) {
      this.bar.stop();
      console.error(line);
      this.bar.start(this.total, done, payload);
    } else if (!this.json) console.error(line);
  }

  advance(done: number, payload: Record<string, number>, logLine: () => string): void {
    this.bar?.update(done, payload);
    if (!this.bar && !this.json && performance.now() - this.lastLog > 10_000) {
      this.lastLog = performance.now();
      console.error(logLine());
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}

function summarize(r: SimResult) {
  const { trace: _trace, violation, ...rest } = r;
  return { ...rest, violation: violation?.message ?? null };
}

main();
