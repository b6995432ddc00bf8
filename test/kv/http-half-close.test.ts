// A client that half-closes its socket after the request (shutdown(SHUT_WR), socket.end(body))
// still gets its answer: a write being replicated is not aborted by the FIN. Node's default
// (httpAllowHalfOpen false) aborted it and closed, so the client never learned the outcome
// (found by the HTTP fuzzer, which sends every request this way).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { setContracts } from '../../src/core/contracts.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { inprocCluster, request, type InprocCluster } from './helpers.js';

setContracts(true);

function halfClosed(addr: PeerAddress, head: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(addr.port, addr.host);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no answer within 10 s'));
    }, 10_000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.write(head);
    s.end(body);
  });
}

describe('HTTP requests from a client that half-closes', () => {
  let cluster: InprocCluster;
  before(async () => {
    cluster = await inprocCluster(3);
  });
  after(async () => {
    await cluster?.close();
  });

  test('PUT and GET on the leader and through a forwarding follower are answered, and the writes took effect', { timeout: 60_000 }, async () => {
    const leader = await cluster.leader();
    const follower = cluster.nodes.find((n) => n !== leader)!;
    for (const [name, node] of [['leader', leader], ['follower', follower]] as const) {
      const addr = cluster.http.get(node.replica.id)!;
      for (let i = 0; i < 5; i++) {
        const put = await halfClosed(addr, `PUT /v1/kv/half-${name}-${i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n`, `v${i}`);
        assert.match(put, /^HTTP\/1\.1 200 /, `${name} PUT ${i}: ${put.slice(0, 200)}`);
        const get = await halfClosed(addr, `GET /v1/kv/half-${name}-${i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`, '');
        assert.match(get, /^HTTP\/1\.1 200 /, `${name} GET ${i}: ${get.slice(0, 200)}`);
        assert.ok(get.endsWith(`v${i}`), get);
      }
    }
    const check = await request(cluster.http.get(leader.replica.id)!, 'GET', '/v1/kv/half-follower-4');
    assert.equal(check.body, 'v4');
  });
});
