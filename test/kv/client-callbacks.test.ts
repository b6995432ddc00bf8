// KvClient.putWith's first try is encoded straight into the connection's socket buffer and its
// retries re-send the command from those bytes: against a scripted server, a retry after
// NOT_LEADER, OUTCOME_UNKNOWN or a lost connection carries the same (clientId, seq) and the same
// command bytes, even when the caller reuses its value buffer at once (as the load generator does)
// and when a tick's requests outgrow a slab.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { KvClient, KvOutcomeUnknownError, KvUnavailableError, PendingTable } from '../../src/kv/client.js';
import { encodeCommand, encodeResult } from '../../src/kv/codec.js';
import { decodeRequest, encodeNotLeader, encodeResponse, encodeSessionIdBody, KIND_REGISTER, KIND_WRITE, OVERLOADED_PREFIX, ST_NOT_LEADER, ST_OK, ST_OUTCOME_UNKNOWN, ST_UNAVAILABLE, type Request } from '../../src/kv/protocol.js';
import { FrameDecoder } from '../../src/transport/frame.js';

type Write = Extract<Request, { kind: typeof KIND_WRITE }>;
/** What the server does with a WRITE: answer it (status and body), drop the connection, or never answer. */
type Policy = (w: Write, tries: number) => { status: number; body: Uint8Array } | 'drop' | 'ignore';

const SESSION = 77;

/** A binary-protocol server that registers session 77 and answers WRITEs by `policy` (tries: of this seq so far). */
async function scriptedServer(policy: Policy) {
  const writes: Write[] = [];
  const tries = new Map<number, number>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    const decoder = new FrameDecoder(1 << 24);
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => {
      const answers: Uint8Array[] = [];
      let drop = false;
      decoder.push(chunk, (payload) => {
        if (drop) return;
        const r = decodeRequest(payload.slice());
        if (r.kind === KIND_REGISTER) return void answers.push(encodeResponse(ST_OK, r.requestId, encodeSessionIdBody(SESSION)));
        if (r.kind !== KIND_WRITE) throw new Error(`unexpected request kind ${r.kind}`);
        writes.push(r);
        const n = (tries.get(r.seq) ?? 0) + 1;
        tries.set(r.seq, n);
        const a = policy(r, n);
        if (a === 'drop') drop = true;
        else if (a !== 'ignore') answers.push(encodeResponse(a.status, r.requestId, a.body));
      });
      if (answers.length > 0) s.write(Buffer.concat(answers));
      if (drop) s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `127.0.0.1:${port}`,
    writes,
    connections: () => connections,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const OK = { status: ST_OK, body: encodeResult({ kind: 'ok' }) };
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 29 + seed) & 0xff);

/** putWith of `count` writes in one tick, the key and value buffers overwritten right after each call; resolves with the errors. */
async function putMany(kv: KvClient, count: number, valueBytes: number): Promise<{ errors: Array<Error | null>; commands: Uint8Array[] }> {
  const scratch = new Uint8Array(valueBytes);
  const key = new Uint8Array(8);
  const commands: Uint8Array[] = [];
  const done: Array<Promise<Error | null>> = [];
  for (let i = 0; i < count; i++) {
    key.set(new TextEncoder().encode(`key-${String(i).padStart(4, '0')}`));
    scratch.set(bytes(valueBytes, i));
    commands.push(encodeCommand({ op: 'put', key, value: scratch }));
    done.push(new Promise((resolve) => kv.putWith(key, scratch, resolve)));
    // The caller reuses its buffers (as the load generator does): the frame must already hold them.
    key.fill(0x2d);
    scratch.fill(0xab);
  }
  return { errors: await Promise.all(done), commands };
}

/** One session first (putWith's first try needs one), so that the writes below go out as first tries. */
async function withSession(kv: KvClient): Promise<void> {
  await kv.put('warm', 'up');
  assert.equal(kv.clientId, SESSION);
}

/** Every seq was tried `triesPerSeq` times, each try with the session, its seq and the command as sent first. */
function assertRetriesIdentical(writes: Write[], commands: Uint8Array[], firstSeq: number, triesPerSeq: number): void {
  const bySeq = new Map<number, Write[]>();
  for (const w of writes) if (w.seq >= firstSeq) bySeq.set(w.seq, [...(bySeq.get(w.seq) ?? []), w]);
  assert.equal(bySeq.size, commands.length, 'every write was sent');
  for (let i = 0; i < commands.length; i++) {
    const tries = bySeq.get(firstSeq + i)!;
    assert.equal(tries.length, triesPerSeq, `seq ${firstSeq + i}: tries`);
    for (const t of tries) {
      assert.equal(t.clientId, SESSION);
      assert.ok(t.floor >= 1 && t.floor <= t.seq, `floor ${t.floor} <= seq ${t.seq}`);
      assert.deepEqual(Buffer.from(t.command), Buffer.from(commands[i]!), `seq ${firstSeq + i}: the command of every try`);
    }
  }
}

test('putWith: NOT_LEADER on the first try, the retry carries the same (clientId, seq) and command bytes', async () => {
  const server = await scriptedServer((_, tries) => (tries === 1 ? { status: ST_NOT_LEADER, body: encodeNotLeader(null, '') } : OK));
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 10_000 });
  try {
    await withSession(kv);
    const firstSeq = 2; // after the warm-up write, seq 1
    // 1,000 writes of 100-byte values in one tick: ~150 KB, more than one slab of the socket buffer.
    const { errors, commands } = await putMany(kv, 1_000, 100);
    assert.deepEqual(errors, errors.map(() => null));
    assertRetriesIdentical(server.writes, commands, firstSeq, 2);
  } finally {
    kv.close();
    await server.close();
  }
});

test('putWith: OUTCOME_UNKNOWN, then a lost connection: retried under the same seq with the same bytes on a new connection', async () => {
  const server = await scriptedServer((_, tries) => (tries === 1 ? { status: ST_OUTCOME_UNKNOWN, body: new TextEncoder().encode('slow') } : tries === 2 ? 'drop' : OK));
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 10_000 });
  try {
    await withSession(kv);
    const firstSeq = 2; // after the warm-up write, seq 1
    const { errors, commands } = await putMany(kv, 3, 64);
    assert.deepEqual(errors, [null, null, null]);
    assert.ok(server.connections() >= 2, 'reconnected after the drop');
    // A dropped connection loses every write in flight on it: a seq may be tried more than three times.
    const bySeq = new Map<number, Write[]>();
    for (const w of server.writes) if (w.seq >= firstSeq) bySeq.set(w.seq, [...(bySeq.get(w.seq) ?? []), w]);
    assert.equal(bySeq.size, 3);
    for (let i = 0; i < 3; i++) {
      const tries = bySeq.get(firstSeq + i)!;
      assert.ok(tries.length >= 3, `seq ${firstSeq + i} tried ${tries.length} times`);
      for (const t of tries) {
        assert.equal(t.clientId, SESSION);
        assert.deepEqual(Buffer.from(t.command), Buffer.from(commands[i]!));
      }
    }
  } finally {
    kv.close();
    await server.close();
  }
});

test('putWith: UNAVAILABLE naming SYNOD_OVERLOADED (the leader\'s admission) is certain and retried on the same connection: the other writes in flight there are not lost', async () => {
  const overloaded = { status: ST_UNAVAILABLE, body: new TextEncoder().encode(`${OVERLOADED_PREFIX}overloaded: 2 commands wait to be proposed on replica 1 (proposalQueueCommandsMax 2)`) };
  const server = await scriptedServer((w, tries) => (tries === 1 && w.seq % 2 === 0 ? overloaded : OK));
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 10_000 });
  try {
    await withSession(kv);
    // Half of the writes are refused once; rotating away (as for other UNAVAILABLE answers) closed
    // the connection under the other half, and each of those became a lost try, retried again.
    const { errors, commands } = await putMany(kv, 200, 64);
    assert.deepEqual(errors, errors.map(() => null));
    assert.equal(server.connections(), 1, 'one connection throughout');
    const tries = new Map<number, number>();
    for (const w of server.writes) if (w.seq >= 2) tries.set(w.seq, (tries.get(w.seq) ?? 0) + 1);
    assert.equal(tries.size, commands.length);
    for (const [seq, n] of tries) assert.equal(n, seq % 2 === 0 ? 2 : 1, `seq ${seq}: tries`);
  } finally {
    kv.close();
    await server.close();
  }
});

test('put: a leader that stays overloaded until the deadline ends the write in KvUnavailableError (certain: never applied)', async () => {
  let refusing = false;
  const server = await scriptedServer(() => (refusing ? { status: ST_UNAVAILABLE, body: new TextEncoder().encode(`${OVERLOADED_PREFIX}overloaded`) } : OK));
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 500 });
  try {
    await withSession(kv);
    refusing = true;
    await assert.rejects(kv.put('k', 'v'), (e: unknown) => e instanceof KvUnavailableError && e.certain === true && /SYNOD_OVERLOADED/.test(e.message) && /the leader stayed overloaded/.test(e.message));
    assert.ok(server.writes.filter((w) => w.seq === 2).length >= 2, 'retried while time was left');
  } finally {
    kv.close();
    await server.close();
  }
});

test('putWith: the first tries of one tick leave in one frame each, in order, byte for byte', async () => {
  const server = await scriptedServer(() => OK);
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 10_000 });
  try {
    await withSession(kv);
    for (const valueBytes of [0, 24, 25, 64, 70_000]) {
      const from = server.writes.length;
      const { errors, commands } = await putMany(kv, 20, valueBytes);
      assert.deepEqual(errors, errors.map(() => null));
      const sent = server.writes.slice(from);
      assert.equal(sent.length, 20, 'one try each');
      sent.forEach((w, i) => {
        assert.equal(w.seq, from + 1 + i, 'in seq order (every earlier write tried once)');
        assert.deepEqual(Buffer.from(w.command), Buffer.from(commands[i]!));
      });
    }
  } finally {
    kv.close();
    await server.close();
  }
});

test('putWith: a first try never answered fails at the attempt timeout with KvOutcomeUnknownError once the write\'s deadline has passed', async () => {
  let answering = true;
  const server = await scriptedServer(() => (answering ? OK : 'ignore'));
  // Attempt limit: 100 ms, + 1 s for the answer; the write's own limit (1 s) has passed by then.
  const kv = new KvClient({ endpoints: [server.endpoint], timeoutMs: 1_000, attemptTimeoutMs: 100 });
  try {
    await withSession(kv);
    answering = false;
    const t0 = performance.now();
    const error = await new Promise<Error | null>((resolve) => kv.putWith(new TextEncoder().encode('k'), new Uint8Array(8), resolve));
    const ms = performance.now() - t0;
    assert.ok(error instanceof KvOutcomeUnknownError, `outcome unknown, got ${error}`);
    assert.ok(ms >= 1_050 && ms < 2_000, `failed after ${Math.round(ms)} ms (the attempt's 1.1 s, swept every 100 ms; then no retry: the 1 s deadline has passed)`);
    assert.equal(server.writes.filter((w) => w.seq === 2).length, 1, 'not retried after the deadline');
  } finally {
    kv.close();
    await server.close();
  }
});

test('property: PendingTable (the requests in flight by id) agrees with a Map, across the ring\'s wrap, slot collisions and ids near 2^32', () => {
  type Fake = { id: number; deadlineMs: number };
  const op = fc.oneof(
    fc.record({ kind: fc.constant('send' as const), count: fc.integer({ min: 1, max: 700 }), deadlineMs: fc.integer({ min: 0, max: 100 }) }),
    fc.record({ kind: fc.constant('answer' as const), back: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ kind: fc.constant('answerOldest' as const), count: fc.integer({ min: 1, max: 700 }) }),
    fc.record({ kind: fc.constant('sweep' as const), nowMs: fc.integer({ min: 0, max: 100 }) }),
    fc.record({ kind: fc.constant('close' as const) }),
  );
  fc.assert(
    fc.property(fc.constantFrom(1, 0xffffffff - 1500), fc.array(op, { maxLength: 25 }), (firstId, ops) => {
      const table = new PendingTable();
      const model = new Map<number, Fake>();
      let nextId = firstId;
      const take = (id: number) => {
        const got = table.take(id) as unknown as Fake | undefined;
        assert.equal(got, model.get(id), `take(${id})`);
        model.delete(id);
      };
      // A request that never ends (as the connection-level one with id 0): its slot collides every 1,024 ids.
      const forever: Fake = { id: 0, deadlineMs: Infinity };
      table.set(0, forever as never);
      model.set(0, forever);
      for (const o of ops) {
        if (o.kind === 'send') {
          for (let i = 0; i < o.count; i++) {
            const p: Fake = { id: nextId, deadlineMs: o.deadlineMs };
            table.set(nextId, p as never);
            model.set(nextId, p);
            nextId = (nextId % 0xffffffff) + 1;
          }
        } else if (o.kind === 'answer') take(nextId - 1 - o.back >= 1 ? nextId - 1 - o.back : 0xffffffff - o.back);
        else if (o.kind === 'answerOldest') for (const id of [...model.keys()].filter((x) => x !== 0).slice(0, o.count)) take(id);
        else {
          const taken = (o.kind === 'sweep' ? table.takeExpired(o.nowMs, nextId) : table.takeAll(nextId)) as unknown as Fake[];
          const expected = [...model.values()].filter((p) => o.kind === 'close' || p.deadlineMs <= o.nowMs);
          assert.deepEqual(new Set(taken), new Set(expected), o.kind);
          assert.equal(taken.length, expected.length, 'each once');
          for (const p of expected) model.delete(p.id);
        }
        assert.equal(table.size, model.size, 'size');
      }
    }),
    { numRuns: 300 },
  );
});

test('a malformed answer (a frame shorter than an answer header) closes the connection, not the process; the write goes through on the next one', { timeout: 20_000 }, async () => {
  let connections = 0;
  const server = net.createServer((s) => {
    const n = ++connections;
    const decoder = new FrameDecoder(1 << 24);
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => {
      decoder.push(chunk, (payload) => {
        const r = decodeRequest(payload.slice());
        if (r.kind === KIND_REGISTER) return void s.write(encodeResponse(ST_OK, r.requestId, encodeSessionIdBody(SESSION)));
        // First connection: a 3-byte frame where an answer belongs; then answers as a server should.
        if (n === 1) return void s.write(Uint8Array.of(0, 0, 0, 3, 1, 2, 3));
        s.write(encodeResponse(OK.status, r.requestId, OK.body));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = new KvClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 10_000 });
  try {
    await client.put(new TextEncoder().encode('k'), new TextEncoder().encode('v'));
    assert.ok(connections >= 2, `reconnected (${connections} connections)`);
  } finally {
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
