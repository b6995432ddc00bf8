// HttpKvClient's answers are bounded in bytes as well as in time: a server (or, without TLS, a man
// in the middle) sending an endless body must not make the client hold it all. The default bound
// stays above the largest answer a cluster with default limits gives. And the endpoints that 307
// redirects add are bounded, as KvClient's NOT_LEADER hints are.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { setContracts } from '../../src/core/contracts.js';
import { ANSWER_BYTES_MAX_DEFAULT, HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import { VALUE_BYTES_MAX_DEFAULT } from '../../src/kv/codec.js';
import { LEARNED_ENDPOINTS_MAX_DEFAULT } from '../../src/kv/client.js';
import { inprocCluster, listening, settle, type InprocCluster } from './helpers.js';

setContracts(true);

/**
 * A server (raw TCP) that answers each request 200 with a body that never ends: chunked, or
 * announced by a Content-Length of 1 TB. It writes as fast as the client reads.
 */
async function endlessServer(framing: 'chunked' | 'length') {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.once('data', () => {
      s.write(framing === 'chunked' ? 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n' : 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000000000\r\n\r\n');
      const piece = Buffer.alloc(16 * 1024, 0x20);
      const chunk = framing === 'chunked' ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
      const pump = () => {
        while (!s.destroyed && s.write(chunk));
        if (!s.destroyed) s.once('drain', pump);
      };
      pump();
    });
  });
  return listening(server, sockets, 'http://');
}

const ANSWER_BYTES_MAX = 256 * 1024;

for (const framing of ['chunked', 'length'] as const) {
  describe(`HttpKvClient against an endless ${framing === 'chunked' ? 'chunked body' : 'body announced by Content-Length'}`, () => {
    let server: Awaited<ReturnType<typeof endlessServer>>;
    before(async () => {
      server = await endlessServer(framing);
    });
    after(async () => {
      await server.close();
    });

    for (const [method, path] of [['PUT', '/v1/kv/k'], ['GET', '/v1/kv/k']] as const) {
      test(`${method}: fails past answerBytesMax (${ANSWER_BYTES_MAX} bytes) as an unknown outcome, long before requestTimeoutMs`, async () => {
        const c = new HttpKvClient({ endpoints: [server.endpoint], timeoutMs: 1_000, requestTimeoutMs: 8_000, answerBytesMax: ANSWER_BYTES_MAX });
        try {
          const r = await settle(c.call(method, path, method === 'PUT' ? 'v' : undefined), 6_000);
          assert.ok(!r.pending, `call() still pending after ${Math.round(r.ms)} ms`);
          assert.ok(r.error instanceof HttpStatusError, `HttpStatusError, got ${String(r.error ?? r.value)}`);
          assert.equal(r.error.code, 'SYNOD_ANSWER_TOO_LARGE', r.error.message);
          // The request was sent and its answer not taken: a write may have run.
          assert.equal(r.error.status, 504);
          assert.equal(r.error.certain, false);
          assert.match(r.error.message, /answerBytesMax/);
          assert.ok(r.ms < 3_000, `settled after ${Math.round(r.ms)} ms`);
        } finally {
          c.close();
        }
      });
    }
  });
}

test('answerBytesMax must be a positive integer', () => {
  for (const answerBytesMax of [0, -1, 1.5, NaN]) assert.throws(() => new HttpKvClient({ endpoints: ['127.0.0.1:1'], answerBytesMax }), RangeError);
});

describe('the default answerBytesMax and the largest answers of a cluster with default limits', () => {
  let c: InprocCluster;
  before(async () => {
    c = await inprocCluster(1);
    await c.leader();
  });
  after(async () => {
    await c.close();
  });

  test('a value of valueBytesMax, and a scan page of such values JSON-escaped to 6 bytes a byte, are read whole', async () => {
    const endpoint = `http://127.0.0.1:${c.http.get(1)!.port}`;
    const client = new HttpKvClient({ endpoints: [endpoint] });
    try {
      // 0x01 bytes: valid UTF-8 that JSON writes as \u0001, the most a byte can grow in a scan's answer.
      const value = Buffer.alloc(VALUE_BYTES_MAX_DEFAULT, 0x01);
      for (const key of ['big-a', 'big-b']) await client.call('PUT', `/v1/kv/${key}`, value);
      const get = await client.call('GET', '/v1/kv/big-a');
      assert.equal(get.body.length, VALUE_BYTES_MAX_DEFAULT);
      const scan = await client.call('GET', '/v1/scan?prefix=big-&limit=10');
      const page = JSON.parse(scan.body.toString('utf8')) as { entries: unknown[] };
      assert.equal(page.entries.length, 2, 'both values in one page (the scan byte limit is two of the largest entries)');
      assert.ok(scan.body.length > 12 * VALUE_BYTES_MAX_DEFAULT, `the page is ${scan.body.length} bytes`);
      assert.ok(scan.body.length * 4 < ANSWER_BYTES_MAX_DEFAULT, `the default (${ANSWER_BYTES_MAX_DEFAULT}) is over 4x the largest page (${scan.body.length})`);
    } finally {
      client.close();
    }
  });
});

describe('HttpKvClient: endpoints learned from 307 redirects', () => {
  // LISTENERS servers, each answering 307 to the next one (round robin): every call follows
  // MAX_REDIRECTS of them, then counts the run as a redirect loop (certain) and goes on.
  const LISTENERS = 20;
  const servers: http.Server[] = [];
  const origins: string[] = [];
  let redirects = 0;
  before(async () => {
    for (let i = 0; i < LISTENERS; i++) {
      const server = http.createServer((req, res) => {
        req.resume();
        redirects++;
        res.writeHead(307, { location: `${origins[redirects % LISTENERS]}${req.url}`, 'content-length': 0 });
        res.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      servers.push(server);
      origins.push(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    }
  });
  after(async () => {
    await Promise.all(servers.map((x) => new Promise<void>((r) => x.close(() => r()))));
  });

  test(`redirects naming ever new origins: the configured endpoints stay, at most ${LEARNED_ENDPOINTS_MAX_DEFAULT} others`, async () => {
    const c = new HttpKvClient({ endpoints: [origins[0]!], timeoutMs: 1 });
    try {
      for (let i = 0; i < 10; i++) await assert.rejects(c.call('GET', '/v1/kv/k'), (e: unknown) => e instanceof HttpStatusError && e.code === 'SYNOD_REDIRECT_LOOP');
      assert.equal(c.endpoints[0], origins[0], 'the configured endpoint stays first');
      assert.ok(c.endpoints.length <= 1 + LEARNED_ENDPOINTS_MAX_DEFAULT, `the endpoint list grew to ${c.endpoints.length} (${LISTENERS} origins named)`);
      assert.equal(new Set(c.endpoints).size, c.endpoints.length, 'no origin twice');
    } finally {
      c.close();
    }
  });
});
