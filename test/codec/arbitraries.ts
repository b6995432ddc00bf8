// fast-check arbitraries and helpers shared by the codec tests.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CodecError } from '../../src/codec/errors.js';
import { crc32c } from '../../src/codec/crc32c.js';
import { DecodedBatch } from '../../src/codec/values.js';
import type { Command, Entry, Message, MessageType, Value } from '../../src/core/types.js';

/** Varint boundaries: the last value of each byte length and the first of the next. */
export const VARINT_EDGES = [
  0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1,
  2 ** 32, 2 ** 35 - 1, 2 ** 35, 2 ** 42 - 1, 2 ** 42, 2 ** 49 - 1, 2 ** 49, Number.MAX_SAFE_INTEGER,
];

/** Mostly small numbers (as in a real log), sometimes anything up to 2^53-1, sometimes an edge. */
export const safeNat: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.nat(300), weight: 4 },
  { arbitrary: fc.maxSafeNat(), weight: 2 },
  { arbitrary: fc.constantFrom(...VARINT_EDGES), weight: 1 },
);

export const replicaId: fc.Arbitrary<number> = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 1023 }));

export const command: fc.Arbitrary<Command> = fc
  .record({ clientId: safeNat, seq: safeNat, floor: safeNat, payload: fc.uint8Array({ maxLength: 40 }) })
  .map((c) => ({ clientId: c.clientId, seq: c.seq, floor: c.floor, payload: c.payload }));

export const value: fc.Arbitrary<Value> = fc.oneof(
  fc.constant<Value>({ kind: 'noop' }),
  fc.array(command, { maxLength: 6 }).map((commands): Value => ({ kind: 'batch', commands })),
  // Stamped batches (what leaders write now), some of them last requests.
  fc
    .tuple(fc.array(command, { maxLength: 6 }), safeNat, fc.boolean())
    .map(([commands, timeMs, last]): Value => (last ? { kind: 'batch', commands, timeMs, last: true } : { kind: 'batch', commands, timeMs })),
  fc.uniqueArray(replicaId, { minLength: 1, maxLength: 9 }).map((m): Value => ({ kind: 'config', members: m })),
);

const members = fc.uniqueArray(replicaId, { minLength: 1, maxLength: 9 });

/** `chosen` is sometimes absent, as the core may leave it. */
export const entry: fc.Arbitrary<Entry> = fc
  .record({ slot: safeNat, ballot: safeNat, value, chosen: fc.option(fc.boolean(), { nil: undefined }) })
  .map((e) => (e.chosen === undefined ? { slot: e.slot, ballot: e.ballot, value: e.value } : { ...e }));

const entries = fc.array(entry, { maxLength: 5 });
const envelope = { from: replicaId, to: replicaId };

function msg<T extends MessageType>(type: T, fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Message> {
  return fc.record({ ...envelope, ...fields }).map((r) => ({ type, ...r }) as unknown as Message);
}

/** One arbitrary per member of the Message union. */
export const messageByType: Record<MessageType, fc.Arbitrary<Message>> = {
  prepare: fc.oneof(
    msg('prepare', { ballot: safeNat, fromSlot: safeNat, transfer: fc.boolean() }),
    msg('prepare', { ballot: safeNat, fromSlot: safeNat, transfer: fc.boolean(), cookie: fc.uint8Array({ maxLength: 16 }) }),
  ),
  promise: msg('promise', { ballot: safeNat, fromSlot: safeNat, entries, chosenPrefix: safeNat, logStart: safeNat }),
  accept: msg('accept', { ballot: safeNat, slot: safeNat, value, commitSlot: safeNat }),
  accepted: msg('accepted', { ballot: safeNat, slot: safeNat }),
  reject: msg('reject', { ballot: safeNat, promised: safeNat }),
  heartbeat: msg('heartbeat', { ballot: safeNat, commitSlot: safeNat, round: safeNat }),
  heartbeatAck: msg('heartbeatAck', { ballot: safeNat, round: safeNat, chosenPrefix: safeNat }),
  catchupRequest: msg('catchupRequest', { fromSlot: safeNat }),
  catchupReply: msg('catchupReply', { entries, commitSlot: safeNat, snapshotSlot: safeNat }),
  timeoutNow: msg('timeoutNow', { ballot: safeNat }),
  notMember: msg('notMember', { configFromSlot: safeNat, members }),
};

export const message: fc.Arbitrary<Message> = fc.oneof(...Object.values(messageByType));

/**
 * A decoded message, entry or value as plain data, the way the core builds them: every
 * DecodedBatch becomes { kind, commands, timeMs?, last? } with its commands read from its bytes.
 * For structural comparisons, and for re-encoding without the batch's kept bytes (which would make
 * a canonical-encoding check pass whatever the encoder does).
 */
export function plain<T>(x: T): T {
  if (x instanceof DecodedBatch) {
    const v: { kind: 'batch'; commands: Command[]; timeMs?: number; last?: true } = { kind: 'batch', commands: x.commands.map((c) => ({ ...c })) };
    if (x.timeMs !== undefined) v.timeMs = x.timeMs;
    if (x.last === true) v.last = true;
    return v as T;
  }
  if (x instanceof Uint8Array || x === null || typeof x !== 'object') return x;
  if (Array.isArray(x)) return x.map(plain) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = plain(v);
  return out as T;
}

/** What decoding gives back: entries always carry `chosen` as a boolean. */
export function normalizeEntry(e: Entry): Entry {
  return { slot: e.slot, ballot: e.ballot, value: e.value, chosen: e.chosen === true };
}

export function normalizeMessage(m: Message): Message {
  if (m.type === 'promise' || m.type === 'catchupReply') return { ...m, entries: m.entries.map(normalizeEntry) };
  return m;
}

/** A frame around an arbitrary body: body then its CRC32C, as encodeMessage writes it. */
export function seal(body: Uint8Array | number[]): Uint8Array {
  const bytes = new Uint8Array(body.length + 4);
  bytes.set(body);
  new DataView(bytes.buffer).setUint32(body.length, crc32c(bytes, 0, 0, body.length), true);
  return bytes;
}

/** The body of a frame (everything before the CRC trailer). */
export function bodyOf(frame: Uint8Array): Uint8Array {
  return frame.subarray(0, frame.length - 4);
}

/** Runs `decode`; returns its result or the CodecError it threw. Any other exception fails the test. */
export function outcome<T>(decode: () => T): T | CodecError {
  try {
    return decode();
  } catch (error) {
    if (error instanceof CodecError) return error;
    assert.fail(`expected a CodecError, got ${String(error)}`);
  }
}

export function assertCodecError(run: () => unknown, code: string, offset?: number): CodecError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof CodecError, `expected a CodecError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (offset !== undefined) assert.equal(error.offset, offset, error.message);
    return error;
  }
  assert.fail(`expected CodecError ${code}, nothing was thrown`);
}

export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[bit >>> 3] ^= 1 << (bit & 7);
  return copy;
}
