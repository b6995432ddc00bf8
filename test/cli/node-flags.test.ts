// The V8 flags replicas start with: the shebang and the cluster launcher give the same ones, this
// node accepts them, and a caller's own value of a flag replaces ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { REPLICA_NODE_FLAGS, replicaNodeArgs } from '../../src/cli/node-flags.js';

const MAIN_TS = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

test('the synod shebang runs node with exactly the replica flags', () => {
  const shebang = readFileSync(MAIN_TS, 'utf8').split('\n')[0]!;
  assert.equal(shebang, `#!/usr/bin/env -S node ${REPLICA_NODE_FLAGS.join(' ')}`);
});

test('this node accepts the replica flags (a removed flag would stop every replica from starting)', () => {
  const r = spawnSync(process.execPath, [...REPLICA_NODE_FLAGS, '-e', 'process.exit(7)'], { encoding: 'utf8' });
  assert.equal(r.status, 7, r.stderr);
});

test('replicaNodeArgs: our flags first, extra flags after, and an extra flag of the same name replaces ours', () => {
  assert.deepEqual(replicaNodeArgs([]), [...REPLICA_NODE_FLAGS]);
  assert.deepEqual(replicaNodeArgs(['--cpu-prof']), [...REPLICA_NODE_FLAGS, '--cpu-prof']);
  assert.deepEqual(replicaNodeArgs(['--initial-old-space-size=256']), ['--initial-old-space-size=256']);
});
