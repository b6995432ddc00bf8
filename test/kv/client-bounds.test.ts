// KvClient's bounds on what servers tell it: the endpoints a NOT_LEADER hint adds (a misbehaving
// or compromised server, or a flapping cluster, could otherwise grow the list without end), and
// the time a READ asks the server to wait (the client's own limit, not the server's default).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import { KvClient } from '../../src/kv/client.js';
import { encodeResult, OP_SCAN } from '../../src/kv/codec.js';
import { encodeNotLeader, encodeResponse, KIND_READ, ST_NOT_LEADER, ST_OK, ST_UNAVAILABLE } from '../../src/kv/protocol.js';
import { binaryStandIn } from './helpers.js';

setContracts(true);

/** The client's endpoint list (private: read here only to show its size). */
const endpointsOf = (kv: KvClient): string[] => (kv as unknown as { endpoints: string[] }).endpoints;

const NOT_FOUND = encodeResult({ kind: 'not-found' });

describe('KvClient: endpoints learned from NOT_LEADER hints', () => {
  // LISTENERS stand-ins, each answering READs with NOT_LEADER naming the next one (round robin), and
  // every third READ with OK, so that each get() follows two hints and then ends.
  const LISTENERS = 20;
  const standIns: Array<Awaited<ReturnType<typeof binaryStandIn>>> = [];
  let reads = 0;
  let junk: Awaited<ReturnType<typeof binaryStandIn>>;
  let junkHint = '';
  before(async () => {
    for (let i = 0; i < LISTENERS; i++) {
      standIns.push(
        await binaryStandIn((req, s) => {
          if (req.kind !== KIND_READ) return;
          reads++;
          if (reads % 3 === 0) return void s.write(encodeResponse(ST_OK, req.requestId, NOT_FOUND));
          s.write(encodeResponse(ST_NOT_LEADER, req.requestId, encodeNotLeader(2, standIns[reads % LISTENERS]!.endpoint)));
        }),
      );
    }
    junk = await binaryStandIn((req, s) => {
      if (req.kind === KIND_READ) s.write(encodeResponse(ST_NOT_LEADER, req.requestId, encodeNotLeader(2, junkHint)));
    });
  });
  after(async () => {
    await Promise.all([...standIns, junk].map((x) => x.close()));
  });

  test('hints naming ever new addresses: the list keeps the configured endpoints and at most learnedEndpointsMax (default 8) others', async () => {
    for (const [learnedEndpointsMax, expectedMax] of [[undefined, 8], [2, 2], [0, 0]] as const) {
      const configured = standIns[0]!.endpoint;
      const kv = new KvClient({ endpoints: [configured], timeoutMs: 3_000, ...(learnedEndpointsMax === undefined ? {} : { learnedEndpointsMax }) });
      try {
        for (let i = 0; i < 30; i++) await kv.get('k');
        const list = endpointsOf(kv);
        assert.equal(list[0], configured, 'the configured endpoint stays first');
        assert.ok(list.length <= 1 + expectedMax, `learnedEndpointsMax ${learnedEndpointsMax}: the endpoint list grew to ${list.length} (${LISTENERS} addresses named)`);
        assert.equal(new Set(list).size, list.length, 'no address twice');
      } finally {
        kv.close();
      }
    }
  });

  test('a hint that is not HOST:PORT (or longer than any host name) is not learned', async () => {
    for (const hint of ['no port', `${'h'.repeat(100_000)}:1`, '127.0.0.1:99999', '127.0.0.1:0']) {
      junkHint = hint;
      const kv = new KvClient({ endpoints: [junk.endpoint], timeoutMs: 300 });
      try {
        await assert.rejects(kv.get('k'));
        assert.deepEqual(endpointsOf(kv), [junk.endpoint], `hint ${JSON.stringify(hint.slice(0, 40))} was learned`);
      } finally {
        kv.close();
      }
    }
  });
});

describe('KvClient: the time a READ asks the server to wait', () => {
  // Records each READ's maxWaitMs; the first READ of a client is answered UNAVAILABLE (so that the
  // retry loop sends one too), the others OK.
  let waits: number[] = [];
  let server: Awaited<ReturnType<typeof binaryStandIn>>;
  before(async () => {
    server = await binaryStandIn((req, s) => {
      if (req.kind !== KIND_READ) return;
      waits.push(req.maxWaitMs);
      if (waits.length === 1) return void s.write(encodeResponse(ST_UNAVAILABLE, req.requestId, new TextEncoder().encode('not yet')));
      s.write(encodeResponse(ST_OK, req.requestId, req.query[0] === OP_SCAN ? encodeResult({ kind: 'scan', entries: [], more: false }) : NOT_FOUND));
    });
  });
  after(async () => {
    await server.close();
  });

  // 0 asks for the server's own default (5 s, its propose timeout): past a shorter client limit.
  for (const [timeoutMs, attemptTimeoutMs, bound] of [[1_000, undefined, 1_000], [10_000, 300, 300]] as const) {
    test(`timeoutMs ${timeoutMs}, attemptTimeoutMs ${attemptTimeoutMs ?? 'default'}: every READ asks for at most ${bound} ms (not 0, the server's 5 s)`, async () => {
      waits = [];
      const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs, ...(attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs }) });
      const getWith = (consistency: 'linearizable' | 'lease') =>
        new Promise<void>((resolve, reject) => kv.getWith(new TextEncoder().encode('k'), consistency, (e) => (e ? reject(e) : resolve())));
      try {
        await kv.get('k'); // no connection yet: the retry loop (UNAVAILABLE, then OK)
        await kv.get('k'); // the first try on the open connection
        await kv.get('k', { consistency: 'lease' });
        await kv.scan('p', 10);
        await getWith('linearizable'); // the frame written into the socket buffer
        await getWith('lease');
        assert.equal(waits.length, 7);
        for (const [i, w] of waits.entries()) assert.ok(w > 0 && w <= bound, `READ ${i + 1} asked the server to wait ${w} ms (${waits.join(', ')})`);
      } finally {
        kv.close();
      }
    });
  }
});

test('KvClient refuses time options out of range (they are sent as u32 milliseconds)', () => {
  for (const bad of [0, -1, Number.NaN, Infinity, 2 ** 32]) {
    assert.throws(() => new KvClient({ endpoints: ['127.0.0.1:1'], timeoutMs: bad }), /timeoutMs must be a number of milliseconds/, `timeoutMs ${bad}`);
    assert.throws(() => new KvClient({ endpoints: ['127.0.0.1:1'], attemptTimeoutMs: bad }), /attemptTimeoutMs must be a number of milliseconds/, `attemptTimeoutMs ${bad}`);
  }
  new KvClient({ endpoints: ['127.0.0.1:1'], timeoutMs: 1, attemptTimeoutMs: 2 ** 31 - 1 }).close();
});
