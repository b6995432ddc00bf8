// HTTP API fuzzing: a 1-replica in-process KV node (test/kv/helpers.ts) receives raw HTTP/1.1
// requests with random methods, paths (percent-encodings valid and broken, long keys, query
// strings), headers and bodies. Every answer must be a well-formed HTTP response with a status in
// 200..599 and never 500 (500 is the handler's "unexpected exception" path), within a bounded
// time; afterwards a normal PUT/GET still works. Membership and leader-transfer routes are only
// fuzzed with GET: a random POST there would legitimately reconfigure the cluster.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import type { PeerAddress } from '../../src/runtime/api.js';
import { inprocCluster, request } from '../kv/helpers.js';

const ANSWER_MS_MAX = 5_000;

export interface HttpFuzz {
  property(): fc.IAsyncPropertyWithHooks<unknown>;
  /** Asserts that a normal write and read still succeed. */
  stillServing(): Promise<void>;
  /** Status codes seen, for the long pass's report. */
  statuses: Map<number, number>;
  close(): Promise<void>;
}

/** Sends raw bytes; resolves with the status of the first response (0 if none) once the server closes. */
function exchange(address: PeerAddress, head: string, body: Uint8Array): Promise<{ status: number; raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(address.port, address.host);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${ANSWER_MS_MAX} ms to ${JSON.stringify(head.slice(0, 200))}`));
    }, ANSWER_MS_MAX);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); // a reset after the answer is fine; no answer is checked below
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      // Skip interim answers (100 Continue for "Expect: 100-continue"): the final one counts.
      const finals = [...raw.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])).filter((status) => status >= 200);
      resolve({ status: raw.startsWith('HTTP/1.1 ') ? (finals[0] ?? 0) : 0, raw });
    });
    socket.write(head);
    socket.end(body);
  });
}

const pathChar = fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@%/?#'.split(''), '%2F', '%00', '%zz', '%C3%A9', '%C3%28', '%E2%82', '%F0%9F%98%80', '%', '%%', '%25', '..', '%2e%2e', '\u00e9', '\t');
const keyText = fc.oneof(fc.array(pathChar, { maxLength: 40 }).map((a) => a.join('')), fc.integer({ min: 1000, max: 3000 }).map((n) => 'k'.repeat(n)));
const query = fc.oneof(
  fc.constant(''),
  fc.record({ consistency: fc.constantFrom('linearizable', 'lease', 'local', 'bogus', ''), limit: fc.constantFrom('1', '0', '-1', '10001', 'NaN', '1e9', '99999999999999999999'), prefix: keyText }).map(
    (q) => `?consistency=${q.consistency}&limit=${q.limit}&prefix=${q.prefix.replace(/[#\s]/g, '')}`,
  ),
  fc.array(pathChar, { maxLength: 20 }).map((a) => `?${a.join('')}`),
);
const target = fc.oneof(
  fc.tuple(fc.constantFrom('/v1/kv/', '/v1/cas/'), keyText, query).map(([p, k, q]) => ({ path: `${p}${k}${q}`, safe: true })),
  fc.tuple(fc.constantFrom('/v1/scan', '/v1/status', '/metrics', '/', '/v1', '/v1/kv', '/v1/kv/', '//v1/kv/a', '/v1/unknown', '*'), query).map(([p, q]) => ({ path: `${p}${q}`, safe: true })),
  fc.tuple(fc.constantFrom('/v1/members', '/v1/leader/transfer'), query).map(([p, q]) => ({ path: `${p}${q}`, safe: false })),
);
const method = fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'BREW', 'get');
const headerName = fc.constantFrom('content-type', 'accept', 'x-synod-forwarded', 'transfer-encoding', 'expect', 'x-random', 'authorization', 'content-encoding', 'if-match');
const headerValue = fc.oneof(fc.constantFrom('application/json', 'text/plain', '1', 'chunked', '100-continue', 'gzip', '', 'Bearer x'), fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')));
const body = fc.oneof(
  fc.uint8Array({ maxLength: 256 }),
  fc.constantFrom('{"expected":"a","value":"b"}', '{"expected":null,"value":"x"}', '{"value":1}', '[]', 'null', '{"expected":"', '{"value":"\\ud800"}').map((s) => new TextEncoder().encode(s)),
);
const lengthMode = fc.constantFrom('exact', 'exact', 'exact', 'none', 'chunked', 'short', 'negative', 'huge');

export async function httpFuzzTarget(): Promise<HttpFuzz> {
  const cluster = await inprocCluster(1, { valueBytesMax: 4096 });
  const node = await cluster.leader();
  const address = cluster.http.get(node.replica.id)!;
  const statuses = new Map<number, number>();
  return {
    statuses,
    property: () =>
      fc.asyncProperty(method, target, fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }), body, lengthMode, async (m, t, headers, payload, mode) => {
        const verb = t.safe ? m : 'GET';
        let head = `${verb} ${t.path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n`;
        for (const [name, value] of headers) if (name !== 'transfer-encoding' || mode !== 'chunked') head += `${name}: ${value}\r\n`;
        let bytes: Uint8Array = payload;
        if (mode === 'exact') head += `Content-Length: ${payload.length}\r\n`;
        else if (mode === 'short') head += `Content-Length: ${Math.max(0, payload.length - 1)}\r\n`;
        else if (mode === 'negative') head += 'Content-Length: -5\r\n';
        else if (mode === 'huge') head += 'Content-Length: 99999999999\r\n';
        else if (mode === 'chunked') {
          head += 'Transfer-Encoding: chunked\r\n';
          bytes = Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n0\r\n\r\n')]);
        }
        head += '\r\n';
        const answer = await exchange(address, head, bytes);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        // A request the parser rejects may be cut without a response only if it is not HTTP at all;
        // every case generated here is parseable enough for an answer.
        // CONNECT is handed to the server's 'connect' event, which the KV server does not serve:
        // Node closes the socket without an answer. That is a refusal, not a failure.
        if (verb === 'CONNECT' && answer.status === 0) return;
        assert.ok(answer.status >= 200 && answer.status <= 599, `no well-formed answer to ${JSON.stringify(head.slice(0, 300))}: ${JSON.stringify(answer.raw.slice(0, 200))}`);
        assert.notEqual(answer.status, 500, `500 (unexpected exception) for ${JSON.stringify(head.slice(0, 300))}: ${answer.raw.slice(0, 300)}`);
      }),
    async stillServing() {
      const put = await request(address, 'PUT', '/v1/kv/fuzz-alive', 'yes');
      assert.equal(put.status, 200, put.body);
      const got = await request(address, 'GET', '/v1/kv/fuzz-alive');
      assert.equal(got.body, 'yes');
    },
    close: () => cluster.close(),
  };
}
