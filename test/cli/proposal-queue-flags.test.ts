// `synod start --proposal-queue-commands-max N --proposal-queue-bytes-max N` (and their
// SYNOD_PROPOSAL_QUEUE_* variables): the leader's admission limits (ReplicaOptions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveStartSettings } from '../../src/cli/start.js';
import { UsageError } from '../../src/cli/config.js';

const base = { id: '1', initialCluster: '1=127.0.0.1:7001', http: '127.0.0.1:8001', data: '/tmp/unused' };

test('--proposal-queue-commands-max / --proposal-queue-bytes-max: unset by default (the library defaults), positive integers by flag or environment', () => {
  const none = resolveStartSettings(base, {});
  assert.deepEqual([none.proposalQueueCommandsMax, none.proposalQueueBytesMax], [undefined, undefined]);
  const flags = resolveStartSettings({ ...base, proposalQueueCommandsMax: '5000', proposalQueueBytesMax: '1048576' }, {});
  assert.deepEqual([flags.proposalQueueCommandsMax, flags.proposalQueueBytesMax], [5000, 1048576]);
  const env = resolveStartSettings(base, { SYNOD_PROPOSAL_QUEUE_COMMANDS_MAX: '7', SYNOD_PROPOSAL_QUEUE_BYTES_MAX: '9' });
  assert.deepEqual([env.proposalQueueCommandsMax, env.proposalQueueBytesMax], [7, 9]);
  for (const bad of ['0', '-1', '1.5', 'lots']) {
    assert.throws(() => resolveStartSettings({ ...base, proposalQueueCommandsMax: bad }, {}), (e: unknown) => e instanceof UsageError && /--proposal-queue-commands-max must be a positive integer/.test(e.message));
    assert.throws(() => resolveStartSettings({ ...base, proposalQueueBytesMax: bad }, {}), (e: unknown) => e instanceof UsageError && /--proposal-queue-bytes-max must be a positive integer/.test(e.message));
  }
});
