// Pipelined HTTP requests (docs/security.md, "Client-port limits"): httpPipelineMax,
// httpUnsentBytesMax and httpWriteStallTimeoutMs bound what one connection makes the server hold
// for a client that sends requests and does not read the answers; a client that reads gets every
// answer, in order.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { setContracts } from '../../src/core/contracts.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { request } from '../kv/helpers.js';
import { oneNode } from './one-node.js';

setContracts(true);

const VALUE_BYTES = 256 * 1024;
const GET_BIG = 'GET /v1/kv/big?consistency=local HTTP/1.1\r\nHost: x\r\n\r\n';

function connect(addr: PeerAddress): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(addr.port, addr.host, () => resolve(s));
    s.once('error', reject);
  });
}

/** The value of one sample line of /metrics. */
async function metric(addr: PeerAddress, name: string): Promise<number> {
  const m = (await request(addr, 'GET', '/metrics')).body;
  const line = m.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads `count` HTTP/1.1 responses (Content-Length bodies) from `s`: status and body length of each, in order. */
function readResponses(s: net.Socket, count: number): Promise<Array<{ status: number; bytes: number }>> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: Array<{ status: number; bytes: number }> = [];
    const timer = setTimeout(() => reject(new Error(`only ${out.length} of ${count} answers`)), 20_000);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        out.push({ status: Number(head.slice(9, 12)), bytes: length });
        buf = buf.subarray(end + 4 + length);
        if (out.length === count) {
          clearTimeout(timer);
          resolve(out);
        }
      }
    });
    s.once('error', reject);
  });
}

describe('HTTP pipelining on a one-replica node', () => {
  let n: Awaited<ReturnType<typeof oneNode>>;
  let served = 0;
  before(async () => {
    n = await oneNode({ httpPipelineMax: 4, httpUnsentBytesMax: 128 * 1024, httpWriteStallTimeoutMs: 1_500 });
    assert.equal((await request(n.http, 'PUT', '/v1/kv/big', Buffer.alloc(VALUE_BYTES, 0x62))).status, 200);
    // Every GET served reads the machine once.
    const machine = n.node.machine;
    const query = machine.query.bind(machine);
    machine.query = (q: Uint8Array) => {
      served++;
      return query(q);
    };
  });
  after(async () => n?.close());

  test('a client that pipelines GETs of a large value and does not read: only a few are served, the rest wait; its connection is closed after httpWriteStallTimeoutMs', async () => {
    const s = await connect(n.http);
    s.pause(); // never reads
    let closed = false;
    s.on('close', () => (closed = true));
    s.on('error', () => {});
    const before = served;
    s.write(GET_BIG.repeat(200));
    // Served: the 4 open at once, and as many more as the kernel's socket buffers take in (a few
    // MiB on loopback), never all 200 (each answer a copy of the 256 KiB value: 50 MiB).
    let last = -1;
    await until('the server to stop serving the connection', async () => {
      const now = served;
      const settled = now === last && now > before;
      last = now;
      if (!settled) await new Promise((r) => setTimeout(r, 300));
      return settled;
    });
    const servedHere = served - before;
    assert.ok(servedHere < 60, `${servedHere} of 200 pipelined GETs served for a client that does not read`);
    assert.ok((await metric(n.http, 'synod_http_requests_waiting')) >= 200 - servedHere - 1, 'the others wait');
    // What waits in this process: at most the open answers (httpPipelineMax of them).
    const unsent = await metric(n.http, 'synod_http_unsent_bytes');
    assert.ok(unsent > 0 && unsent <= 4 * (VALUE_BYTES + 1024), `unsent ${unsent}`);
    // Other connections are served meanwhile.
    assert.equal((await request(n.http, 'GET', '/v1/status')).status, 200);
    // No progress for httpWriteStallTimeoutMs: the server closes the connection and lets go of its answers.
    const t0 = Date.now();
    await until('the stalled connection to be closed', async () => (await metric(n.http, 'synod_http_stalled_connections_total')) === 1);
    assert.equal(await metric(n.http, 'synod_http_unsent_bytes'), 0);
    assert.equal(await metric(n.http, 'synod_http_requests_waiting'), 0);
    assert.equal(served - before, servedHere, 'the waiting requests were not served');
    assert.ok(Date.now() - t0 < 8_000);
    s.resume(); // now the client sees the close
    await until('the client to see the close', () => closed);
  });

  test('a client that reads gets every pipelined answer, in order: GETs of the large value, PUTs with bodies, a scan', async () => {
    const s = await connect(n.http);
    const put = (i: number) => `PUT /v1/kv/p${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`;
    const requests = [...Array.from({ length: 30 }, () => GET_BIG), ...Array.from({ length: 20 }, (_, i) => put(i)), 'GET /v1/kv/nope?consistency=local HTTP/1.1\r\nHost: x\r\n\r\n'];
    const answers = readResponses(s, requests.length);
    s.write(requests.join(''));
    const got = await answers;
    assert.deepEqual(
      got.map((a) => a.status),
      [...Array(30).fill(200), ...Array(20).fill(200), 404],
    );
    assert.ok(got.slice(0, 30).every((a) => a.bytes === VALUE_BYTES));
    s.destroy();
    const scan = await request(n.http, 'GET', '/v1/scan?prefix=p&limit=100');
    assert.equal(scan.json().entries.length, 20);
    assert.equal(await metric(n.http, 'synod_http_stalled_connections_total'), 1, 'a reading client is not taken for stalled');
  });

  test('malformed bytes behind pipelined requests: those are answered (no 400 taken for their answer), then the connection is closed', async () => {
    const s = await connect(n.http);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    // A PUT still being replicated, a GET waiting behind it, then bytes that are not HTTP.
    const put = 'PUT /v1/kv/piped HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello';
    s.write(put + 'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n' + 'BROKEN\x01 / HTTP/1.1\r\n\r\n');
    await closed;
    const text = Buffer.concat(chunks).toString('latin1');
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200], text.slice(0, 400));
    assert.match(text, /\{"ok":true\}/);
    assert.equal((await request(n.http, 'GET', '/v1/kv/piped')).body, 'hello');
    // With nothing pending, malformed bytes still get their 400.
    const alone = await connect(n.http);
    const answer = new Promise<string>((resolve) => {
      let t = '';
      alone.on('data', (c: Buffer) => (t += c.toString('latin1')));
      alone.once('close', () => resolve(t));
    });
    alone.write('BROKEN\x01 / HTTP/1.1\r\n\r\n');
    assert.match(await answer, /^HTTP\/1\.1 400 [\s\S]*SYNOD_BAD_HTTP/);
  });
});
