// Mistakes in a client command's own input are usage errors (exit 2) naming the flag, found before
// anything is sent. Before: a bad --endpoints entry ("127.0.0.1:abc", "http://[bad") printed a bare
// "error: Invalid URL" and exited 1, "--endpoints ," exited 1, a token with a space exited 1 (a
// RangeError from the client), and an https:// endpoint without --ca was retried until --timeout
// and reported as "not applied" (exit 3). --answer-max-bytes (HttpKvClient's answerBytesMax) is
// checked the same way.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeEndpoint } from '../../src/kv/http-client.js';
import { synod } from './helpers.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'synod-client-usage-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('bad --endpoints, SYNOD_ENDPOINTS, tokens and https without --ca: exit 2 at once, naming the flag', { timeout: 60_000 }, async () => {
  const spaced = join(dir, 'token-with-space');
  writeFileSync(spaced, '# tokens\n\nabc def\n');
  const cases: Array<{ args: string[]; env?: Record<string, string>; err: RegExp }> = [
    { args: ['get', 'a', '--endpoints', '127.0.0.1:abc'], err: /^error: --endpoints: endpoint "127\.0\.0\.1:abc" is not a URL or HOST:PORT/ },
    { args: ['get', 'a', '--endpoints', 'http://[bad'], err: /^error: --endpoints: endpoint "http:\/\/\[bad" is not a URL or HOST:PORT/ },
    { args: ['put', 'a', 'b', '--endpoints', 'http://127.0.0.1:1,ftp://127.0.0.1:2'], err: /^error: --endpoints: endpoint "ftp:\/\/127\.0\.0\.1:2": the scheme must be http:\/\/ or https:\/\// },
    { args: ['get', 'a', '--endpoints', ','], err: /^error: --endpoints lists no address/ },
    { args: ['get', 'a', '--endpoints', ' , '], err: /^error: --endpoints lists no address/ },
    { args: ['get', 'a'], env: { SYNOD_ENDPOINTS: '127.0.0.1:abc' }, err: /^error: SYNOD_ENDPOINTS: endpoint "127\.0\.0\.1:abc"/ },
    { args: ['get', 'a', '--endpoints', '127.0.0.1:1', '--token-file', spaced], err: /^error: --token-file: .*token-with-space: the token must be 1\.\.4096 printable ASCII characters without spaces/ },
    { args: ['get', 'a', '--endpoints', '127.0.0.1:1'], env: { SYNOD_TOKEN: 'abc def' }, err: /^error: SYNOD_TOKEN: the token must be/ },
    { args: ['get', 'a', '--endpoints', '127.0.0.1:1'], env: { SYNOD_TOKEN_FILE: spaced }, err: /^error: SYNOD_TOKEN_FILE: / },
    { args: ['member', 'list', '--endpoints', 'https://127.0.0.1:1', '--timeout', '5000'], err: /^error: --endpoints: https:\/\/127\.0\.0\.1:1 is HTTPS: pass the cluster CA with --ca FILE/ },
    { args: ['get', 'a', '--endpoints', '127.0.0.1:1', '--answer-max-bytes', '0'], err: /^error: --answer-max-bytes must be a positive integer, got 0/ },
    { args: ['scan', 'a', '--endpoints', '127.0.0.1:1', '--answer-max-bytes', '1e3x'], err: /^error: --answer-max-bytes must be a positive integer, got 1e3x/ },
  ];
  for (const c of cases) {
    const r = await synod(c.args, { env: c.env, timeoutMs: 15_000 });
    const what = `synod ${c.args.join(' ')} ${JSON.stringify(c.env ?? {})}: ${JSON.stringify(r)}`;
    assert.equal(r.code, 2, what);
    assert.match(r.stderr, c.err, what);
    assert.ok(r.ms < 4_000, `${what}: took ${r.ms} ms (nothing should be sent)`);
  }
  // Good input is still taken: HOST:PORT, a trailing comma, spaces around entries.
  const ok = await synod(['get', 'a', '--endpoints', ' 127.0.0.1:1 ,http://127.0.0.1:2,', '--timeout', '200']);
  assert.equal(ok.code, 3, JSON.stringify(ok));
  assert.match(ok.stderr, /not applied: .*cannot reach/);
});

test('normalizeEndpoint: origins for good input, a RangeError naming the endpoint otherwise', () => {
  assert.equal(normalizeEndpoint('127.0.0.1:8001'), 'http://127.0.0.1:8001');
  assert.equal(normalizeEndpoint(' localhost:8001 ', 'https'), 'https://localhost:8001');
  assert.equal(normalizeEndpoint('HTTP://127.0.0.1:8001/x'), 'http://127.0.0.1:8001');
  assert.equal(normalizeEndpoint('[::1]:8001'), 'http://[::1]:8001');
  for (const bad of ['127.0.0.1:abc', 'http://[bad', '', 'ftp://h:1', 'http://', '127.0.0.1:99999']) {
    assert.throws(() => normalizeEndpoint(bad), (e: unknown) => e instanceof RangeError && (bad === '' ? /empty/ : new RegExp(JSON.stringify(bad).replace(/[[\]\\/.*?]/g, '\\$&'))).test(e.message), bad);
  }
});
