// generateDevCerts: validation, a clear error without openssl, CA reuse, key file modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertError, generateDevCerts } from '../../src/security/certs.js';
import { hasOpenssl } from './openssl.js';

test('invalid options and a missing openssl give a CertError that says what to do', async () => {
  const dir = join(tmpdir(), 'synod-certs-never-created');
  await assert.rejects(generateDevCerts({ dir, replicaIds: [], clusterId: 'c' }), (e: unknown) => e instanceof CertError && /at least one replica/.test(e.message));
  await assert.rejects(generateDevCerts({ dir, replicaIds: [0], clusterId: 'c' }), CertError);
  await assert.rejects(generateDevCerts({ dir, replicaIds: [1], clusterId: '' }), CertError);
  await assert.rejects(generateDevCerts({ dir, replicaIds: [1], clusterId: 'c', hosts: ['a b'] }), CertError);
  await assert.rejects(generateDevCerts({ dir, replicaIds: [1], clusterId: 'c', clientNames: ['../x'] }), CertError);
  await assert.rejects(generateDevCerts({ dir, replicaIds: [1], clusterId: 'c', openssl: '/nonexistent/openssl' }), (e: unknown) => e instanceof CertError && /was not found.*Install OpenSSL/.test(e.message));
});

test('the CA is reused and existing certificates kept; keys are private', { skip: hasOpenssl ? false : 'openssl not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-certs-'));
  try {
    const first = await generateDevCerts({ dir, replicaIds: [1], clusterId: 'c', clientNames: [] });
    assert.equal(first.written.length, 4);
    const second = await generateDevCerts({ dir, replicaIds: [1, 2], clusterId: 'c', clientNames: [] });
    assert.deepEqual(second.written, [join(dir, 'replica-2.crt'), join(dir, 'replica-2.key')]);
    for (const key of ['ca.key', 'replica-1.key', 'replica-2.key']) assert.equal(statSync(join(dir, key)).mode & 0o777, 0o600, key);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
