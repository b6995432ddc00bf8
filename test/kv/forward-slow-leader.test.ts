// A follower's forwards to a leader that does not answer (a stalled disk, an overloaded or frozen
// HTTP server whose Paxos side still leads): at most forwardSockets of them are sent at once and
// the rest wait in the follower's agent, each holding its client's body. Two ways that went
// wrong, both fixed in KvHttpServer.forward:
//  - a client whose connection was reset left its forward in place: sent ones kept a
//    connection to the leader, queued ones were still sent later, and the bodies stayed in memory,
//    so clients that time out and retry grew the queue without bound;
//  - the forward timeout was an idle timeout of the socket, armed only once a socket was free:
//    a forward queued behind others waited that long for a socket first, then that long again.
//
// Here the leader's HTTP address, as the followers know it, is a black hole (accepts, never
// answers), while the cluster itself is healthy: the follower keeps the same leader throughout.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { test } from 'node:test';
import type { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { inprocCluster, request } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Hole {
  address: PeerAddress;
  /** Connections open now. */
  open: () => number;
  /** Connections that have carried a request (any bytes). */
  used: () => number;
  close: () => void;
}

async function blackHole(): Promise<Hole> {
  const held = new Set<net.Socket>();
  let used = 0;
  const server = net.createServer((s) => {
    held.add(s);
    s.on('error', () => {});
    // Read (and drop) the requests: a socket that is not read never sees its peer close.
    s.once('data', () => used++);
    s.resume();
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as net.AddressInfo;
  return {
    address: { host: '127.0.0.1', port: a.port },
    open: () => held.size,
    used: () => used,
    close: () => {
      for (const s of held) s.destroy();
      server.close();
    },
  };
}

/**
 * Runs `body` on three in-process nodes (forwardTimeoutMs = proposeTimeoutMs + 2 s) once a write
 * through `follower` has gone through (it keeps a connection to the leader from it); with a hole,
 * the followers see the leader's HTTP address as the hole from then on. Closes everything after.
 */
async function withCluster(
  proposeTimeoutMs: number,
  connectionsPerAddressMax: number,
  withHole: boolean,
  body: (c: { nodes: KvNode[]; leaderId: number; follower: KvNode; hole: Hole }) => Promise<void>,
): Promise<void> {
  const hole = withHole ? await blackHole() : null;
  const c = await inprocCluster(3, { proposeTimeoutMs, clientLimits: { connectionsPerAddressMax } });
  try {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const deadline = Date.now() + 15_000;
    while ((await request(follower.http.address(), 'PUT', '/v1/kv/warm', 'x')).status !== 200) {
      assert.ok(Date.now() < deadline, 'no write through the follower');
      await sleep(20);
    }
    if (hole) c.http.set(leader.replica.id, hole.address);
    await body({ nodes: c.nodes, leaderId: leader.replica.id, follower, hole: hole! });
  } finally {
    hole?.close();
    await c.close();
  }
}

/** A PUT on its own connection; resolves with the status, or 0 if the connection broke. */
function put(at: PeerAddress, key: string, body: Buffer, sockets?: net.Socket[]): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: at.host, port: at.port, method: 'PUT', path: `/v1/kv/${key}`, agent: false, headers: { 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('socket', (s) => sockets?.push(s));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

test('a forward whose client connection was reset is dropped: no connection to the leader is held for it, and a queued one is never sent', { timeout: 60_000 }, async () => {
  // connectionsPerAddressMax 8: the follower forwards over at most 4 sockets at once (and takes
  // at most 8 client connections from this test's address).
  await withCluster(5_000, 8, true, async ({ follower, hole }) => {
    const clients: net.Socket[] = [];
    const body = Buffer.alloc(64 * 1024, 0x61);
    const answers = Array.from({ length: 7 }, (_, i) => put(follower.http.address(), `k${i}`, body, clients));
    const deadline = Date.now() + 5_000;
    while (hole.open() < 4 && Date.now() < deadline) await sleep(10);
    assert.equal(hole.open(), 4, 'the follower forwards over 4 sockets (connectionsPerAddressMax / 2)');
    await sleep(100); // the other 3 are queued in the follower
    // Every client gives up and its connection is reset (a killed client with unread data, a
    // load balancer). A plain close (FIN) reads as a half-close, which still wants its answer.
    assert.equal(clients.length, 7);
    for (const s of clients) s.resetAndDestroy();
    await Promise.all(answers);
    await sleep(500);
    assert.equal(hole.open(), 0, `connections to the leader still held for ${hole.open()} forwards whose clients left`);
    // Without the drop, the forward timeout (7 s) frees the sockets and the queued forwards are sent.
    await sleep(7_500);
    assert.equal(hole.used(), 4, `${hole.used() - 4} forwards were sent after their clients had left`);
  });
});

test('a forward queued behind others is answered within the forward timeout, not that long after it got a socket', { timeout: 60_000 }, async () => {
  // proposeTimeoutMs 1 s: forwardTimeoutMs 3 s. 4 forward sockets; 7 writes: 3 of them wait for a socket.
  await withCluster(1_000, 8, true, async ({ follower, hole }) => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 7 }, async (_, i) => {
        const status = await put(follower.http.address(), `q${i}`, Buffer.from('v'));
        return { status, ms: Date.now() - started };
      }),
    );
    const slowest = Math.max(...answers.map((a) => a.ms));
    for (const a of answers) assert.ok(a.status === 503 || a.status === 504, `a forward the leader never answered: ${a.status}`);
    // Sent ones time out as unknown (504, never 503); ones never sent are certainly not applied (503).
    assert.ok(answers.filter((a) => a.status === 504).length >= 4, JSON.stringify(answers));
    assert.ok(slowest < 4_500, `the last forward was answered after ${slowest} ms (forwardTimeoutMs 3000)`);
  });
});

test('a follower that shuts down answers its forwards still waiting for the leader (504 if sent, 503 if not) before it closes their connections', { timeout: 60_000 }, async () => {
  await withCluster(5_000, 8, true, async ({ follower, hole }) => {
    // 4 forward sockets: 4 writes are sent, 2 wait for a socket.
    const answers = Array.from({ length: 6 }, (_, i) => put(follower.http.address(), `s${i}`, Buffer.from('v')));
    const deadline = Date.now() + 5_000;
    while (hole.used() < 4 && Date.now() < deadline) await sleep(10);
    assert.equal(hole.used(), 4);
    await sleep(100);
    await follower.close(); // SIGTERM: "pending requests are answered 503 or 504" (docs/kv.md)
    const statuses = (await Promise.all(answers)).sort();
    assert.deepEqual(statuses, [503, 503, 504, 504, 504, 504], 'sent forwards are unknown (504), queued ones certainly not applied (503); 0 is a dropped connection');
  });
});

test("a leader's 429 to a follower's forward connection (its per-address limit, shared with other clients from that address) reaches the client as 503, not as the client's own 429", { timeout: 60_000 }, async () => {
  await withCluster(5_000, 4, false, async ({ nodes, leaderId, follower }) => {
    const held: net.Socket[] = [];
    try {
      const leader = nodes.find((n) => n.replica.id === leaderId)!;
      // Other clients on the follower's address hold every connection the leader allows it.
      for (let i = 0; i < 4; i++) {
        const s = net.connect(leader.http.address().port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        held.push(s);
      }
      await sleep(100);
      // The other follower: `follower` keeps a connection to the leader from the warm-up write.
      const other = nodes.find((n) => n !== leader && n !== follower)!;
      const a = await request(other.http.address(), 'PUT', '/v1/kv/refused', 'v');
      // The leader refused the follower's connection before reading the request: certainly not
      // applied. Relayed as is, the client read its own connection as over the limit, and took a
      // 4xx for a refusal of its request (HttpKvClient and the CLI do not retry a 429).
      assert.equal(a.status, 503, `${a.status} ${a.body}`);
      assert.equal(a.headers['retry-after'], '1');
      assert.match(a.json().error.message, /leader/);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
