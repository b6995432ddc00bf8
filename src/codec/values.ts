// Encoding of slot values and log entries (layout in docs/codec.md).
//
//   value  = kind:u8 body
//            kind 0 noop   : (empty)
//            kind 1 batch  : count:varint { clientId:varint seq:varint floor:varint len:varint payload:len }*
//            kind 2 config : count:varint { member:varint }*        (1..membersMax distinct ids in 1..1023)
//            kind 3 last   : as batch (a "last request": the replica set stops after this slot)
//            kind 4 stamped batch : timeMs:varint, then as batch  (the leader's time stamp, ms)
//            kind 5 stamped last  : timeMs:varint, then as batch
//            Leaders write kinds 4 and 5 only; kinds 1 and 3 (no stamp) are the values written
//            before stamps existed and still decode (timeMs absent: legacy session rules).
//   entry  = slot:varint ballot:varint chosen:u8(0|1) value          (inside messages)
//   record = version:u8(=1) entry                                    (encodeEntry: a log record payload)
//
// Ownership: decoded command payloads are views (subarray) of the input, not copies. They stay
// valid as long as the input buffer is not overwritten; a caller that reuses its receive or
// read buffer must copy the payloads it keeps (or decode from a buffer it gives away).
//
// Decoded entries always carry `chosen` as a boolean (false when the encoder was given
// undefined), so every decoded entry has the same shape.

import { Buffer } from 'node:buffer';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import type { Command, Entry, ReplicaId, Value } from '../core/types.js';
import { Reader, Sizer, Writer } from './buffer.js';
import { CodecError } from './errors.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './limits.js';

/** Format version byte at the start of an encodeEntry record. */
export const ENTRY_FORMAT_VERSION = 1;

export const VALUE_KIND_NOOP = 0;
export const VALUE_KIND_BATCH = 1;
export const VALUE_KIND_CONFIG = 2;
export const VALUE_KIND_LAST_BATCH = 3;
export const VALUE_KIND_STAMPED_BATCH = 4;
export const VALUE_KIND_STAMPED_LAST_BATCH = 5;

/** Smallest encodings, used to bound counts by the bytes left before allocating anything. */
const COMMAND_BYTES_MIN = 4; // clientId, seq, floor, length: one byte each, empty payload
export const ENTRY_BYTES_MIN = 4; // slot, ballot, chosen, value kind (noop)

const NOOP_DECODED: Value = Object.freeze({ kind: 'noop' }) as Value;

// ---------------------------------------------------------------- replica ids

/** Replica ids travel as varints but must lie in 1..MAX_REPLICA_ID. */
export function preencodeReplicaId(sizer: Sizer, id: ReplicaId, what: string): void {
  const offset = sizer.size;
  sizer.varint(id, what);
  if (id < 1 || id > MAX_REPLICA_ID) {
    throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} must be a replica id in 1..${MAX_REPLICA_ID}, got ${id}`, offset);
  }
}

export function readReplicaId(reader: Reader, what: string): ReplicaId {
  const offset = reader.offset;
  const id = reader.varint(what);
  if (id < 1 || id > MAX_REPLICA_ID) {
    throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} must be a replica id in 1..${MAX_REPLICA_ID}, got ${id}`, offset);
  }
  return id;
}

// ---------------------------------------------------------------- values

/**
 * The encoding of a batch value, once known: written by the first encode (the leader's log
 * record) or kept from the decode (a follower's received accept, a view of the frame), and
 * copied as bytes from then on: the leader's accepts to each follower and a follower's log
 * record reuse it instead of re-encoding every command. Values are immutable, and so are the
 * buffers these views point into (fresh encoder outputs and received frames, never reused).
 * Small batches are not cached: the WeakMap costs more than their encoding.
 */
const encodedBatches = new WeakMap<Value, Uint8Array>();
const CACHED_BATCH_COMMANDS_MIN = 4;

export function preencodeValue(sizer: Sizer, value: Value): void {
  if (value.kind === 'batch' && value.commands.length >= CACHED_BATCH_COMMANDS_MIN) {
    const cached = encodedBatches.get(value);
    if (cached !== undefined) {
      sizer.fixed(cached.length);
      return;
    }
  }
  sizer.fixed(1);
  switch (value.kind) {
    case 'noop':
      return;
    case 'batch': {
      const commands = value.commands;
      if (value.timeMs !== undefined) sizer.varint(value.timeMs, 'timeMs');
      sizer.varint(commands.length, 'command count');
      for (let i = 0; i < commands.length; i++) {
        const command = commands[i]!;
        sizer.varint(command.clientId, 'clientId');
        sizer.varint(command.seq, 'seq');
        sizer.varint(command.floor, 'floor');
        sizer.lengthPrefixed(command.payload.length);
      }
      return;
    }
    case 'config': {
      const members = value.members;
      const offset = sizer.size;
      if (members.length === 0) throw new CodecError('SYNOD_CODEC_BAD_VALUE', 'config value has no members', offset);
      if (new Set(members).size !== members.length) {
        throw new CodecError('SYNOD_CODEC_BAD_VALUE', 'config value repeats a member', offset);
      }
      sizer.varint(members.length, 'member count');
      for (let i = 0; i < members.length; i++) preencodeReplicaId(sizer, members[i]!, 'member');
      return;
    }
    default:
      throw new CodecError('SYNOD_CODEC_BAD_TYPE', `unknown value kind ${String((value as { kind: unknown }).kind)}`, sizer.size - 1);
  }
}

export function writeValue(writer: Writer, value: Value): void {
  switch (value.kind) {
    case 'noop':
      writer.u8(VALUE_KIND_NOOP);
      return;
    case 'batch': {
      const commands = value.commands;
      const cache = commands.length >= CACHED_BATCH_COMMANDS_MIN;
      if (cache) {
        const cached = encodedBatches.get(value);
        if (cached !== undefined) {
          writer.raw(cached);
          return;
        }
      }
      const start = writer.offset;
      const timeMs = value.timeMs;
      if (timeMs === undefined) writer.u8(value.last === true ? VALUE_KIND_LAST_BATCH : VALUE_KIND_BATCH);
      else {
        writer.u8(value.last === true ? VALUE_KIND_STAMPED_LAST_BATCH : VALUE_KIND_STAMPED_BATCH);
        writer.varint(timeMs);
      }
      writer.varint(commands.length);
      for (let i = 0; i < commands.length; i++) {
        const command = commands[i]!;
        writer.varint(command.clientId);
        writer.varint(command.seq);
        writer.varint(command.floor);
        writer.lengthPrefixed(command.payload);
      }
      if (cache) encodedBatches.set(value, writer.bytes.subarray(start, writer.offset));
      return;
    }
    case 'config': {
      const members = value.members;
      writer.u8(VALUE_KIND_CONFIG);
      writer.varint(members.length);
      for (let i = 0; i < members.length; i++) writer.varint(members[i]!);
      return;
    }
  }
}

export function readValue(reader: Reader, limits: DecodeLimits): Value {
  const offset = reader.offset;
  const kind = reader.u8('value kind');
  switch (kind) {
    case VALUE_KIND_NOOP:
      return NOOP_DECODED;
    case VALUE_KIND_BATCH:
    case VALUE_KIND_LAST_BATCH:
    case VALUE_KIND_STAMPED_BATCH:
    case VALUE_KIND_STAMPED_LAST_BATCH: {
      const stamped = kind >= VALUE_KIND_STAMPED_BATCH;
      const timeMs = stamped ? reader.varint('timeMs') : 0;
      const count = reader.count(limits.commandsMax, COMMAND_BYTES_MIN, 'command count');
      const commands: Command[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const clientId = reader.varint('clientId');
        const seq = reader.varint('seq');
        const floor = reader.varint('floor');
        const payload = reader.lengthPrefixed(limits.payloadBytesMax, 'payload length');
        commands[i] = { clientId, seq, floor, payload };
      }
      const last = kind === VALUE_KIND_LAST_BATCH || kind === VALUE_KIND_STAMPED_LAST_BATCH;
      // The same property order as the core's values (kind, commands, timeMs, last): one shape.
      const value: Value = stamped
        ? last
          ? { kind: 'batch', commands, timeMs, last: true }
          : { kind: 'batch', commands, timeMs }
        : last
          ? { kind: 'batch', commands, last: true }
          : { kind: 'batch', commands };
      if (count >= CACHED_BATCH_COMMANDS_MIN) encodedBatches.set(value, reader.bytes.subarray(offset, reader.offset));
      return value;
    }
    case VALUE_KIND_CONFIG: {
      const countOffset = reader.offset;
      const count = reader.count(limits.membersMax, 1, 'member count');
      if (count === 0) throw new CodecError('SYNOD_CODEC_BAD_VALUE', 'config value has no members', countOffset);
      const members: ReplicaId[] = new Array(count);
      const seen = new Set<ReplicaId>();
      for (let i = 0; i < count; i++) {
        const memberOffset = reader.offset;
        const member = readReplicaId(reader, 'member');
        if (seen.has(member)) throw new CodecError('SYNOD_CODEC_BAD_VALUE', `config value repeats member ${member}`, memberOffset);
        seen.add(member);
        members[i] = member;
      }
      return { kind: 'config', members };
    }
    default:
      throw new CodecError('SYNOD_CODEC_BAD_TYPE', `unknown value kind ${kind}`, offset);
  }
}

// ---------------------------------------------------------------- entries

export function preencodeEntry(sizer: Sizer, entry: Entry): void {
  sizer.varint(entry.slot, 'slot');
  sizer.varint(entry.ballot, 'ballot');
  sizer.fixed(1);
  preencodeValue(sizer, entry.value);
}

export function writeEntry(writer: Writer, entry: Entry): void {
  writer.varint(entry.slot);
  writer.varint(entry.ballot);
  writer.bool(entry.chosen === true);
  writeValue(writer, entry.value);
}

export function readEntry(reader: Reader, limits: DecodeLimits): Entry {
  const slot = reader.varint('slot');
  const ballot = reader.varint('ballot');
  const chosen = reader.bool('chosen');
  const value = readValue(reader, limits);
  return { slot, ballot, value, chosen };
}

// ---------------------------------------------------------------- standalone encodings

/** The canonical encoding of one value (no version byte). */
export function encodeValue(value: Value): Uint8Array {
  const sizer = new Sizer();
  preencodeValue(sizer, value);
  const writer = new Writer(sizer.size);
  writeValue(writer, value);
  return writer.finish();
}

/** Decodes exactly one value; payloads alias `bytes`. */
export function decodeValue(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Value {
  const reader = new Reader(bytes);
  const value = readValue(reader, limits);
  reader.expectEnd('value');
  return value;
}

/** One entry as a log record payload: version byte, then the entry. */
export function encodeEntry(entry: Entry): Uint8Array {
  const sizer = new Sizer();
  sizer.fixed(1);
  preencodeEntry(sizer, entry);
  const writer = new Writer(sizer.size);
  writer.u8(ENTRY_FORMAT_VERSION);
  writeEntry(writer, entry);
  return writer.finish();
}

/** Decodes an encodeEntry record; payloads alias `bytes` (copy them if the read buffer is reused). */
export function decodeEntry(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Entry {
  const reader = new Reader(bytes);
  const version = reader.u8('entry format version');
  if (version !== ENTRY_FORMAT_VERSION) {
    throw new CodecError('SYNOD_CODEC_BAD_VERSION', `unknown entry format version ${version}`, 0);
  }
  const entry = readEntry(reader, limits);
  reader.expectEnd('entry');
  return entry;
}

// ---------------------------------------------------------------- identity and size

/**
 * A canonical identity of a value: two values get the same key iff their encodings are equal
 * (the bytes of the encoding, one latin1 character per byte). Usable as a Map key.
 */
export function valueKey(value: Value): string {
  if (value.kind === 'noop') return '\u0000';
  const bytes = encodeValue(value);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Total payload bytes of a value (0 for noop and config). */
export function valueBytes(value: Value): number {
  if (value.kind !== 'batch') return 0;
  const commands = value.commands;
  let total = 0;
  for (let i = 0; i < commands.length; i++) total += commands[i]!.payload.length;
  return total;
}
