// Runs the documented example application (test/runtime/example-counter.ts, walked through in
// docs/api.md) so that the example cannot rot: it must start, replicate, read and close as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from './example-counter.js';

test('the docs example: a replicated counter on 3 TCP replicas reaches total 55 everywhere', async () => {
  const printed: string[] = [];
  const result = await main((line) => printed.push(line));
  const expected = 55; // 1 + 2 + ... + 10, each applied exactly once
  assert.equal(result.total, expected);
  assert.deepEqual(result.totals, [expected, expected, expected], 'every replica applied every increment once');
  assert.deepEqual(printed, result.lines);
  assert.match(printed[0]!, /^started 3 replicas on 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+$/);
  assert.match(printed[1]!, /^add 1 -> total 1 \(via replica [123]\)$/);
  assert.match(printed[2]!, /^add 10 -> total 55 \(via replica [123]\)$/);
  assert.match(printed[3]!, new RegExp(`^linearizable read on replica ${result.leader}: total 55 at slot \\d+$`));
  for (const id of [1, 2, 3]) assert.ok(printed.some((l) => new RegExp(`^replica ${id} \\((leader|follower|candidate)\\): total 55$`).test(l)), `replica ${id} printed its total`);
  assert.equal(printed.at(-1), 'closed');
});
