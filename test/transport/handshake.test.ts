import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ConfigError,
  DEFAULT_TRANSPORT_OPTIONS,
  HANDSHAKE_MAGIC,
  HandshakeReader,
  encodeHello,
  encodeRefuse,
  encodeWelcome,
  negotiateVersion,
  parseHandshake,
  reconnectDelayMs,
  transportOptions,
} from '../../src/transport/index.js';

test('handshake: hello, welcome and refuse round-trip through random chunking', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 1023 }),
      fc.integer({ min: 1, max: 1023 }),
      fc.integer({ min: 1, max: 0xffff }),
      fc.uint8Array({ maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex'))),
      fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 65535 })).map(([host, port]) => ({ host, port }))),
      (clusterId, senderId, targetId, versionMin, trailer, cutSeeds, incarnation, address) => {
        const hello = { versionMin, versionMax: Math.min(0xffff, versionMin + 3), senderId, targetId, clusterId, incarnation, address };
        const bytes = new Uint8Array([...encodeHello(hello), ...trailer]);
        const cuts = [...new Set(cutSeeds.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const bounds = [0, ...cuts, bytes.length];
        const reader = new HandshakeReader();
        let done: { message: unknown; rest: Uint8Array[] } | null = null;
        for (let i = 0; i + 1 < bounds.length; i++) {
          const chunk = bytes.slice(bounds[i], bounds[i + 1]);
          if (done !== null) {
            done.rest.push(chunk);
            continue;
          }
          const result = reader.push(chunk);
          assert.notEqual(result.status, 'error');
          if (result.status === 'done') done = { message: result.message, rest: [result.rest] };
        }
        assert.ok(done !== null);
        assert.deepEqual(done.message, { kind: 'hello', ...hello });
        assert.deepEqual(Buffer.concat(done.rest), Buffer.from(trailer));
      },
    ),
    { numRuns: 200 },
  );
  const welcome = parseHandshake(encodeWelcome({ version: 7, acceptorId: 3 }));
  assert.deepEqual(welcome, { status: 'done', message: { kind: 'welcome', version: 7, acceptorId: 3 }, consumed: 11 });
  const refuse = parseHandshake(
    encodeRefuse({ code: 'SYNOD_TRANSPORT_VERSION_MISMATCH', versionMin: 2, versionMax: 4, message: 'no common version' }),
  );
  assert.equal(refuse.status, 'done');
  assert.deepEqual(refuse.status === 'done' && refuse.message, {
    kind: 'refuse',
    code: 'SYNOD_TRANSPORT_VERSION_MISMATCH',
    versionMin: 2,
    versionMax: 4,
    message: 'no common version',
  });
});

test('handshake: hello extensions: the incarnation is read, unknown types are skipped, overruns are refused', () => {
  const incarnation = '00112233445566778899aabbccddeeff';
  const base = encodeHello({ versionMin: 1, versionMax: 1, senderId: 2, targetId: 1, clusterId: 'c', incarnation });
  const parsed = parseHandshake(base);
  assert.equal(parsed.status === 'done' && parsed.message.kind === 'hello' && parsed.message.incarnation, incarnation);
  // A later version's extension (type 9, 3 bytes) before ours: skipped, ours still read.
  const plain = encodeHello({ versionMin: 1, versionMax: 1, senderId: 2, targetId: 1, clusterId: 'c' });
  const withUnknown = (extra: number[]) => {
    const body = [...plain.subarray(7), ...extra];
    return new Uint8Array([...plain.subarray(0, 5), body.length >> 8, body.length & 0xff, ...body]);
  };
  const ours = [...base.subarray(plain.length)];
  const skipped = parseHandshake(withUnknown([9, 3, 1, 2, 3, ...ours]));
  assert.equal(skipped.status === 'done' && skipped.message.kind === 'hello' && skipped.message.incarnation, incarnation);
  const none = parseHandshake(plain);
  assert.equal(none.status === 'done' && none.message.kind === 'hello' && none.message.incarnation, null);
  for (const bad of [[9], [9, 5, 1], [1, 4, 1, 2, 3, 4]]) {
    const r = parseHandshake(withUnknown(bad));
    assert.equal(r.status, 'error', `extension bytes ${bad.join(',')} are malformed`);
    assert.equal(r.status === 'error' && r.error.code, 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED');
  }
  assert.throws(() => encodeHello({ versionMin: 1, versionMax: 1, senderId: 2, targetId: 1, clusterId: 'c', incarnation: 'xyz' }), RangeError);
});

test('handshake: the address extension: read with the incarnation, left out when it cannot go, refused when malformed', () => {
  const incarnation = '00112233445566778899aabbccddeeff';
  const hello = (clusterId: string, address: { host: string; port: number } | null) => {
    const parsed = parseHandshake(encodeHello({ versionMin: 1, versionMax: 2, senderId: 2, targetId: 1, clusterId, incarnation, address }));
    assert.equal(parsed.status, 'done');
    return parsed.status === 'done' && parsed.message.kind === 'hello' ? parsed.message : assert.fail('not a hello');
  };
  assert.deepEqual(hello('c', { host: '::1', port: 7001 }).address, { host: '::1', port: 7001 });
  assert.equal(hello('c', { host: '::1', port: 7001 }).incarnation, incarnation);
  // A hint, never a reason to refuse to dial: an address that cannot be sent is left out.
  assert.equal(hello('c', { host: '', port: 7001 }).address, null);
  assert.equal(hello('c', { host: 'h', port: 0 }).address, null);
  assert.equal(hello('c', { host: 'h'.repeat(254), port: 1 }).address, null);
  // The longest cluster id with the incarnation leaves room for a host of 228 bytes in 512.
  const longest = 'x'.repeat(255);
  assert.deepEqual(hello(longest, { host: 'h'.repeat(225), port: 1 }).address, { host: 'h'.repeat(225), port: 1 });
  const tooLong = hello(longest, { host: 'h'.repeat(240), port: 1 });
  assert.equal(tooLong.address, null);
  assert.equal(tooLong.incarnation, incarnation);
  // Malformed: too short for a port and a host, port 0, host not utf-8.
  const plain = encodeHello({ versionMin: 1, versionMax: 1, senderId: 2, targetId: 1, clusterId: 'c' });
  const withExtension = (extra: number[]) => {
    const body = [...plain.subarray(7), ...extra];
    return new Uint8Array([...plain.subarray(0, 5), body.length >> 8, body.length & 0xff, ...body]);
  };
  for (const bad of [[2, 2, 0x1b, 0x59], [2, 3, 0, 0, 0x68], [2, 3, 0x1b, 0x59, 0xff]]) {
    const r = parseHandshake(withExtension(bad));
    assert.equal(r.status === 'error' && r.error.code, 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', `extension bytes ${bad.join(',')} are malformed`);
  }
  const ok = parseHandshake(withExtension([2, 3, 0x1b, 0x59, 0x68]));
  assert.deepEqual(ok.status === 'done' && ok.message.kind === 'hello' && ok.message.address, { host: 'h', port: 7001 });
});

test('handshake: versions agree on the highest common one, or none', () => {
  assert.equal(negotiateVersion(1, 1, 1, 1), 1);
  assert.equal(negotiateVersion(1, 2, 2, 3), 2); // mid-upgrade: old [1,2] meets new [2,3]
  assert.equal(negotiateVersion(1, 5, 3, 4), 4);
  assert.equal(negotiateVersion(2, 3, 1, 2), 2);
  assert.equal(negotiateVersion(1, 1, 2, 2), null);
  assert.equal(negotiateVersion(3, 4, 1, 2), null);
});

test('handshake: HTTP, TLS and garbage are refused at once with a reason that says so', () => {
  const http = parseHandshake(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(http.status, 'error');
  assert.equal(http.status === 'error' && http.error.code, 'SYNOD_TRANSPORT_NOT_A_PEER');
  assert.match(http.status === 'error' ? http.error.message : '', /received HTTP \("GET \/ HTTP\/1.1"\)/);
  const tls = parseHandshake(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00]));
  assert.match(tls.status === 'error' ? tls.error.message : '', /TLS/);
  // One wrong byte is enough to decide.
  const early = parseHandshake(new Uint8Array([0x00]));
  assert.equal(early.status === 'error' && early.error.code, 'SYNOD_TRANSPORT_NOT_A_PEER');
  // Oversized bodies and unknown kinds are malformed, never a large allocation.
  const big = new Uint8Array([...HANDSHAKE_MAGIC, 1, 0xff, 0xff]);
  assert.equal(parseHandshake(big).status === 'error' && (parseHandshake(big) as { error: { code: string } }).error.code, 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED');
  const unknownKind = new Uint8Array([...HANDSHAKE_MAGIC, 9, 0, 0]);
  assert.equal(parseHandshake(unknownKind).status, 'error');
});

test('handshake: parsing arbitrary bytes never throws', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 600 }), (withMagic, tail) => {
      const bytes = withMagic ? new Uint8Array([...HANDSHAKE_MAGIC, ...tail]) : tail;
      const result = parseHandshake(bytes);
      assert.ok(['more', 'error', 'done'].includes(result.status));
      const reader = new HandshakeReader();
      reader.push(bytes);
    }),
    { numRuns: 500 },
  );
});

test('options: defaults are the documented ones and bad values are refused', () => {
  const options = transportOptions({ replicaId: 1, clusterId: 'c' });
  assert.equal(options.frameBytesMax, 16 * 1024 * 1024);
  assert.equal(options.peerQueueBytesMax, 64 * 1024 * 1024);
  assert.equal(options.protocolVersionMin, 1);
  assert.equal(options.protocolVersionMax, 2);
  assert.equal(options.listenHost, '127.0.0.1');
  assert.equal(DEFAULT_TRANSPORT_OPTIONS.reconnectDelayMinMs, 50);
  assert.equal(DEFAULT_TRANSPORT_OPTIONS.reconnectDelayMaxMs, 5_000);
  assert.equal(transportOptions({ replicaId: 1, clusterId: 'c', frameBytesMax: undefined }).frameBytesMax, 16 * 1024 * 1024);
  const bad: Record<string, unknown>[] = [
    { replicaId: 0 },
    { replicaId: 1024 },
    { clusterId: '' },
    { clusterId: 'x'.repeat(256) },
    { frameBytesMax: 0 },
    { frameBytesMax: 1.5 },
    { frameBytesMax: 1024, peerQueueBytesMax: 1024 },
    { reconnectDelayMinMs: 100, reconnectDelayMaxMs: 50 },
    { protocolVersionMin: 2, protocolVersionMax: 1 },
    { protocolVersionMin: 0 },
    { protocolVersionMax: 70_000 },
    { listenPort: 70_000 },
    { connectTimeoutMs: 0 },
  ];
  for (const override of bad) {
    assert.throws(() => transportOptions({ replicaId: 1, clusterId: 'c', ...override }), ConfigError, JSON.stringify(override));
  }
});

test('backoff: exponential, capped, jittered by the injected random source', () => {
  const at = (attempt: number, r: number) => reconnectDelayMs(attempt, { reconnectDelayMinMs: 50, reconnectDelayMaxMs: 1_000, random: () => r });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 10, 60].map((n) => at(n, 0)), [25, 50, 100, 200, 400, 500, 500, 500]);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => at(n, 0.999999)), [50, 100, 200, 400, 800, 1_000]);
  assert.equal(at(0, NaN), 38); // a faulty source falls back to the middle, never NaN
  fc.assert(
    fc.property(fc.nat(100), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
      const delay = at(attempt, r);
      const step = Math.min(1_000, 50 * 2 ** attempt);
      assert.ok(delay >= Math.floor(step / 2) && delay <= step, `${delay} for step ${step}`);
    }),
  );
});
