// The checker bites: a planted bug must be reported.
//
// 1. A client-side bug: GETs and scans go to a random replica with ?consistency=local (served
//    from that replica's state, no leader, no lease, no read-index) and are recorded as if they
//    were linearizable. Under partitions that cut a follower off, the follower keeps answering from
//    its frozen state while the majority moves on: the harness must call the history
//    non-linearizable and keep its output for a reader; the scans' reads alone must show it too.
// 2. A server-side bug: the `synod start` processes run with SYNOD_PLANTED_BUG=reply-before-persist
//    (an acceptor answers a 2a before its accept is durable), under a scripted fault sequence
//    that turns it into lost writes: the third replica is cut off, the follower's disk fills
//    (ENOSPC: it has acknowledged a batch it will never write), the leader is killed, the follower
//    restarts without the batch and forms a quorum with the third, which never saw it. The
//    harness must report acknowledged writes lost (the ledger) or a non-linearizable history.
//    The same sequence is harmless to a correct build: the follower never acknowledges what it
//    could not write, so the leader never acknowledges the client (the writes end indeterminate).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkHistory, historyFromJSON } from '../../src/check/index.js';
import type { FaultWindow } from './nemesis.js';
import { finishReport, RUN_DEFAULTS, runJepsen, type RunOptions, type ScriptContext } from './run.js';
import { sleep } from './workload.js';

test('black-box: reads served locally by any replica (a planted bug) are reported non-linearizable', { timeout: 180_000 }, async () => {
  const seed = Number(process.env.SYNOD_JEPSEN_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const o: RunOptions = {
    ...RUN_DEFAULTS,
    seed,
    timeMs: 20_000,
    kinds: ['partition'],
    quietMsMin: 1_000,
    quietMsMax: 1_500,
    faultMsMin: 3_000,
    faultMsMax: 5_000,
    readConsistency: 'local',
    scanShare: 0.2,
    log: (line) => console.log(line),
    command: `SYNOD_JEPSEN_SEED=${seed} node scripts/run-tests.mjs jepsen/bites`,
  };
  const report = await runJepsen(o);
  try {
    finishReport(report, { ...o, log: () => {} });
    assert.equal(report.ok, false, `the planted bug went unnoticed (seed ${seed})`);
    assert.equal(report.linearizability.verdict, 'not-linearizable', `verdict ${report.linearizability.verdict} (seed ${seed})`);
    assert.match(report.linearizability.explanation ?? '', /could not place/);
    // What a reader needs is kept: the history (which replays the verdict), the timeline, logs.
    for (const f of ['history.json', 'report.json', 'timeline.svg', 'replica-1.log']) assert.ok(existsSync(join(report.dir, f)), `${f} missing`);
    const checked = historyFromJSON(readFileSync(join(report.dir, 'history.json'), 'utf8'));
    assert.equal(checked.length, report.ops.total + report.scans.reads, 'the history file holds the ops and the scans\' reads');
    // The scans' reads alone (every GET left out) are enough to call it.
    const { firstReadId } = JSON.parse(readFileSync(join(report.dir, 'scans.json'), 'utf8')) as { firstReadId: number | null };
    assert.ok(firstReadId !== null && report.scans.reads > 0, `no scan completed (${JSON.stringify(report.scans)})`);
    const scansOnly = checked.filter((r) => r.op.f !== 'get' || r.id >= firstReadId);
    assert.equal(checkHistory(scansOnly).verdict, 'not-linearizable', `the scans alone looked linearizable (seed ${seed}, ${JSON.stringify(report.scans)})`);
    assert.match(readFileSync(join(report.dir, 'timeline.svg'), 'utf8'), /stroke="#000"/, 'the counterexample is not outlined in the timeline');
  } finally {
    rmSync(report.dir, { recursive: true, force: true });
  }
});

/** Cut off one follower, fill the other's disk, kill the leader, restart the follower, heal; twice. */
export async function lostUnsyncedAcceptScript(ctx: ScriptContext, rounds: number): Promise<FaultWindow[]> {
  const { cluster, network, nowMs, log } = ctx;
  const windows: FaultWindow[] = [];
  for (let round = 0; round < rounds; round++) {
    await sleep(2_000);
    const leader = await cluster.leader();
    if (leader === null) continue;
    const others = cluster.ids.filter((id) => id !== leader);
    const [follower, third] = [others[0]!, others[1]!];
    const startMs = nowMs();
    network.partition([third], [leader, follower]);
    cluster.setDiskFault(follower, 'ENOSPC');
    log(`script: replica ${third} cut off; replica ${follower}'s disk full; leader ${leader} still running`);
    await sleep(1_500);
    await cluster.kill(leader);
    cluster.setDiskFault(follower, null);
    await cluster.kill(follower);
    cluster.start(follower);
    network.heal();
    log(`script: leader ${leader} killed; replica ${follower} restarted; partition healed`);
    await sleep(4_000);
    cluster.start(leader);
    const detail = `cut off ${third}, disk full on ${follower}, kill leader ${leader}, restart ${follower}`;
    windows.push({ kind: 'disk', detail, startMs, endMs: nowMs() });
  }
  return windows;
}

test('black-box: a server built with reply-before-persist (a planted bug) loses acknowledged writes, and the harness says so', { timeout: 240_000 }, async () => {
  // The script exposes the bug with high probability, not certainty (a run where the cut-off
  // follower happened to persist in time shows nothing): up to three runs, each with its own
  // seed, and the harness must report the bug in one of them. A correct build passes the same
  // script (test/jepsen/short.test.ts runs the harness on the correct build).
  const first = Number(process.env.SYNOD_JEPSEN_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const unnoticed: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const seed = (first + attempt) % 2 ** 31;
    const o: RunOptions = {
      ...RUN_DEFAULTS,
      seed,
      timeMs: 17_000,
      kinds: [],
      ledgerShare: 0.3,
      plantedBug: 'reply-before-persist',
      script: (ctx) => lostUnsyncedAcceptScript(ctx, 2),
      log: (line) => console.log(line),
      command: `SYNOD_JEPSEN_SEED=${seed} node scripts/run-tests.mjs jepsen/bites`,
    };
    const report = await runJepsen(o);
    try {
      finishReport(report, { ...o, log: () => {} });
      console.log(report.failures.join('\n'));
      if (report.ok) {
        unnoticed.push(seed);
        continue;
      }
      // Caught as lost acknowledged writes, a non-linearizable history, or replicas whose states
      // differ: at the end (a replica lost what it had acknowledged; seen in CI as the only
      // symptom), or at a slot their state digests compared (seen in CI as the only symptom too,
      // session 23: 29 divergence alarms; a correct build never raises one, and the run fails on it).
      const lost = report.failures.some((f) => /acknowledged writes lost/.test(f));
      const diverged = report.failures.some((f) => /state differs/.test(f)) || report.stateDigests.divergences > 0;
      if (!(lost || diverged || report.linearizability.verdict === 'not-linearizable')) {
        // Seen once in CI (session 20, machine shared with other tests): the replicas never answered
        // again after the script. Show what they logged last, to tell a harness problem from a symptom.
        for (const id of [1, 2, 3]) {
          const path = join(report.dir, `replica-${id}.log`);
          if (existsSync(path)) console.log(`# replica ${id}, last lines:\n${readFileSync(path, 'utf8').trimEnd().split('\n').slice(-12).map((l) => `#   ${l.slice(0, 400)}`).join('\n')}`);
        }
      }
      assert.ok(lost || diverged || report.linearizability.verdict === 'not-linearizable', `neither lost writes, diverged states (at the end or in a digest) nor a non-linearizable history: ${report.failures.join('; ')}`);
      return;
    } finally {
      rmSync(report.dir, { recursive: true, force: true });
    }
  }
  assert.fail(`the planted bug went unnoticed in three runs (seeds ${unnoticed.join(', ')})`);
});
