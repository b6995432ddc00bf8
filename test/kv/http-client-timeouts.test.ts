// HttpKvClient's requestTimeoutMs bounds a whole try, not the silence between two bytes: a
// server that trickles its answer (a byte now and then) must not keep a CLI command waiting.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { setContracts } from '../../src/core/contracts.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import { listening, settle } from './helpers.js';

setContracts(true);

/**
 * A server (raw TCP, so that it can misbehave) that answers each connection's request with a
 * status line and then one line every `everyMs`, never finishing: header lines (`inHeaders`), or
 * body bytes after complete headers announcing a 1 MB body.
 */
async function tricklingServer(everyMs: number, inHeaders: boolean) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => {
      s.write(inHeaders ? 'HTTP/1.1 200 OK\r\n' : 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n');
      const t = setInterval(() => s.write(inHeaders ? 'x-wait: 1\r\n' : ' '), everyMs);
      s.on('close', () => clearInterval(t));
    });
  });
  return listening(server, sockets, 'http://');
}

for (const inHeaders of [false, true]) {
  const what = inHeaders ? 'a 200 whose header lines trickle' : 'a 200 whose body trickles';
  test(`${what}: the try ends at requestTimeoutMs as an unknown outcome (it never ended)`, async () => {
    const server = await tricklingServer(200, inHeaders);
    const c = new HttpKvClient({ endpoints: [server.endpoint], timeoutMs: 1_000, requestTimeoutMs: 1_000 });
    try {
      const r = await settle(c.call('PUT', '/v1/kv/k', 'v'), 6_000);
      assert.ok(!r.pending, `call() still pending after ${Math.round(r.ms)} ms with requestTimeoutMs 1000`);
      assert.ok(r.error instanceof HttpStatusError, `HttpStatusError, got ${String(r.error ?? r.value)}`);
      // Sent, answer not complete: the write may have run.
      assert.equal(r.error.status, 504);
      assert.equal(r.error.certain, false);
      assert.match(r.error.message, /within 1000 ms/);
      assert.ok(r.ms < 2_000, `settled after ${Math.round(r.ms)} ms`);
    } finally {
      c.close();
      await server.close();
    }
  });
}
