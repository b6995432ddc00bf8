// `synod start --leader-snapshots adopt|own` (SYNOD_LEADER_SNAPSHOTS): whether a leader keeps a
// follower's snapshot as its own (ReplicaOptions.leaderAdoptsSnapshots) or makes its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveStartSettings } from '../../src/cli/start.js';
import { UsageError } from '../../src/cli/config.js';

const base = { id: '1', initialCluster: '1=127.0.0.1:7001', http: '127.0.0.1:8001', data: '/tmp/unused' };

test('--leader-snapshots: own by default, adopt by flag or environment, anything else refused', () => {
  assert.equal(resolveStartSettings(base, {}).leaderSnapshots, 'own');
  assert.equal(resolveStartSettings({ ...base, leaderSnapshots: 'adopt' }, {}).leaderSnapshots, 'adopt');
  assert.equal(resolveStartSettings(base, { SYNOD_LEADER_SNAPSHOTS: 'adopt' }).leaderSnapshots, 'adopt');
  for (const bad of ['yes', 'Own', '']) {
    assert.throws(() => resolveStartSettings({ ...base, leaderSnapshots: bad }, {}), (e: unknown) => e instanceof UsageError && /--leader-snapshots must be adopt or own/.test(e.message));
  }
});
