// ?encoding=base64 on POST /v1/cas and GET /v1/scan: JSON strings carry text, so values and keys
// written as bytes that are not UTF-8 (the binary protocol, a raw PUT body) came back from a 409 or
// a scan page with U+FFFD in place of the bad bytes, and could not be compared-and-set or paged over
// through HTTP. With the parameter those fields are base64 (docs/kv.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { hostPort } from '../../src/transport/types.js';
import { inprocCluster, request } from './helpers.js';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const q = (bytes: Uint8Array) => encodeURIComponent(b64(bytes));

test('encoding=base64: scans list and page over keys and values that are not UTF-8; CAS compares and sets them', { timeout: 60_000 }, async () => {
  const c = await inprocCluster(3);
  const leader = await c.leader();
  const kv = new KvClient({ endpoints: [hostPort(c.binary.get(leader.replica.id)!)], timeoutMs: 10_000 });
  try {
    const prefix = new Uint8Array([0xff, 0x00]); // not UTF-8
    const keys = [new Uint8Array([0xff, 0x00, 0x01]), new Uint8Array([0xff, 0x00, 0x80, 0xfe])];
    const values = [new Uint8Array([0xc3, 0x28]), new Uint8Array([0x80, 0x81, 0x82])];
    for (let i = 0; i < keys.length; i++) await kv.put(keys[i]!, values[i]!);
    const http = leader.http.address();

    // Without the parameter the bytes cannot be named (the prefix must be UTF-8) nor read back exactly.
    const page1 = await request(http, 'GET', `/v1/scan?encoding=base64&limit=1&prefix=${q(prefix)}`);
    assert.equal(page1.status, 200, page1.body);
    assert.deepEqual(page1.json(), { entries: [{ key: b64(keys[0]!), value: b64(values[0]!) }], more: true, encoding: 'base64' });
    const page2 = await request(http, 'GET', `/v1/scan?encoding=base64&limit=1&prefix=${q(prefix)}&after=${q(keys[0]!)}`);
    assert.deepEqual(page2.json(), { entries: [{ key: b64(keys[1]!), value: b64(values[1]!) }], more: false, encoding: 'base64' });

    // CAS of a raw value under a UTF-8 key: 409 names the current value exactly, which then swaps.
    const raw = new Uint8Array([0xfe, 0xff, 0x00]);
    await kv.put('blob', raw);
    const miss = await request(http, 'POST', '/v1/cas/blob?encoding=base64', JSON.stringify({ expected: b64(new Uint8Array([1])), value: b64(new Uint8Array([2])) }));
    assert.equal(miss.status, 409, miss.body);
    assert.deepEqual(miss.json(), { current: b64(raw) });
    const swap = await request(http, 'POST', '/v1/cas/blob?encoding=base64', JSON.stringify({ expected: miss.json().current, value: b64(new Uint8Array([0x80])) }));
    assert.equal(swap.status, 200, swap.body);
    assert.deepEqual(await kv.get('blob'), new Uint8Array([0x80]));
    // The UTF-8 default, unchanged: the same 409 is lossy there (U+FFFD), as documented.
    const lossy = await request(http, 'POST', '/v1/cas/blob', JSON.stringify({ expected: 'x', value: 'y' }));
    assert.equal(lossy.status, 409);
    assert.equal(lossy.json().current, '\ufffd');

    // Bad input: a clear 400 naming the problem.
    const badB64 = await request(http, 'POST', '/v1/cas/blob?encoding=base64', JSON.stringify({ expected: null, value: 'not base64!' }));
    assert.equal(badB64.status, 400);
    assert.deepEqual(badB64.json().error, { code: 'SYNOD_BAD_BASE64', message: '"value" is not base64 (encoding=base64)' });
    const badPrefix = await request(http, 'GET', '/v1/scan?encoding=base64&prefix=%25%25');
    assert.equal(badPrefix.status, 400);
    assert.equal(badPrefix.json().error.message, '"prefix" is not base64 (encoding=base64)');
    const badEncoding = await request(http, 'GET', '/v1/scan?encoding=hex');
    assert.equal(badEncoding.status, 400);
    assert.equal(badEncoding.json().error.code, 'SYNOD_BAD_ENCODING');
  } finally {
    await kv.close();
    await c.close();
  }
});

// ?keyEncoding=base64 on /v1/kv/{key} and /v1/cas/{key}: the key in the path was UTF-8 text only,
// so a key that is not UTF-8 could be listed by a scan but not read, written, deleted or
// compared-and-set over HTTP. A parameter of its own, so that session 22's CAS calls with
// ?encoding=base64 keep their (UTF-8) keys.
test('keyEncoding=base64: keys that are not UTF-8 are read, written, deleted and compared-and-set over HTTP, also through a follower', { timeout: 60_000 }, async () => {
  const c = await inprocCluster(3);
  const leader = await c.leader();
  const follower = c.nodes.find((n) => n !== leader)!;
  const kv = new KvClient({ endpoints: [hostPort(c.binary.get(leader.replica.id)!)], timeoutMs: 10_000 });
  try {
    const key = new Uint8Array([0xff, 0xfe, 0x3f, 0xbf]); // not UTF-8; base64 "//4/vw==" holds "/" (as %2F in a path)
    const path = (route: string, bytes: Uint8Array, extra = '') => `/v1/${route}/${encodeURIComponent(b64(bytes))}?keyEncoding=base64${extra}`;
    const urlSafe = (bytes: Uint8Array) => `/v1/kv/${Buffer.from(bytes).toString('base64url')}?keyEncoding=base64`;
    for (const node of [leader, follower]) {
      const http = node.http.address();
      const put = await request(http, 'PUT', path('kv', key), 'v1');
      assert.equal(put.status, 200, put.body);
      assert.deepEqual(await kv.get(key), new TextEncoder().encode('v1'), 'the write landed under the raw bytes');
      const get = await request(http, 'GET', urlSafe(key)); // the URL-safe alphabet names it too
      assert.equal(get.status, 200, get.body);
      assert.equal(get.body, 'v1');
      const cas = await request(http, 'POST', path('cas', key, '&encoding=base64'), JSON.stringify({ expected: b64(new TextEncoder().encode('v1')), value: b64(new Uint8Array([0x80])) }));
      assert.equal(cas.status, 200, cas.body);
      assert.deepEqual(await kv.get(key), new Uint8Array([0x80]));
      const del = await request(http, 'DELETE', path('kv', key));
      assert.equal(del.status, 200, del.body);
      assert.deepEqual(del.json(), { ok: true, existed: true });
      assert.equal((await request(http, 'GET', path('kv', key))).status, 404);
    }
    // encoding=base64 alone leaves the path key UTF-8 (as in session 22).
    const http = leader.http.address();
    await kv.put('lock', 'a');
    const cas = await request(http, 'POST', '/v1/cas/lock?encoding=base64', JSON.stringify({ expected: b64(new TextEncoder().encode('a')), value: b64(new TextEncoder().encode('b')) }));
    assert.equal(cas.status, 200, cas.body);
    assert.deepEqual(await kv.get('lock'), new TextEncoder().encode('b'));
    // Bad input: a clear 400 naming the problem.
    const bad = await request(http, 'GET', '/v1/kv/not%20base64?keyEncoding=base64');
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json().error, { code: 'SYNOD_BAD_BASE64', message: 'the key in the path is not base64 (keyEncoding=base64)' });
    const empty = await request(http, 'GET', '/v1/kv/%3D%3D?keyEncoding=base64');
    assert.equal(empty.status, 400);
    assert.equal(empty.json().error.code, 'SYNOD_BAD_KEY');
    const unknown = await request(http, 'PUT', '/v1/kv/a?keyEncoding=hex', 'x');
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json().error.code, 'SYNOD_BAD_ENCODING');
    const long = await request(http, 'GET', `/v1/kv/${encodeURIComponent(b64(new Uint8Array(1025)))}?keyEncoding=base64`);
    assert.equal(long.status, 413);
  } finally {
    await kv.close();
    await c.close();
  }
});
