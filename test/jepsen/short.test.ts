// The short black-box fault run of `npm test`: 3 `synod start` processes, 6 clients, about 35 s
// of kills, pauses, partitions, membership changes and disk faults, then every check of the long
// run (linearizability, no lost acknowledged write, equal final states). About 50 s of wall time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finishReport, RUN_DEFAULTS, runJepsen, type RunOptions } from './run.js';

test('black-box: kills, pauses, partitions, membership changes and disk faults of a 3-replica cluster leave a linearizable history and no lost write', { timeout: 180_000 }, async () => {
  const seed = Number(process.env.SYNOD_JEPSEN_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const o: RunOptions = {
    ...RUN_DEFAULTS,
    seed,
    timeMs: 35_000,
    kinds: ['kill', 'pause', 'partition', 'members', 'disk'],
    quietMsMin: 1_000,
    quietMsMax: 2_000,
    faultMsMin: 2_000,
    faultMsMax: 4_000,
    log: (line) => console.log(line),
    command: `SYNOD_JEPSEN_SEED=${seed} node scripts/run-tests.mjs jepsen/short (or: npm run jepsen -- --time 35 --nemesis kill,pause,partition,members,disk --seed ${seed})`,
  };
  const report = await runJepsen(o);
  finishReport(report, o);
  assert.deepEqual(report.failures, [], `black-box run failed (seed ${seed}); output kept in ${report.dir}`);
  assert.equal(report.linearizability.verdict, 'linearizable');
  // The run did what it says: every fault kind fired and the clients got work done.
  for (const kind of o.kinds) assert.ok((report.faultCounts[kind] ?? 0) >= 1, `no ${kind} fault was injected`);
  assert.ok(report.ops.ok > 200, `only ${report.ops.ok} ops succeeded`);
  for (const [kind, ok] of Object.entries(report.okByClient)) assert.ok(ok > 20, `only ${ok} ops of the ${kind} clients succeeded`);
  assert.ok(report.scans.ok >= 5 && report.scans.reads >= report.scans.ok, `scans: ${JSON.stringify(report.scans)}`);
  assert.ok(report.ledger.acked > 20, `only ${report.ledger.acked} ledger writes were acknowledged`);
});
