// `synod bench`: the benchmark of the replicated key-value server (src/bench/).
//
//   synod bench                         3 `synod start` processes, file log (fdatasync), binary clients
//   synod bench --inproc                3 replicas in this process, in-memory transport and log
//   synod bench --etcd-endpoints ...    the same load against etcd (see scripts/bench-vs-etcd.mjs)
//   --json | --html FILE | --trace | --ci (a few hundred operations)

import { writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { BENCH_CI, BENCH_DEFAULTS, BenchParamError, validateBenchParams, type BenchParams } from '../bench/params.js';
import { htmlReport, summaryText } from '../bench/report.js';
import { runBench } from '../bench/run.js';
import { UsageError } from './config.js';

interface BenchFlags {
  inproc?: boolean;
  replicas: string;
  clients: string;
  inflight: string;
  connections?: string;
  keySize: string;
  valSize: string;
  keySpace: string;
  total?: string;
  duration: string;
  warmup: string;
  readRatio: string;
  consistency: BenchParams['consistency'];
  storage?: BenchParams['storage'];
  rate: string;
  via: BenchParams['via'];
  verify: boolean;
  verifyKeys: string;
  trace?: boolean;
  json?: boolean;
  html?: string;
  ci?: boolean;
  etcdEndpoints?: string;
  electionTimeoutMs: string;
  loadWorkers?: string;
  replicaArgs?: string;
}

const D = BENCH_DEFAULTS;

export function benchCommand(): Command {
  return new Command('bench')
    .description('benchmark the replicated key-value store (closed or open loop; summary, --json, --html)')
    .option('--inproc', 'replicas in this process over the in-memory transport (measures the engine)')
    .option('--replicas <n>', 'cluster size, 3 or 5', String(D.replicas))
    .option('--clients <n>', 'closed-loop clients', String(D.clients))
    .option('--inflight <n>', 'requests in flight per client', String(D.inflight))
    .option('--connections <n>', 'binary protocol connections shared by the clients (default: --clients, at most 1024)')
    .option('--key-size <bytes>', 'key size', String(D.keyBytes))
    .option('--val-size <bytes>', 'value size', String(D.valueBytes))
    .option('--key-space <n>', 'distinct keys', String(D.keySpace))
    .option('--total <n>', 'stop after this many measured operations, answered or failed (instead of --duration)')
    .option('--duration <s>', 'seconds of measured load', String(D.durationS))
    .option('--warmup <s>', 'seconds of load before measuring', String(D.warmupS))
    .option('--read-ratio <r>', 'share of reads, 0..1', String(D.readRatio))
    .addOption(new Option('--consistency <c>', 'read consistency').choices(['linearizable', 'lease', 'local']).default(D.consistency))
    .addOption(new Option('--storage <backend>', 'log backend of the replicas (default: file; memory for --inproc)').choices(['file', 'memory', 'pmem']))
    .option('--rate <ops/s>', 'open loop at this rate (0: closed loop)', '0')
    .addOption(new Option('--via <how>', '--inproc: call the leader directly, or go through the binary protocol on loopback').choices(['direct', 'binary']).default('direct'))
    .option('--no-verify', 'skip reading acknowledged writes back after the run')
    .option('--verify-keys <n>', 'read back at most this many keys', String(D.verifyKeysMax))
    .option('--trace', 'stage timings along the write path (leader)')
    .option('--json', 'print one JSON object')
    .option('--html <file>', 'write an HTML report (latency over time, histogram)')
    .option('--ci', 'small parameters (a few hundred operations) unless given explicitly')
    .option('--etcd-endpoints <list>', 'run the load against etcd at host:port,... (its gRPC gateway) instead')
    .option('--election-timeout-ms <ms>', 'replicas\' election timeout', String(D.electionTimeoutMs))
    .option('--replica-args <flags>', 'extra flags for every `synod start` (multi-process mode), in one quoted string, e.g. "--snapshot-interval-bytes 134217728"')
    .option('--load-workers <n>', 'worker threads generating the load, each with its share of the lanes and connections (default: 2 for --consistency local reads, else 1)')
    .action(async (flags: BenchFlags, cmd: Command) => {
      const params = benchParamsFromFlags(flags, (name) => cmd.getOptionValueSource(name) === 'cli');
      await runBenchCli(params, { json: flags.json === true, html: flags.html });
    });
}

export function benchParamsFromFlags(f: BenchFlags, explicit: (name: string) => boolean): BenchParams {
  const num = (text: string | undefined, flag: string): number => {
    const v = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isFinite(v)) throw new UsageError(`${flag} must be a number, got ${text}`);
    return v;
  };
  const etcd = f.etcdEndpoints ? f.etcdEndpoints.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const mode: BenchParams['mode'] = etcd.length > 0 ? 'etcd' : f.inproc ? 'inproc' : 'procs';
  const clients = num(f.clients, '--clients');
  let p: BenchParams = {
    mode,
    replicas: num(f.replicas, '--replicas'),
    clients,
    inflight: num(f.inflight, '--inflight'),
    connections: f.connections !== undefined ? num(f.connections, '--connections') : Math.min(clients, 1024),
    keyBytes: num(f.keySize, '--key-size'),
    valueBytes: num(f.valSize, '--val-size'),
    keySpace: num(f.keySpace, '--key-space'),
    totalOps: f.total !== undefined ? num(f.total, '--total') : 0,
    durationS: num(f.duration, '--duration'),
    warmupS: num(f.warmup, '--warmup'),
    readRatio: num(f.readRatio, '--read-ratio'),
    consistency: f.consistency,
    storage: f.storage ?? (mode === 'inproc' ? 'memory' : 'file'),
    rateOpsPerS: num(f.rate, '--rate'),
    via: f.via,
    verify: f.verify,
    verifyKeysMax: num(f.verifyKeys, '--verify-keys'),
    trace: f.trace === true,
    etcdEndpoints: etcd,
    electionTimeoutMs: num(f.electionTimeoutMs, '--election-timeout-ms'),
    loadWorkers: f.loadWorkers !== undefined ? num(f.loadWorkers, '--load-workers') : D.loadWorkers,
    replicaArgs: (f.replicaArgs ?? '').split(/\s+/).filter((a) => a.length > 0),
  };
  if (f.ci) {
    const flagOf: Record<string, string> = { clients: 'clients', inflight: 'inflight', connections: 'connections', keySpace: 'keySpace', totalOps: 'total', durationS: 'duration', warmupS: 'warmup' };
    for (const [k, v] of Object.entries(BENCH_CI)) if (!explicit(flagOf[k] ?? k)) (p as unknown as Record<string, unknown>)[k] = v;
  }
  try {
    p = validateBenchParams(p);
  } catch (e) {
    if (e instanceof BenchParamError) throw new UsageError(flagMessage(e.message));
    throw e;
  }
  return p;
}

/** validateBenchParams names its fields (rateOpsPerS): the user typed the flag (--rate). */
const FLAG_OF_PARAM: Record<string, string> = {
  replicas: '--replicas', clients: '--clients', inflight: '--inflight', connections: '--connections', keyBytes: '--key-size', valueBytes: '--val-size',
  keySpace: '--key-space', totalOps: '--total', durationS: '--duration', warmupS: '--warmup', readRatio: '--read-ratio', rateOpsPerS: '--rate',
  verifyKeysMax: '--verify-keys', electionTimeoutMs: '--election-timeout-ms', loadWorkers: '--load-workers', replicaArgs: '--replica-args',
};

function flagMessage(message: string): string {
  const m = /^(\w+)( .*)$/s.exec(message);
  const flag = m ? FLAG_OF_PARAM[m[1]!] : undefined;
  return flag ? `${flag}${m![2]}` : message;
}

export async function runBenchCli(params: BenchParams, out: { json: boolean; html?: string }): Promise<void> {
  const tty = !out.json && process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: ' {phase} |{bar}| {percentage}% | {ops} ops | {rate} ops/s | {errors} errors', hideCursor: true, barsize: 28, clearOnComplete: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const total = params.totalOps > 0 ? params.totalOps : params.durationS;
  let phase = 'starting';
  let cleanup: Array<() => Promise<void>> = [];
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    bar?.stop();
    process.stderr.write(`\n${signal}: stopping the benchmark...\n`);
    const timer = setTimeout(() => process.exit(130), 5_000);
    timer.unref();
    void Promise.allSettled(cleanup.map((c) => c())).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    bar?.start(total, 0, { phase, ops: 0, rate: 0, errors: 0 });
    const result = await runBench(params, {
      onPhase: (ph) => {
        phase = ph;
        if (!bar && !out.json) process.stderr.write(`${ph}...\n`);
        bar?.update({ phase: ph === 'load' ? 'load' : ph });
      },
      onProgress: (ops, errors, elapsedS) => bar?.update(params.totalOps > 0 ? ops : Math.min(elapsedS, params.durationS), { phase, ops, rate: elapsedS > 0 ? Math.round(ops / elapsedS) : 0, errors }),
      stopRequested: () => interrupted,
      onCleanup: (c) => {
        cleanup = [...cleanup, c];
      },
    });
    bar?.stop();
    if (out.json) process.stdout.write(JSON.stringify(result) + '\n');
    else process.stdout.write(summaryText(result) + '\n');
    if (out.html) {
      writeFileSync(out.html, htmlReport(result));
      if (!out.json) process.stdout.write(`\nHTML report: ${out.html}\n`);
    }
    const v = result.verify;
    if (result.errors > 0 || v.missing + v.wrong + v.errors > 0) process.exitCode = 1;
  } finally {
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
