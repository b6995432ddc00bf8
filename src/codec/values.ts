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
import { Reader, Sizer, varintSize, Writer } from './buffer.js';
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
 * A batch value as decoded from bytes (a received accept, a log record, a catch-up reply): it
 * keeps its encoding, checked in full when decoded, instead of one Command object and one payload
 * view per command. On a follower a slot's value lives from its accept until it is applied, and
 * per-command objects held that long were most of what V8's young generation had to copy and
 * promote (docs/performance.md, session 7). `commands` builds the Command objects on first use
 * (the core merging a value, the simulator, contracts); the runtime's apply loop reads the bytes
 * with a BatchCursor and builds nothing but each command's payload view. The encoding is what the
 * log record and forwarded accepts copy. Immutable, like every value, and so are the bytes it
 * views (received frames and read buffers are never reused).
 */
export class DecodedBatch {
  readonly kind = 'batch' as const;
  private decoded: Command[] | null = null;

  constructor(
    /** The value's whole encoding, kind byte first. */
    readonly encoded: Uint8Array,
    /** Where the first command starts in `encoded`. */
    readonly commandsOffset: number,
    readonly count: number,
    /** Sum of the payload lengths (what valueBytes() reports). */
    readonly payloadBytes: number,
    readonly timeMs: number | undefined,
    readonly last: true | undefined,
  ) {}

  get commands(): Command[] {
    if (this.decoded !== null) return this.decoded;
    const commands: Command[] = new Array(this.count);
    const cursor = new BatchCursor(this);
    for (let i = 0; i < this.count; i++) {
      cursor.next(true);
      commands[i] = { clientId: cursor.clientId, seq: cursor.seq, floor: cursor.floor, payload: cursor.payload };
    }
    return (this.decoded = commands);
  }
}

const EMPTY_PAYLOAD = new Uint8Array(0);

/**
 * Reads a DecodedBatch's commands one after another into its own fields: one object for every
 * batch, not one per command. It is the current command only until next(): whoever keeps a
 * command keeps its fields (or the payload, a view of the batch's bytes), never the cursor.
 * The bytes were checked when the batch was decoded, so reading cannot fail here.
 */
export class BatchCursor implements Command {
  clientId = 0;
  seq = 0;
  floor = 0;
  /** The current command's payload: a view of the batch's bytes, or what next(false)'s caller put here. */
  payload: Uint8Array = EMPTY_PAYLOAD;
  /** Where the current command's payload lies in `bytes` (without a view: StateMachine.applyAt). */
  payloadOffset = 0;
  payloadLength = 0;
  /** The batch's encoding, which the payloads lie in. */
  readonly bytes: Uint8Array;
  private offset: number;

  constructor(readonly batch: DecodedBatch) {
    this.bytes = batch.encoded;
    this.offset = batch.commandsOffset;
  }

  /** Back to the first command. */
  rewind(): void {
    this.offset = this.batch.commandsOffset;
  }

  /** Moves to the next command; with `view` false the payload is not made (the caller sets it). */
  next(view: boolean): void {
    this.clientId = this.varint();
    this.seq = this.varint();
    this.floor = this.varint();
    const length = this.varint();
    const offset = this.offset;
    this.offset = offset + length;
    this.payloadOffset = offset;
    this.payloadLength = length;
    if (view) this.view();
  }

  /** Makes `payload` the current command's view (after next(false)). */
  view(): void {
    const bytes = this.bytes;
    this.payload = new Uint8Array(bytes.buffer, bytes.byteOffset + this.payloadOffset, this.payloadLength);
  }

  /** A canonical varint, already checked by the decode. */
  private varint(): number {
    const bytes = this.bytes;
    let offset = this.offset;
    let byte = bytes[offset++]!;
    let value = byte & 0x7f;
    let scale = 0x80;
    while (byte >= 0x80) {
      byte = bytes[offset++]!;
      value += (byte & 0x7f) * scale;
      scale *= 0x80;
    }
    this.offset = offset;
    return value;
  }
}

/**
 * The encoding of a batch value built in memory (the leader's), once known: written by its first
 * encode (the leader's log record) and copied as bytes from then on, so that the accepts to each
 * follower reuse it instead of re-encoding every command. (A decoded batch keeps its own bytes:
 * DecodedBatch.) Values are immutable, and so are the fresh encoder outputs these views point
 * into. Small batches are not cached: the WeakMap costs more than their encoding.
 */
const encodedBatches = new WeakMap<Value, Uint8Array>();
const CACHED_BATCH_COMMANDS_MIN = 4;

/**
 * The batch `value` as a DecodedBatch over the encoding its first encode cached (the leader's log
 * record), or null when there is none (small batches are not cached; other kinds). No decode: the
 * bytes are this process's own encoding of `value`. The leader then holds its slot by its bytes,
 * as a follower does, and the Command objects and payload views of its proposals die young
 * instead of living through the round trip (what a scavenge copies is what is alive).
 */
export function encodedBatchOf(value: Value): DecodedBatch | null {
  if (value.kind !== 'batch' || value instanceof DecodedBatch) return null;
  const encoded = encodedBatches.get(value);
  if (encoded === undefined) return null;
  const commands = value.commands;
  let payloadBytes = 0;
  for (let i = 0; i < commands.length; i++) payloadBytes += commands[i]!.payload.length;
  const commandsOffset = 1 + (value.timeMs === undefined ? 0 : varintSize(value.timeMs, 'timeMs', 0)) + varintSize(commands.length, 'command count', 0);
  return new DecodedBatch(encoded, commandsOffset, commands.length, payloadBytes, value.timeMs, value.last === true ? true : undefined);
}

export function preencodeValue(sizer: Sizer, value: Value): void {
  if (value instanceof DecodedBatch) {
    sizer.fixed(value.encoded.length);
    return;
  }
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
    case 'config':
      preencodeMembers(sizer, value.members, 'config value');
      return;
    default:
      throw new CodecError('SYNOD_CODEC_BAD_TYPE', `unknown value kind ${String((value as { kind: unknown }).kind)}`, sizer.size - 1);
  }
}

export function writeValue(writer: Writer, value: Value): void {
  if (value instanceof DecodedBatch) {
    writer.raw(value.encoded);
    return;
  }
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
    case 'config':
      writer.u8(VALUE_KIND_CONFIG);
      writeMembers(writer, value.members);
      return;
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
      const timeMs = stamped ? reader.varint('timeMs') : undefined;
      const count = reader.count(limits.commandsMax, COMMAND_BYTES_MIN, 'command count');
      const start = reader.offset;
      // Checked here, in full, so that reading the commands later cannot fail; nothing allocated per command.
      const payloadBytesMax = limits.payloadBytesMax;
      let payloadBytes = 0;
      for (let i = 0; i < count; i++) {
        reader.varint('clientId');
        reader.varint('seq');
        reader.varint('floor');
        payloadBytes += reader.skipLengthPrefixed(payloadBytesMax, 'payload length');
      }
      const last = kind === VALUE_KIND_LAST_BATCH || kind === VALUE_KIND_STAMPED_LAST_BATCH;
      const bytes = reader.bytes;
      return new DecodedBatch(bytes.subarray(offset, reader.offset), start - offset, count, payloadBytes, timeMs, last ? true : undefined);
    }
    case VALUE_KIND_CONFIG:
      return { kind: 'config', members: readMembers(reader, limits, 'config value') };
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
  if (value instanceof DecodedBatch) return value.payloadBytes;
  const commands = value.commands;
  let total = 0;
  for (let i = 0; i < commands.length; i++) total += commands[i]!.payload.length;
  return total;
}

/** A configuration's members (a config value, a notMember message): count:varint { id:varint }*, 1.. distinct ids. */
export function preencodeMembers(sizer: Sizer, members: readonly ReplicaId[], what: string): void {
  const offset = sizer.size;
  if (members.length === 0) throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} has no members`, offset);
  if (new Set(members).size !== members.length) throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} repeats a member`, offset);
  sizer.varint(members.length, 'member count');
  for (let i = 0; i < members.length; i++) preencodeReplicaId(sizer, members[i]!, 'member');
}

export function writeMembers(writer: Writer, members: readonly ReplicaId[]): void {
  writer.varint(members.length);
  for (let i = 0; i < members.length; i++) writer.varint(members[i]!);
}

export function readMembers(reader: Reader, limits: DecodeLimits, what: string): ReplicaId[] {
  const countOffset = reader.offset;
  const count = reader.count(limits.membersMax, 1, 'member count');
  if (count === 0) throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} has no members`, countOffset);
  const members: ReplicaId[] = new Array(count);
  const seen = new Set<ReplicaId>();
  for (let i = 0; i < count; i++) {
    const memberOffset = reader.offset;
    const member = readReplicaId(reader, 'member');
    if (seen.has(member)) throw new CodecError('SYNOD_CODEC_BAD_VALUE', `${what} repeats member ${member}`, memberOffset);
    seen.add(member);
    members[i] = member;
  }
  return members;
}
