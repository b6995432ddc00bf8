// The checker bites: a planted bug must be reported.
//
// The server has no test hook for a planted bug, so the bug is planted in the clients: GETs go
// to a random replica with ?consistency=local (served from that replica's state, no leader, no
// lease, no read-index) and are recorded as if they were linearizable. Under partitions that cut
// a follower off, the follower keeps answering from its frozen state while the majority moves
// on: the harness must call the history non-linearizable and keep its output for a reader.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { historyFromJSON } from '../../src/check/index.js';
import { finishReport, RUN_DEFAULTS, runJepsen, type RunOptions } from './run.js';

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
    assert.ok(historyFromJSON(readFileSync(join(report.dir, 'history.json'), 'utf8')).length === report.ops.total);
    assert.match(readFileSync(join(report.dir, 'timeline.svg'), 'utf8'), /stroke="#000"/, 'the counterexample is not outlined in the timeline');
  } finally {
    rmSync(report.dir, { recursive: true, force: true });
  }
});
