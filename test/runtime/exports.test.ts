// The package root exports what the docs import from 'synod' (package.json's "exports" has only
// ".", so a deep import such as 'synod/dist/src/security/certs.js' fails with
// ERR_PACKAGE_PATH_NOT_EXPORTED in an application).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as synod from '../../src/index.js';

test('the package root exports what docs/api.md, docs/kv.md and docs/security.md import from it', () => {
  const exported = new Set(Object.keys(synod));
  const documented = [
    'SynodReplica', 'KvClient', 'KvMachine', 'KvNode', 'replayDataDir', 'restoreDataDir',
    'HttpKvClient', 'HttpStatusError', // docs/kv.md (exactly-once over HTTP), docs/security.md (clients)
    'generateDevCerts', 'CertError', // docs/security.md, "Certificates": the same from code
    'TcpTransport', 'tlsSocketFactory', 'readTlsFiles', // docs/security.md, "Peer transport"
    'MemoryNetwork', // docs/api.md, the transport option (tests use the in-memory one)
    'SnapshotStore', // docs/operations.md, backups: a CRC check of a snapshot file
  ];
  for (const name of documented) assert.ok(exported.has(name), `'synod' exports ${name}`);
});
