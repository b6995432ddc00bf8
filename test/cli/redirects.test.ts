// The HTTP client and a 307 loop: a "replica" that always redirects (to itself, or two that point
// at each other: crossed leader hints, a wrong --initial-http) made the client follow redirects
// forever, without pause and past --timeout (~2,500 requests/s until killed). A 307 means the
// request was not executed, so a run of them is a certain failure: retried like a 503 until the
// deadline, then reported as not applied (exit 3), also for writes.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpKvClient, HttpStatusError, MAX_REDIRECTS } from '../../src/kv/http-client.js';
import { fakeServer, synod, type FakeServer } from './helpers.js';

describe('redirect loops', () => {
  let loop: FakeServer;
  before(async () => {
    loop = await fakeServer((req, res, self) => {
      res.writeHead(307, { location: `${self}${req.url}` });
      res.end();
    });
  });
  after(() => loop.close());

  test('synod get/put against a replica that always redirects to itself: exit 3 within --timeout, a bounded number of requests', { timeout: 60_000 }, async () => {
    for (const args of [['get', 'a'], ['put', 'a', 'b'], ['put', '--exactly-once', 'a', 'b']]) {
      const before = loop.requests.length;
      const r = await synod([...args, '--endpoints', loop.url, '--timeout', '1000'], { timeoutMs: 10_000 });
      const sent = loop.requests.length - before;
      assert.equal(r.code, 3, `${args.join(' ')}: exit ${r.code} after ${r.ms} ms and ${sent} requests; stderr: ${r.stderr}`);
      assert.match(r.stderr, /not applied: \d+ redirects in a row .*not executed/);
      assert.ok(r.ms < 8_000, `${args.join(' ')} took ${r.ms} ms with --timeout 1000`);
      assert.ok(sent < 200, `${args.join(' ')} sent ${sent} requests in ${r.ms} ms`);
    }
  });

  test('the client: two replicas redirecting to each other fail certain (not maybeApplied), also for session writes', { timeout: 20_000 }, async () => {
    let other = '';
    const a = await fakeServer((req, res) => {
      res.writeHead(307, { location: `${other}${req.url}` });
      res.end();
    });
    const b = await fakeServer((req, res) => {
      res.writeHead(307, { location: `${a.url}${req.url}` });
      res.end();
    });
    other = b.url;
    const c = new HttpKvClient({ endpoints: [a.url], timeoutMs: 300 });
    const s = new HttpKvClient({ endpoints: [a.url], timeoutMs: 300, sessions: true });
    try {
      const started = Date.now();
      const e = await c.call('GET', '/v1/kv/x').then(() => null, (x: unknown) => x);
      assert.ok(e instanceof HttpStatusError, String(e));
      assert.equal(e.code, 'SYNOD_REDIRECT_LOOP');
      assert.equal(e.certain, true);
      assert.equal(e.maybeApplied, false);
      assert.ok(Date.now() - started < 3_000);
      const w = await s.write('PUT', '/v1/kv/x', 'v').then(() => null, (x: unknown) => x);
      assert.ok(w instanceof HttpStatusError, String(w));
      assert.equal(w.certain, true);
      assert.equal(w.maybeApplied, false);
      // Each try follows MAX_REDIRECTS hops, then pauses before the next.
      assert.ok(a.requests.length + b.requests.length < 20 * (MAX_REDIRECTS + 1), `${a.requests.length + b.requests.length} requests`);
    } finally {
      c.close();
      s.close();
      await a.close();
      await b.close();
    }
  });

  test('a redirect to the leader is still followed; a 307 without Location is a certain failure', { timeout: 20_000 }, async () => {
    const leader = await fakeServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(`leader saw ${req.url}`);
    });
    const follower = await fakeServer((req, res) => {
      res.writeHead(307, { location: `${leader.url}${req.url}` });
      res.end();
    });
    const bare = await fakeServer((_req, res) => {
      res.writeHead(307);
      res.end();
    });
    try {
      const c = new HttpKvClient({ endpoints: [follower.url], timeoutMs: 1_000 });
      assert.equal((await c.call('GET', '/v1/kv/k')).body.toString(), 'leader saw /v1/kv/k');
      c.close();
      const n = new HttpKvClient({ endpoints: [bare.url], timeoutMs: 200 });
      const e = await n.call('GET', '/v1/kv/k').then(() => null, (x: unknown) => x);
      n.close();
      assert.ok(e instanceof HttpStatusError && e.code === 'SYNOD_BAD_REDIRECT' && e.certain, String(e));
    } finally {
      await Promise.all([leader.close(), follower.close(), bare.close()]);
    }
  });
});
