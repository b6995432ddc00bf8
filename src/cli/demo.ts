// `synod demo`: a 3-replica cluster of child processes on loopback, a write/read workload with
// a live progress bar, a leader crash (SIGKILL) midway, the crashed replica restarted and
// caught up, then a summary and a check that every acknowledged write reads back.
//
// Timeline (default --duration 15 s of workload):  start -> elect -> load 40% -> kill leader ->
// load 30% -> restart the killed replica, watch it catch up -> load 30% -> verify -> stop.

import { Command } from 'commander';
import cliProgress from 'cli-progress';
import * as hdr from 'hdr-histogram-js';
import * as http from 'node:http';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpKvClient, HttpStatusError } from '../kv/http-client.js';
import { ProcCluster } from './cluster-procs.js';
import { bytes, digestText, ms, table } from './format.js';
import { UsageError } from './config.js';
import type { StateDigestStatus } from '../runtime/state-digests.js';

interface DemoOptions {
  data?: string;
  duration: string;
  concurrency: string;
  json?: boolean;
  keep?: boolean;
}

/** Digests every this many slots: a 15 s demo applies a few thousand. */
const DEMO_DIGEST_INTERVAL_SLOTS = 500;

export interface DemoSummary {
  ok: boolean;
  durationS: number;
  ops: number;
  opsPerS: number;
  writesAcked: number;
  reads: number;
  readMismatches: number;
  unknownOutcomes: number;
  failedCertain: number;
  latencyMs: { p50: number; p99: number; p999: number; max: number };
  killedLeader: number;
  newLeader: number | null;
  leaderlessMs: number | null;
  writesResumedMs: number | null;
  catchUp: { slots: number; ms: number | null };
  bytesOnDisk: Record<string, number>;
  verify: { checked: number; ok: number; missing: number; wrong: number; errors: number };
  replicasAgree: boolean;
  /** Each replica's newest state digest (every DEMO_DIGEST_INTERVAL_SLOTS slots) and the peers that agreed or differed there. */
  stateDigests: Array<{ id: number } & StateDigestStatus>;
  dataDir: string;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run a local 3-replica cluster, load it, crash the leader, and verify every acknowledged write')
    .option('--data <dir>', 'keep the replicas\' data here (default: a temporary directory, removed after)')
    .option('--duration <s>', 'seconds of workload', '15')
    .option('--concurrency <n>', 'requests in flight', '32')
    .option('--json', 'print the summary as JSON')
    .option('--keep', 'keep the temporary data directory')
    .action(async (o: DemoOptions) => {
      const summary = await runDemo(o);
      if (!summary.ok) process.exitCode = 1;
    });
}

const now = () => performance.now();
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

interface StatusJson {
  id: number;
  role: string;
  leader: number | null;
  commitIndex: number;
  appliedIndex: number;
  kv: { keys: number };
  stateDigest: StateDigestStatus | null;
}

function fetchStatus(endpoint: string, timeoutMs = 500): Promise<StatusJson | null> {
  return new Promise((resolve) => {
    const req = http.get(`${endpoint}/v1/status`, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as StatusJson) : null);
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

function diskUsage(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else total += st.blocks * 512;
    }
  };
  try {
    walk(dir);
  } catch {
    // a file vanished while walking (compaction): the figure is approximate anyway
  }
  return total;
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const durationS = Number(o.duration);
  const concurrency = Number(o.concurrency);
  if (!(durationS >= 3 && durationS <= 600)) throw new UsageError(`--duration must be 3..600 seconds, got ${o.duration}`);
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 1024)) throw new UsageError(`--concurrency must be 1..1024, got ${o.concurrency}`);
  const tty = !o.json && process.stdout.isTTY === true;
  const say = (line: string) => {
    if (!o.json) process.stdout.write(line + '\n');
  };
  const dataDir = o.data ?? mkdtempSync(join(tmpdir(), 'synod-demo-'));
  const removeData = !o.data && !o.keep;
  // State digests often enough for a short run to compare several (SAFETY.md; docs/api.md).
  const cluster = await ProcCluster.create({ size: 3, dataDir, electionTimeoutMs: 300, extraArgs: ['--state-digest-interval-slots', String(DEMO_DIGEST_INTERVAL_SLOTS)] });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the demo cluster...\n`);
    void cluster.stopAll(2_000).finally(() => {
      if (removeData) rmSync(dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const client = new HttpKvClient({ endpoints: cluster.endpoints, timeoutMs: 10_000, requestTimeoutMs: 8_000 });
  const bar = tty
    ? new cliProgress.SingleBar({ format: ' {phase} |{bar}| {percentage}% | {ops} ops | {rate} ops/s | leader {leader} | {note}', hideCursor: true, barsize: 24, clearOnComplete: false }, cliProgress.Presets.shades_classic)
    : null;
  try {
    say(`synod demo: 3 replicas on 127.0.0.1, data in ${dataDir}`);
    for (const r of cluster.replicas) say(`  replica ${r.id}: peer ${r.peer.host}:${r.peer.port}  http ${r.http.host}:${r.http.port}`);
    const t0 = now();
    cluster.startAll();
    // ---------------------------------------------------------------- wait for a leader
    let leader: number | null = null;
    const electDeadline = now() + 20_000;
    while (leader === null) {
      if (now() > electDeadline) throw new Error(`no leader after 20 s: see the replica logs in ${dataDir}/replica-*.log`);
      for (const r of cluster.replicas) if (!cluster.running(r.id)) throw cluster.exitedAtStart(r.id);
      const sts = await Promise.all(cluster.endpoints.map((e) => fetchStatus(e)));
      const l = sts.find((s) => s?.role === 'leader');
      if (l) {
        try {
          const c1 = new HttpKvClient({ endpoints: [cluster.endpoints[l.id - 1]!], timeoutMs: 1, requestTimeoutMs: 2_000 });
          const a = await c1.send('PUT', '/v1/kv/demo%2Fhello', 'world').finally(() => c1.close());
          if (a.status === 200) leader = l.id;
        } catch {
          // not ready yet
        }
      }
      if (leader === null) await sleep(50);
    }
    say(`cluster up in ${ms(now() - t0)}: replica ${leader} leads`);
    client.prefer(cluster.endpoints[leader - 1]!);

    // ---------------------------------------------------------------- the workload
    const hist = hdr.build({ bitBucketSize: 32, autoResize: true, numberOfSignificantValueDigits: 3 });
    const acked = new Map<string, string>();
    const stats = { ops: 0, reads: 0, readMismatches: 0, unknown: 0, failedCertain: 0 };
    let running = true;
    let killAt = Infinity;
    let firstAckAfterKill: number | null = null;
    let phase = 'load';
    let currentLeader: number | null = leader;
    const worker = async (w: number) => {
      const mine: string[] = [];
      let n = 0;
      while (running && !interrupted) {
        const read = mine.length > 0 && Math.random() < 0.3;
        const start = now();
        try {
          if (read) {
            const key = mine[Math.floor(Math.random() * mine.length)]!;
            const a = await client.call('GET', `/v1/kv/${encodeURIComponent(key)}`, undefined, [404]);
            stats.reads++;
            if (a.status !== 200 || a.body.toString('utf8') !== acked.get(key)) stats.readMismatches++;
          } else {
            const key = `demo/w${w}/k${n++}`;
            const value = `v${n}-${Math.random().toString(36).slice(2, 10)}`;
            await client.call('PUT', `/v1/kv/${encodeURIComponent(key)}`, value);
            acked.set(key, value);
            mine.push(key);
            if (start >= killAt && firstAckAfterKill === null) firstAckAfterKill = now();
          }
          stats.ops++;
          hist.recordValue(Math.max(1, Math.round((now() - start) * 1000)));
        } catch (e) {
          if (e instanceof HttpStatusError && e.certain) stats.failedCertain++;
          else stats.unknown++;
          await sleep(20);
        }
      }
    };
    const loadStart = now();
    const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
    const totalMs = durationS * 1000;
    bar?.start(100, 0, { phase: 'load     ', ops: 0, rate: 0, leader: leader, note: '' });
    let lastOps = 0;
    let lastTick = now();
    let rate = 0;
    let lastLine = 0;
    let note = '';
    const ticker = setInterval(() => {
      const t = now();
      if (t - lastTick >= 500) {
        rate = Math.round(((stats.ops - lastOps) * 1000) / (t - lastTick));
        lastOps = stats.ops;
        lastTick = t;
      }
      const pct = Math.min(100, Math.floor(((t - loadStart) / totalMs) * 100));
      bar?.update(pct, { phase: phase.padEnd(9), ops: stats.ops, rate, leader: currentLeader ?? 'none', note });
      if (!bar && !o.json && t - lastLine >= 1000) {
        lastLine = t;
        say(`  [${String(pct).padStart(3)}%] ${phase}: ${stats.ops} ops, ${rate} ops/s, leader ${currentLeader ?? 'none'}${note ? `, ${note}` : ''}`);
      }
    }, 100);
    const log = (line: string) => {
      if (bar) bar.update({ note: line });
      note = line;
    };
    const until = async (fraction: number) => {
      while (!interrupted && now() - loadStart < totalMs * fraction) await sleep(25);
    };

    await until(0.4);
    // ---------------------------------------------------------------- crash the leader
    const statuses = await Promise.all(cluster.endpoints.map((e) => fetchStatus(e)));
    const killed = statuses.find((s) => s?.role === 'leader')?.id ?? leader;
    phase = 'failover';
    killAt = now();
    await cluster.kill(killed);
    currentLeader = null;
    log(`SIGKILL replica ${killed}`);
    let newLeader: number | null = null;
    let leaderlessMs: number | null = null;
    const survivors = cluster.endpoints.filter((_, i) => i + 1 !== killed);
    while (newLeader === null && now() - killAt < 20_000 && !interrupted) {
      const sts = await Promise.all(survivors.map((e) => fetchStatus(e, 300)));
      const l = sts.find((s) => s?.role === 'leader');
      if (l) {
        newLeader = l.id;
        leaderlessMs = now() - killAt;
        currentLeader = l.id;
        client.prefer(cluster.endpoints[l.id - 1]!);
      } else await sleep(10);
    }
    log(newLeader === null ? 'no new leader!' : `replica ${newLeader} leads after ${ms(leaderlessMs!)}`);
    phase = 'degraded';
    await until(0.7);

    // ---------------------------------------------------------------- restart and catch up
    phase = 'catch-up';
    const leaderStatus = newLeader === null ? null : await fetchStatus(cluster.endpoints[newLeader - 1]!);
    const target = leaderStatus?.commitIndex ?? 0;
    const restartAt = now();
    cluster.start(killed);
    log(`restarted replica ${killed}; catching up to slot ${target}`);
    let caughtUpMs: number | null = null;
    let startSlot: number | null = null;
    while (now() - restartAt < 15_000 && !interrupted) {
      const st = await fetchStatus(cluster.endpoints[killed - 1]!, 300);
      if (st) {
        startSlot ??= st.appliedIndex;
        log(`replica ${killed} applied ${st.appliedIndex}/${target}`);
        if (st.appliedIndex >= target) {
          caughtUpMs = now() - restartAt;
          break;
        }
      }
      await sleep(20);
    }
    log(caughtUpMs === null ? `replica ${killed} did not catch up` : `replica ${killed} caught up in ${ms(caughtUpMs)}`);
    phase = 'load';
    await until(1);
    running = false;
    await Promise.all(workers);
    const loadMs = now() - loadStart;
    clearInterval(ticker);
    bar?.update(100, { phase: 'done     ', ops: stats.ops, rate: Math.round((stats.ops * 1000) / loadMs), leader: currentLeader ?? 'none', note });
    bar?.stop();

    // ---------------------------------------------------------------- verify
    say(`verifying ${acked.size} acknowledged writes with linearizable reads...`);
    const verify = { checked: 0, ok: 0, missing: 0, wrong: 0, errors: 0 };
    const entries = [...acked];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < entries.length && !interrupted) {
          const [key, value] = entries[next++]!;
          verify.checked++;
          try {
            const a = await client.call('GET', `/v1/kv/${encodeURIComponent(key)}`, undefined, [404]);
            if (a.status === 404) verify.missing++;
            else if (a.body.toString('utf8') === value) verify.ok++;
            else verify.wrong++;
          } catch {
            verify.errors++;
          }
        }
      }),
    );
    // Every replica, the restarted one included, converges to the same number of keys.
    let replicasAgree = false;
    let stateDigests: DemoSummary['stateDigests'] = [];
    const agreeDeadline = now() + 10_000;
    while (!replicasAgree && now() < agreeDeadline) {
      const sts = await Promise.all(cluster.endpoints.map((e) => fetchStatus(e)));
      replicasAgree = sts.every((s) => s !== null && s.kv.keys === sts[0]!.kv.keys && s.appliedIndex === sts[0]!.appliedIndex);
      stateDigests = sts.flatMap((s) => (s?.stateDigest ? [{ id: s.id, ...s.stateDigest }] : []));
      if (!replicasAgree) await sleep(50);
    }
    const digestsDiffer = stateDigests.some((d) => d.differ.length > 0);
    const bytesOnDisk: Record<string, number> = {};
    for (const r of cluster.replicas) bytesOnDisk[`replica ${r.id}`] = diskUsage(r.dataDir);
    const q = (p: number) => hist.getValueAtPercentile(p) / 1000;
    const summary: DemoSummary = {
      ok: verify.ok === acked.size && verify.checked === acked.size && stats.readMismatches === 0 && newLeader !== null && replicasAgree && !digestsDiffer,
      durationS: loadMs / 1000,
      ops: stats.ops,
      opsPerS: Math.round((stats.ops * 1000) / loadMs),
      writesAcked: acked.size,
      reads: stats.reads,
      readMismatches: stats.readMismatches,
      unknownOutcomes: stats.unknown,
      failedCertain: stats.failedCertain,
      latencyMs: { p50: q(50), p99: q(99), p999: q(99.9), max: hist.maxValue / 1000 },
      killedLeader: killed,
      newLeader,
      leaderlessMs,
      writesResumedMs: firstAckAfterKill === null ? null : firstAckAfterKill - killAt,
      catchUp: { slots: Math.max(0, target - (startSlot ?? 0)), ms: caughtUpMs },
      bytesOnDisk,
      verify,
      replicasAgree,
      stateDigests,
      dataDir,
    };
    hist.destroy();
    if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else {
      say('');
      say(
        table(
          ['METRIC', 'VALUE'],
          [
            ['workload', `${summary.durationS.toFixed(1)} s, ${concurrency} in flight, 70% PUT / 30% GET over HTTP`],
            ['operations', `${summary.ops} (${summary.writesAcked} writes acknowledged, ${summary.reads} reads)`],
            ['throughput', `${summary.opsPerS} ops/s`],
            ['latency p50 / p99 / p999', `${ms(summary.latencyMs.p50)} / ${ms(summary.latencyMs.p99)} / ${ms(summary.latencyMs.p999)} (max ${ms(summary.latencyMs.max)})`],
            ['leader killed (SIGKILL)', `replica ${killed}`],
            ['no leader for', leaderlessMs === null ? 'never re-elected!' : `${ms(leaderlessMs)} (replica ${newLeader} took over)`],
            ['writes resumed after', summary.writesResumedMs === null ? '-' : ms(summary.writesResumedMs)],
            ['restarted replica caught up', caughtUpMs === null ? 'no' : `${summary.catchUp.slots} slots in ${ms(caughtUpMs)}`],
            ['unknown outcomes (504/dropped)', String(summary.unknownOutcomes)],
            ['certain failures (503/refused)', String(summary.failedCertain)],
            ['state digests', stateDigests.length === 0 ? 'none made yet' : stateDigests.map((d) => `replica ${d.id}: ${digestText(d)}`).join('; ')],
            ...Object.entries(bytesOnDisk).map(([k, v]): [string, string] => [`bytes on disk, ${k}`, bytes(v)]),
          ],
        ),
      );
      say('');
      const verdict = summary.ok ? 'PASS' : 'FAIL';
      say(
        `verification: ${verdict}: ${verify.ok}/${acked.size} acknowledged writes read back` +
          (verify.missing + verify.wrong + verify.errors > 0 ? ` (${verify.missing} missing, ${verify.wrong} wrong, ${verify.errors} errors)` : '') +
          `; ${stats.readMismatches} stale reads during the run; replicas ${replicasAgree ? 'agree' : 'DISAGREE'} on the applied state` +
          (digestsDiffer ? '; their state digests DIFFER' : ''),
      );
    }
    return summary;
  } finally {
    client.close();
    bar?.stop();
    if (!interrupted) {
      await cluster.stopAll(3_000);
      if (removeData) rmSync(dataDir, { recursive: true, force: true });
      else if (!o.json) say(`data kept in ${dataDir}`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
