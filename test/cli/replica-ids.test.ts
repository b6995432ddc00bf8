// `synod start` takes the replica ids the library takes (1..MAX_REPLICA_ID), in --id and in every
// ID=HOST:PORT list, and refuses others with a message naming the range. (It took only 1..255
// while SynodReplica, the codec and `synod certs` took 1..1023.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveStartSettings } from '../../src/cli/start.js';
import { parseIdMap, UsageError } from '../../src/cli/config.js';
import { MAX_REPLICA_ID } from '../../src/core/ballot.js';

test('--id and --initial-cluster take 1..MAX_REPLICA_ID, as the library does', () => {
  assert.equal(MAX_REPLICA_ID, 1023);
  const s = resolveStartSettings({ id: '1023', initialCluster: '1=127.0.0.1:7001,300=127.0.0.1:7002,1023=127.0.0.1:7003', http: '127.0.0.1:8001', data: '/tmp/unused' }, {});
  assert.equal(s.id, 1023);
  assert.deepEqual([...parseIdMap('256=127.0.0.1:1,1023=127.0.0.1:2', '--initial-http').keys()], [256, 1023]);
  for (const bad of ['0', '1024', '2.5', 'x']) {
    assert.throws(() => resolveStartSettings({ id: bad, initialCluster: '1=127.0.0.1:7001', http: '127.0.0.1:8001', data: '/tmp/unused' }, {}), (e: unknown) => e instanceof UsageError && /--id must be an integer 1\.\.1023/.test(e.message));
    assert.throws(() => parseIdMap(`${bad}=127.0.0.1:7001`, '--initial-cluster'), (e: unknown) => e instanceof UsageError && /replica id must be an integer 1\.\.1023/.test(e.message));
  }
});
