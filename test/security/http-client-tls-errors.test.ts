// HttpKvClient over HTTPS: a TLS error is a certain failure only when the server cannot have
// run the request (the handshake did not complete, or the server refused the client's
// certificate). A damaged record after the request went out leaves its outcome unknown.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import { generateDevCerts } from '../../src/security/certs.js';
import { hasOpenssl } from './openssl.js';

setContracts(true);

describe('HttpKvClient: a TLS record damaged after the request was sent', { skip: hasOpenssl ? false : 'openssl not installed' }, () => {
  let dir: string;
  let server: net.Server;
  let endpoint: string;
  let ca: Buffer;
  /** Requests the server read (other than opening a session). */
  let writesSeen = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'synod-tls-errors-'));
    const certs = await generateDevCerts({ dir, replicaIds: [1], clusterId: 'tlserr', clientNames: [] });
    const cert = await readFile(certs.replicas.get(1)!.cert);
    const key = await readFile(certs.replicas.get(1)!.key);
    ca = await readFile(certs.ca.cert);
    // Answers POST /v1/sessions; after any other request, bytes that are no valid TLS record
    // (a damaged record: a middlebox, a bit flip) go straight onto the TCP connection.
    server = net.createServer((raw) => {
      raw.on('error', () => {});
      const t = new tls.TLSSocket(raw, { isServer: true, cert, key });
      t.on('error', () => {});
      t.on('data', (chunk: Buffer) => {
        if (chunk.toString('latin1').startsWith('POST /v1/sessions')) {
          const body = '{"session":9}';
          t.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
          return;
        }
        writesSeen++;
        raw.write(Buffer.concat([Buffer.from([23, 3, 3, 0, 32]), Buffer.alloc(32, 7)]));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  test('call(): an unknown outcome (504), not "certainly not applied", and the write is not sent again', async () => {
    writesSeen = 0;
    const c = new HttpKvClient({ endpoints: [endpoint], tls: { ca }, timeoutMs: 500 });
    try {
      const e = await c.call('PUT', '/v1/kv/k', 'v').then(
        () => assert.fail('answered'),
        (x: unknown) => x,
      );
      assert.ok(e instanceof HttpStatusError, String(e));
      assert.equal(e.certain, false, `certain=${e.certain}: ${e.message}`);
      assert.equal(e.status, 504);
      assert.equal(writesSeen, 1, 'a try that may have run is not retried without a session');
    } finally {
      c.close();
    }
  });

  test('write() with a session: retried under the same seq, then reported as maybe applied', async () => {
    writesSeen = 0;
    const c = new HttpKvClient({ endpoints: [endpoint], tls: { ca }, timeoutMs: 500, sessions: true });
    try {
      const e = await c.write('PUT', '/v1/kv/k', 'v').then(
        () => assert.fail('answered'),
        (x: unknown) => x,
      );
      assert.ok(e instanceof HttpStatusError, String(e));
      assert.equal(e.maybeApplied, true, `maybeApplied=${e.maybeApplied}, status ${e.status}: ${e.message}`);
      assert.ok(writesSeen >= 1);
    } finally {
      c.close();
    }
  });
});
