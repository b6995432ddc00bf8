// KvClient's time limits against servers that accept a connection and then say nothing (a frozen
// replica process: the kernel completes its TCP handshakes), and its errors once closed. An
// operation settles near its own timeoutMs (the write's rule: an attempt is waited for at most
// 1 s beyond what is left of it), whatever attemptTimeoutMs, TLS or a token ask for.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { setContracts } from '../../src/core/contracts.js';
import { KvClient, KvOutcomeUnknownError, KvUnavailableError } from '../../src/kv/client.js';
import { decodeRequest, encodeResponse, encodeSessionIdBody, KIND_REGISTER, ST_OK } from '../../src/kv/protocol.js';
import { FrameDecoder } from '../../src/transport/frame.js';
import { oneNode } from '../security/one-node.js';
import { listening, settle } from './helpers.js';

setContracts(true);

/** A TCP server that accepts and never writes a byte. */
async function silentServer() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  return listening(server, sockets);
}

const unavailable = (e: unknown) => e instanceof KvUnavailableError && e.certain;

describe('KvClient against a server that accepts and never answers', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  before(async () => {
    silent = await silentServer();
  });
  after(async () => {
    await silent.close();
  });

  test('a READ never answered fails near timeoutMs (1 s), not at attemptTimeoutMs (5 s) + 1 s', async () => {
    const kv = new KvClient({ endpoints: [silent.endpoint], timeoutMs: 1_000 });
    try {
      const r = await settle(kv.get('k'), 10_000);
      assert.ok(unavailable(r.error), `KvUnavailableError, got ${r.pending ? 'still pending' : String(r.error ?? r.value)}`);
      assert.ok(r.ms < 2_500, `get() settled after ${Math.round(r.ms)} ms with timeoutMs 1000`);
      const w = await settle(new Promise<Error | null>((resolve) => kv.getWith(new TextEncoder().encode('k'), 'linearizable', (e) => resolve(e))), 10_000);
      assert.ok(unavailable(w.value), `getWith: KvUnavailableError, got ${w.pending ? 'still pending' : String(w.value)}`);
      assert.ok(w.ms < 2_500, `getWith() settled after ${Math.round(w.ms)} ms with timeoutMs 1000`);
    } finally {
      kv.close();
    }
  });

  test('TLS: a TCP connection whose handshake never completes fails the write near timeoutMs, certainly not applied (it waited forever)', async () => {
    const kv = new KvClient({ endpoints: [silent.endpoint], timeoutMs: 1_000, tls: {} });
    try {
      const r = await settle(kv.put('k', 'v'), 6_000);
      assert.ok(!r.pending, `put() still pending after ${Math.round(r.ms)} ms with timeoutMs 1000`);
      assert.ok(unavailable(r.error), `KvUnavailableError, got ${String(r.error ?? r.value)}`);
      assert.match((r.error as Error).message, /TLS handshake/);
      assert.ok(r.ms < 2_500, `put() settled after ${Math.round(r.ms)} ms with timeoutMs 1000`);
    } finally {
      kv.close();
    }
  });

  test('a token: an AUTH frame never answered fails the write near timeoutMs (it took the 5 s AUTH limit)', async () => {
    const kv = new KvClient({ endpoints: [silent.endpoint], timeoutMs: 1_000, token: 'secret' });
    try {
      const r = await settle(kv.put('k', 'v'), 10_000);
      assert.ok(unavailable(r.error), `KvUnavailableError, got ${r.pending ? 'still pending' : String(r.error ?? r.value)}`);
      assert.match((r.error as Error).message, /AUTH/);
      assert.ok(r.ms < 2_500, `put() settled after ${Math.round(r.ms)} ms with timeoutMs 1000`);
    } finally {
      kv.close();
    }
  });
});

describe('KvClient with a frozen replica first in its endpoints', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  let n: Awaited<ReturnType<typeof oneNode>>;
  before(async () => {
    silent = await silentServer();
    n = await oneNode({});
  });
  after(async () => {
    await silent.close();
    await n?.close();
  });

  test('a connection not set up within attemptTimeoutMs is given up and the next endpoint serves the write', async () => {
    // The node has no tokens: it answers AUTH with OK. The frozen endpoint never answers it.
    const kv = new KvClient({ endpoints: [silent.endpoint, `${n.binary.host}:${n.binary.port}`], timeoutMs: 3_000, attemptTimeoutMs: 500, token: 'secret' });
    try {
      const r = await settle(kv.put('k', 'v'), 10_000);
      assert.ok(!r.pending && r.error === undefined, `the write succeeded through the second endpoint, got ${r.pending ? 'still pending' : String(r.error)}`);
      assert.equal(new TextDecoder().decode((await kv.get('k'))!), 'v');
    } finally {
      kv.close();
    }
  });

  test('a write after close() is certainly not applied (KvUnavailableError), also once a session exists', async () => {
    const kv = new KvClient({ endpoints: [`${n.binary.host}:${n.binary.port}`], timeoutMs: 3_000 });
    await kv.put('before', 'x');
    assert.ok(kv.clientId > 0);
    kv.close();
    await assert.rejects(kv.put('after', 'y'), (e: unknown) => unavailable(e) && /closed/.test((e as Error).message));
    const cb = await new Promise<Error | null>((resolve) => kv.putWith(new TextEncoder().encode('after'), new TextEncoder().encode('y'), resolve));
    assert.ok(unavailable(cb), `putWith: KvUnavailableError, got ${String(cb)}`);
    await assert.rejects(kv.get('before'), unavailable);
  });
});

test('a write in flight at close() stays an unknown outcome (it was sent)', async () => {
  // Answers REGISTER, never a WRITE.
  const server = net.createServer((s) => {
    const decoder = new FrameDecoder(1 << 20);
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (p) => {
        const r = decodeRequest(p.slice());
        if (r.kind === KIND_REGISTER) s.write(encodeResponse(ST_OK, r.requestId, encodeSessionIdBody(5)));
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kv = new KvClient({ endpoints: [`127.0.0.1:${(server.address() as net.AddressInfo).port}`], timeoutMs: 5_000 });
  try {
    const pending = kv.put('k', 'v');
    while (kv.clientId === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // the WRITE has gone out
    kv.close();
    await assert.rejects(pending, (e: unknown) => e instanceof KvOutcomeUnknownError && !e.certain);
  } finally {
    kv.close();
    server.close();
  }
});
