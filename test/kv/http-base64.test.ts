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
