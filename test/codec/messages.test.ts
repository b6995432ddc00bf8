import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Writer, varintSize } from '../../src/codec/buffer.js';
import { CodecError } from '../../src/codec/errors.js';
import { DEFAULT_DECODE_LIMITS, decodeLimits } from '../../src/codec/limits.js';
import {
  MESSAGE_BYTES_MIN,
  MESSAGE_FORMAT_VERSION,
  MESSAGE_TAGS,
  decodeMessage,
  encodeMessage,
  messageSize,
} from '../../src/codec/messages.js';
import { ConfigError } from '../../src/core/options.js';
import type { Command, Message } from '../../src/core/types.js';
import {
  assertCodecError,
  bodyOf,
  flipBit,
  message,
  messageByType,
  normalizeMessage,
  outcome,
  plain,
  seal,
} from './arbitraries.js';

const SEED = 0x5eed; // fixed so that the sampled corpora below are the same on every run

function varint(n: number): number[] {
  const writer = new Writer(varintSize(n, 'n', 0));
  writer.varint(n);
  return [...writer.finish()];
}

/** A sealed frame: version 1, tag, from=1, to=2, then `fields`. */
function frame(tag: number, ...fields: number[]): Uint8Array {
  return seal([MESSAGE_FORMAT_VERSION, tag, 1, 2, ...fields]);
}

/**
 * A decoded message must re-encode to exactly the bytes it came from (one encoding per message).
 * Encoded from a plain copy: a decoded batch keeps its bytes (DecodedBatch), which would make
 * this check pass whatever the encoder does.
 */
function assertCanonical(bytes: Uint8Array, decoded: Message): void {
  assert.deepEqual(encodeMessage(plain(decoded)), bytes);
}

function sampleMessages(count: number): Message[] {
  return fc.sample(message, { numRuns: count, seed: SEED });
}

// ---------------------------------------------------------------- round trips

test('every member of the Message union has a tag and an arbitrary', () => {
  assert.deepEqual(Object.keys(messageByType).sort(), Object.keys(MESSAGE_TAGS).sort());
  assert.equal(new Set(Object.values(MESSAGE_TAGS)).size, Object.keys(MESSAGE_TAGS).length);
});

for (const [type, arbitrary] of Object.entries(messageByType)) {
  test(`${type}: decode(encode(m)) equals m, and the size is exact`, () => {
    fc.assert(
      fc.property(arbitrary, (m) => {
        const bytes = encodeMessage(m);
        assert.equal(bytes.length, messageSize(m));
        assert.equal(bytes[0], MESSAGE_FORMAT_VERSION);
        assert.equal(bytes[1], MESSAGE_TAGS[m.type]);
        const decoded = decodeMessage(bytes);
        assert.deepStrictEqual(plain(decoded), normalizeMessage(m));
        assertCanonical(bytes, decoded);
      }),
      { numRuns: 400 },
    );
  });
}

test('decoding works on a view with a non-zero byteOffset', () => {
  const m: Message = { type: 'heartbeat', from: 3, to: 1, ballot: 1027, commitSlot: 99, round: 7 };
  const bytes = encodeMessage(m);
  const backing = new Uint8Array(bytes.length + 10);
  backing.set(bytes, 7);
  assert.deepStrictEqual(decodeMessage(backing.subarray(7, 7 + bytes.length)), m);
});

test('decoded payloads alias the input buffer (zero-copy)', () => {
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  const m: Message = {
    type: 'accept', from: 1, to: 2, ballot: 1025, slot: 10, commitSlot: 9,
    value: { kind: 'batch', commands: [{ clientId: 7, seq: 1, floor: 0, payload }] },
  };
  const bytes = encodeMessage(m);
  const decoded = decodeMessage(bytes);
  assert.equal(decoded.type, 'accept');
  if (decoded.type !== 'accept' || decoded.value.kind !== 'batch') return;
  const view = decoded.value.commands[0]!.payload;
  assert.deepEqual(view, payload);
  assert.equal(view.buffer, bytes.buffer);
  bytes[view.byteOffset] = 42; // overwriting the input changes the decoded payload: documented ownership
  assert.equal(view[0], 42);
});

test('an Accept of 1000 commands of 64 bytes round-trips; encoding is fast', () => {
  const commands: Command[] = [];
  for (let i = 0; i < 1000; i++) {
    commands.push({ clientId: 1000 + (i % 50), seq: 100_000 + i, floor: 99_000 + i, payload: new Uint8Array(64).fill(i & 0xff) });
  }
  const m: Message = { type: 'accept', from: 1, to: 2, ballot: 5 * 1024 + 1, slot: 123_456, commitSlot: 123_400, value: { kind: 'batch', commands } };
  const bytes = encodeMessage(m);
  // Per command: clientId 2 + seq 3 + floor 3 + length 1 + payload 64 = 73 bytes.
  assert.ok(bytes.length < 1000 * 74 + 32, `size ${bytes.length}`);
  assert.deepStrictEqual(plain(decodeMessage(bytes)), m);
  const rounds = 200;
  for (let i = 0; i < 50; i++) decodeMessage(encodeMessage(structuredClone(m))); // warm up the JIT
  // Fresh copies: encoding the same value again would only copy its remembered bytes.
  const copies = Array.from({ length: rounds }, () => structuredClone(m));
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) encodeMessage(copies[i]!);
  const encodeUs = Number(process.hrtime.bigint() - start) / 1000 / rounds;
  const startDecode = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) decodeMessage(bytes);
  const decodeUs = Number(process.hrtime.bigint() - startDecode) / 1000 / rounds;
  // Generous bound (a shared 2-core machine); the figure itself is printed for the record.
  assert.ok(encodeUs < 5000, `encode took ${encodeUs} µs`);
  console.log(`# accept 1000x64B (${bytes.length} bytes): encode ${encodeUs.toFixed(1)} µs, decode ${decodeUs.toFixed(1)} µs`);
});

test('a batch encoding is reused (leader: encode once; follower: the received bytes) and equals a fresh encoding', () => {
  const commands: Command[] = Array.from({ length: 16 }, (_, i) => ({ clientId: 7, seq: 300 + i, floor: 290, payload: new Uint8Array(20).fill(i) }));
  const value = { kind: 'batch' as const, commands };
  type Accept = Extract<Message, { type: 'accept' }>;
  const accept = (to: number): Accept => ({ type: 'accept', from: 1, to, ballot: 1025, slot: 9, commitSlot: 8, value });
  const first = encodeMessage(accept(2));
  const second = encodeMessage(accept(3)); // reuses the value's bytes
  const fresh = encodeMessage({ ...accept(3), value: structuredClone(value) });
  assert.deepEqual(second, fresh);
  assert.deepEqual(first.subarray(0, 2), fresh.subarray(0, 2));
  const decoded = decodeMessage(first) as Accept;
  const relayed = encodeMessage({ ...decoded, to: 3 }); // a follower re-encoding what it received
  assert.deepEqual(relayed, fresh);
  assert.deepStrictEqual(plain(decodeMessage(relayed)), accept(3));
});

// ---------------------------------------------------------------- hostile input

test('random bytes: a Message or a CodecError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      outcome(() => decodeMessage(bytes));
    }),
    { numRuns: 5000 },
  );
});

test('random bodies behind a valid version and checksum: a canonical Message or a CodecError', () => {
  const tag = fc.integer({ min: 0, max: 12 });
  fc.assert(
    fc.property(tag, fc.uint8Array({ maxLength: 80 }), (t, rest) => {
      const bytes = seal([MESSAGE_FORMAT_VERSION, t, ...rest]);
      const result = outcome(() => decodeMessage(bytes));
      if (!(result instanceof CodecError)) assertCanonical(bytes, result);
    }),
    { numRuns: 10000 },
  );
});

test('every truncation of a valid frame is a CodecError; resealed, it is TRUNCATED', () => {
  for (const m of sampleMessages(150)) {
    const bytes = encodeMessage(m);
    for (let cut = 0; cut < bytes.length; cut++) {
      const result = outcome(() => decodeMessage(bytes.subarray(0, cut)));
      assert.ok(result instanceof CodecError);
    }
    // Resealing the cut body gets past the checksum: the parser itself must notice the end.
    const body = bodyOf(bytes);
    for (let cut = 1; cut < body.length; cut++) {
      assertCodecError(() => decodeMessage(seal(body.subarray(0, cut))), 'SYNOD_CODEC_TRUNCATED');
    }
  }
});

test('every single bit flip: BAD_CHECKSUM (or BAD_VERSION); resealed, a canonical Message or a CodecError', () => {
  for (const m of sampleMessages(80)) {
    const bytes = encodeMessage(m);
    const body = bodyOf(bytes);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const result = outcome(() => decodeMessage(flipBit(bytes, bit)));
      assert.ok(result instanceof CodecError);
      assert.equal(result.code, bit < 8 ? 'SYNOD_CODEC_BAD_VERSION' : 'SYNOD_CODEC_BAD_CHECKSUM');
    }
    for (let bit = 8; bit < body.length * 8; bit++) {
      const flipped = seal(flipBit(body, bit));
      const result = outcome(() => decodeMessage(flipped));
      if (!(result instanceof CodecError)) assertCanonical(flipped, result);
    }
  }
});

test('trailing bytes after a complete body: TRAILING_BYTES', () => {
  for (const m of sampleMessages(20)) {
    const body = bodyOf(encodeMessage(m));
    assertCodecError(() => decodeMessage(seal([...body, 0])), 'SYNOD_CODEC_TRAILING_BYTES', body.length);
  }
});

// ---------------------------------------------------------------- each error code

test('TRUNCATED: empty and short frames, and fields past the end', () => {
  assertCodecError(() => decodeMessage(new Uint8Array(0)), 'SYNOD_CODEC_TRUNCATED', 0);
  assertCodecError(() => decodeMessage(new Uint8Array([1, 1, 1, 2, 0, 0, 0])), 'SYNOD_CODEC_TRUNCATED', 7);
  assert.equal(MESSAGE_BYTES_MIN, 8);
  // timeoutNow without its ballot
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.timeoutNow)), 'SYNOD_CODEC_TRUNCATED', 4);
  // a varint cut in the middle: 0x80 says "more follows"
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.timeoutNow, 0x80)), 'SYNOD_CODEC_TRUNCATED', 5);
});

test('TRUNCATED, not an allocation: counts and lengths larger than the input', () => {
  const huge = Number.MAX_SAFE_INTEGER;
  const unlimited = decodeLimits({ entriesMax: huge, commandsMax: huge, payloadBytesMax: huge, membersMax: huge });
  // accept: ballot 5, slot 1, commit 0, batch of 2^53-1 commands
  const batch = frame(MESSAGE_TAGS.accept, 5, 1, 0, 1, ...varint(huge));
  assertCodecError(() => decodeMessage(batch, unlimited), 'SYNOD_CODEC_TRUNCATED', 8);
  // one command with a payload length of 2^53-1
  const payload = frame(MESSAGE_TAGS.accept, 5, 1, 0, 1, 1, 7, 1, 0, ...varint(huge), 1, 2, 3);
  assertCodecError(() => decodeMessage(payload, unlimited), 'SYNOD_CODEC_TRUNCATED', 12 + varint(huge).length);
  // promise: ballot, fromSlot, chosenPrefix, logStart, then 1000 entries in 3 bytes
  const promise = frame(MESSAGE_TAGS.promise, 5, 1, 0, 1, ...varint(1000), 0, 0, 0);
  assertCodecError(() => decodeMessage(promise, unlimited), 'SYNOD_CODEC_TRUNCATED', 8);
  // config of 10 members in 2 bytes
  const config = frame(MESSAGE_TAGS.accept, 5, 1, 0, 2, 10, 1, 2);
  assertCodecError(() => decodeMessage(config, unlimited), 'SYNOD_CODEC_TRUNCATED', 8);
});

test('BAD_VERSION: a frame of another format version', () => {
  const bytes = encodeMessage({ type: 'timeoutNow', from: 1, to: 2, ballot: 1025 });
  const other = seal([2, ...bodyOf(bytes).subarray(1)]);
  const error = assertCodecError(() => decodeMessage(other), 'SYNOD_CODEC_BAD_VERSION', 0);
  assert.match(error.message, /version 2/);
  assertCodecError(() => decodeMessage(new Uint8Array([0])), 'SYNOD_CODEC_BAD_VERSION', 0);
});

test('BAD_TYPE: unknown message tags and value kinds, on decode and on encode', () => {
  for (const tag of [0, 12, 13, 127, 255]) assertCodecError(() => decodeMessage(frame(tag, 5)), 'SYNOD_CODEC_BAD_TYPE', 1);
  for (const kind of [6, 7, 0x80, 255]) { // 4 and 5 are stamped batches
    assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.accept, 5, 1, 0, kind)), 'SYNOD_CODEC_BAD_TYPE', 7);
  }
  assertCodecError(() => encodeMessage({ type: 'gossip', from: 1, to: 2 } as unknown as Message), 'SYNOD_CODEC_BAD_TYPE');
  const badValue = { type: 'accept', from: 1, to: 2, ballot: 1, slot: 1, commitSlot: 0, value: { kind: 'blob' } };
  assertCodecError(() => encodeMessage(badValue as unknown as Message), 'SYNOD_CODEC_BAD_TYPE', 7);
});

test('notMember: a configuration of at least one distinct member, on decode and on encode', () => {
  assert.deepStrictEqual(decodeMessage(frame(MESSAGE_TAGS.notMember, 9, 2, 1, 3)), { type: 'notMember', from: 1, to: 2, configFromSlot: 9, members: [1, 3] });
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.notMember, 9, 0)), 'SYNOD_CODEC_BAD_VALUE', 5);
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.notMember, 9, 2, 3, 3)), 'SYNOD_CODEC_BAD_VALUE', 7);
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.notMember, 9, 1, 0)), 'SYNOD_CODEC_BAD_VALUE');
  assertCodecError(() => encodeMessage({ type: 'notMember', from: 1, to: 2, configFromSlot: 9, members: [] }), 'SYNOD_CODEC_BAD_VALUE');
  assertCodecError(() => encodeMessage({ type: 'notMember', from: 1, to: 2, configFromSlot: 9, members: [4, 4] }), 'SYNOD_CODEC_BAD_VALUE');
});

test('BAD_INTEGER: overlong and oversized varints on decode, non-safe integers on encode', () => {
  // timeoutNow ballot encoded as 0x80 0x00 (a zero final group: overlong)
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.timeoutNow, 0x80, 0x00)), 'SYNOD_CODEC_BAD_INTEGER', 4);
  // 2^53: eight groups, the last one 0x10
  const twoTo53 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.timeoutNow, ...twoTo53)), 'SYNOD_CODEC_BAD_INTEGER', 4);
  // nine bytes
  const nine = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.timeoutNow, ...nine)), 'SYNOD_CODEC_BAD_INTEGER', 4);
  // 2^53-1 is fine
  const max = decodeMessage(frame(MESSAGE_TAGS.timeoutNow, ...varint(Number.MAX_SAFE_INTEGER)));
  assert.deepStrictEqual(max, { type: 'timeoutNow', from: 1, to: 2, ballot: Number.MAX_SAFE_INTEGER });
  for (const bad of [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300]) {
    assertCodecError(() => encodeMessage({ type: 'timeoutNow', from: 1, to: 2, ballot: bad }), 'SYNOD_CODEC_BAD_INTEGER', 4);
  }
  const command = { clientId: 1, seq: 2 ** 60, floor: 0, payload: new Uint8Array(0) };
  assertCodecError(
    () => encodeMessage({ type: 'accept', from: 1, to: 2, ballot: 1, slot: 1, commitSlot: 0, value: { kind: 'batch', commands: [command] } }),
    'SYNOD_CODEC_BAD_INTEGER',
  );
});

test('BAD_VALUE: booleans other than 0/1, replica ids out of range, bad configurations', () => {
  // prepare: ballot 5, fromSlot 1, flags 4 (bits 0 and 1 only: transfer, cookie)
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.prepare, 5, 1, 4)), 'SYNOD_CODEC_BAD_VALUE', 6);
  // promise with one entry whose chosen byte is 2
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.promise, 5, 1, 0, 1, 1, 3, 5, 2, 0)), 'SYNOD_CODEC_BAD_VALUE', 11);
  // from = 0, to = 1024
  assertCodecError(() => decodeMessage(seal([1, MESSAGE_TAGS.timeoutNow, 0, 2, 5])), 'SYNOD_CODEC_BAD_VALUE', 2);
  assertCodecError(() => decodeMessage(seal([1, MESSAGE_TAGS.timeoutNow, 1, ...varint(1024), 5])), 'SYNOD_CODEC_BAD_VALUE', 3);
  // config: no members, a member 0, a repeated member
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.accept, 5, 1, 0, 2, 0)), 'SYNOD_CODEC_BAD_VALUE', 8);
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.accept, 5, 1, 0, 2, 2, 1, 0)), 'SYNOD_CODEC_BAD_VALUE', 10);
  assertCodecError(() => decodeMessage(frame(MESSAGE_TAGS.accept, 5, 1, 0, 2, 3, 1, 2, 1)), 'SYNOD_CODEC_BAD_VALUE', 11);
  // the encoder refuses what the decoder would refuse
  assertCodecError(() => encodeMessage({ type: 'timeoutNow', from: 0, to: 2, ballot: 1 }), 'SYNOD_CODEC_BAD_VALUE', 2);
  assertCodecError(() => encodeMessage({ type: 'timeoutNow', from: 1, to: 1024, ballot: 1 }), 'SYNOD_CODEC_BAD_VALUE', 3);
  const accept = (members: number[]): Message => ({
    type: 'accept', from: 1, to: 2, ballot: 1, slot: 1, commitSlot: 0, value: { kind: 'config', members },
  });
  assertCodecError(() => encodeMessage(accept([])), 'SYNOD_CODEC_BAD_VALUE');
  assertCodecError(() => encodeMessage(accept([1, 2, 1])), 'SYNOD_CODEC_BAD_VALUE');
  assertCodecError(() => encodeMessage(accept([1, 0])), 'SYNOD_CODEC_BAD_VALUE');
});

test('TOO_LARGE: each DecodeLimits bound', () => {
  const commands = (n: number, payloadBytes: number): Command[] =>
    Array.from({ length: n }, (_, i) => ({ clientId: 1, seq: i, floor: 0, payload: new Uint8Array(payloadBytes) }));
  const accept: Message = { type: 'accept', from: 1, to: 2, ballot: 1, slot: 1, commitSlot: 0, value: { kind: 'batch', commands: commands(5, 100) } };
  const bytes = encodeMessage(accept);
  assert.deepStrictEqual(plain(decodeMessage(bytes, decodeLimits({ commandsMax: 5, payloadBytesMax: 100, messageBytesMax: bytes.length }))), accept);
  assertCodecError(() => decodeMessage(bytes, decodeLimits({ messageBytesMax: bytes.length - 1 })), 'SYNOD_CODEC_TOO_LARGE', 0);
  assertCodecError(() => decodeMessage(bytes, decodeLimits({ commandsMax: 4 })), 'SYNOD_CODEC_TOO_LARGE', 8);
  assertCodecError(() => decodeMessage(bytes, decodeLimits({ payloadBytesMax: 99 })), 'SYNOD_CODEC_TOO_LARGE', 12);

  const entry = { slot: 1, ballot: 1, value: { kind: 'noop' as const }, chosen: false };
  const reply: Message = { type: 'catchupReply', from: 1, to: 2, entries: [entry, entry, entry], commitSlot: 3, snapshotSlot: 0 };
  assertCodecError(() => decodeMessage(encodeMessage(reply), decodeLimits({ entriesMax: 2 })), 'SYNOD_CODEC_TOO_LARGE', 6);

  const config: Message = { type: 'accept', from: 1, to: 2, ballot: 1, slot: 1, commitSlot: 0, value: { kind: 'config', members: [1, 2, 3, 4, 5] } };
  assertCodecError(() => decodeMessage(encodeMessage(config), decodeLimits({ membersMax: 4 })), 'SYNOD_CODEC_TOO_LARGE', 8);
  assert.equal(DEFAULT_DECODE_LIMITS.membersMax >= 9, true);
});

test('BAD_CHECKSUM: a damaged trailer or body', () => {
  const bytes = encodeMessage({ type: 'accepted', from: 2, to: 1, ballot: 1025, slot: 77 });
  const damaged = bytes.slice();
  damaged[damaged.length - 1] ^= 0xff;
  assertCodecError(() => decodeMessage(damaged), 'SYNOD_CODEC_BAD_CHECKSUM', bytes.length - 4);
  const body = bytes.slice();
  body[4] ^= 0x01;
  assertCodecError(() => decodeMessage(body), 'SYNOD_CODEC_BAD_CHECKSUM', bytes.length - 4);
});

test('decodeLimits validates its input', () => {
  assert.throws(() => decodeLimits({ entriesMax: 0 }), ConfigError);
  assert.throws(() => decodeLimits({ payloadBytesMax: -1 }), ConfigError);
  assert.throws(() => decodeLimits({ commandsMax: 1.5 }), ConfigError);
  assert.ok(Object.isFrozen(decodeLimits()));
});
