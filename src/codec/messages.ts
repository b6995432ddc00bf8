// Wire encoding of protocol messages (layout tables in docs/codec.md).
//
//   frame = version:u8(=1) tag:u8 from:varint to:varint body crc:u32le
//
// `crc` is CRC32C over every byte before it. TCP's 16-bit checksum misses corruption that a
// replica would otherwise vote on, so each frame carries its own. The decoder checks, in
// order: size limit, version, checksum, then the body field by field, then that the body
// ends exactly at the trailer. Any failure is a CodecError; no other exception escapes.
//
// Ownership: decoded command payloads alias the input (see values.ts).

import type { Entry, Message } from '../core/types.js';
import { Reader, Sizer, Writer } from './buffer.js';
import { fastCrc32c as crc32c } from './crc32c.js';
import { CodecError } from './errors.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './limits.js';
import {
  ENTRY_BYTES_MIN,
  preencodeEntry,
  preencodeMembers,
  preencodeReplicaId,
  preencodeValue,
  readEntry,
  readMembers,
  readReplicaId,
  readValue,
  writeEntry,
  writeMembers,
  writeValue,
} from './values.js';

/** Format version byte at the start of every frame. */
export const MESSAGE_FORMAT_VERSION = 1;

/** The prepare's flags byte (it was the `transfer` boolean, so a prepare without a cookie is unchanged). */
const PREPARE_FLAG_TRANSFER = 1;
const PREPARE_FLAG_COOKIE = 2;

/** version + tag + from + to (one byte each at least) + crc. */
export const MESSAGE_BYTES_MIN = 8;
const CRC_BYTES = 4;

/** Tags are part of the format: never renumber, only add. */
export const MESSAGE_TAGS = Object.freeze({
  prepare: 1,
  promise: 2,
  accept: 3,
  accepted: 4,
  reject: 5,
  heartbeat: 6,
  heartbeatAck: 7,
  catchupRequest: 8,
  catchupReply: 9,
  timeoutNow: 10,
  notMember: 11,
} as const satisfies Record<Message['type'], number>);

// ---------------------------------------------------------------- sizing (and validation)

function preencodeEntries(sizer: Sizer, entries: Entry[]): void {
  sizer.varint(entries.length, 'entry count');
  for (let i = 0; i < entries.length; i++) preencodeEntry(sizer, entries[i]!);
}

function preencodeMessage(sizer: Sizer, msg: Message): void {
  sizer.fixed(2); // version, tag
  preencodeReplicaId(sizer, msg.from, 'from');
  preencodeReplicaId(sizer, msg.to, 'to');
  switch (msg.type) {
    case 'prepare':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.fromSlot, 'fromSlot');
      sizer.fixed(1);
      if (msg.cookie !== undefined) sizer.lengthPrefixed(msg.cookie.length);
      break;
    case 'promise':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.fromSlot, 'fromSlot');
      sizer.varint(msg.chosenPrefix, 'chosenPrefix');
      sizer.varint(msg.logStart, 'logStart');
      preencodeEntries(sizer, msg.entries);
      break;
    case 'accept':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.slot, 'slot');
      sizer.varint(msg.commitSlot, 'commitSlot');
      preencodeValue(sizer, msg.value);
      break;
    case 'accepted':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.slot, 'slot');
      break;
    case 'reject':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.promised, 'promised');
      break;
    case 'heartbeat':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.commitSlot, 'commitSlot');
      sizer.varint(msg.round, 'round');
      break;
    case 'heartbeatAck':
      sizer.varint(msg.ballot, 'ballot');
      sizer.varint(msg.round, 'round');
      sizer.varint(msg.chosenPrefix, 'chosenPrefix');
      break;
    case 'catchupRequest':
      sizer.varint(msg.fromSlot, 'fromSlot');
      break;
    case 'catchupReply':
      sizer.varint(msg.commitSlot, 'commitSlot');
      sizer.varint(msg.snapshotSlot, 'snapshotSlot');
      preencodeEntries(sizer, msg.entries);
      break;
    case 'timeoutNow':
      sizer.varint(msg.ballot, 'ballot');
      break;
    case 'notMember':
      sizer.varint(msg.configFromSlot, 'configFromSlot');
      preencodeMembers(sizer, msg.members, 'notMember message');
      break;
    default:
      throw new CodecError('SYNOD_CODEC_BAD_TYPE', `unknown message type ${String((msg as { type: unknown }).type)}`, 1);
  }
  sizer.fixed(CRC_BYTES);
}

// ---------------------------------------------------------------- writing

function writeEntries(writer: Writer, entries: Entry[]): void {
  writer.varint(entries.length);
  for (let i = 0; i < entries.length; i++) writeEntry(writer, entries[i]!);
}

function writeMessage(writer: Writer, msg: Message): void {
  writer.u8(MESSAGE_FORMAT_VERSION);
  writer.u8(MESSAGE_TAGS[msg.type]);
  writer.varint(msg.from);
  writer.varint(msg.to);
  switch (msg.type) {
    case 'prepare':
      writer.varint(msg.ballot);
      writer.varint(msg.fromSlot);
      // flags: bit 0 transfer, bit 1 a primary cookie follows (length-prefixed)
      writer.u8((msg.transfer ? PREPARE_FLAG_TRANSFER : 0) | (msg.cookie !== undefined ? PREPARE_FLAG_COOKIE : 0));
      if (msg.cookie !== undefined) writer.lengthPrefixed(msg.cookie);
      break;
    case 'promise':
      writer.varint(msg.ballot);
      writer.varint(msg.fromSlot);
      writer.varint(msg.chosenPrefix);
      writer.varint(msg.logStart);
      writeEntries(writer, msg.entries);
      break;
    case 'accept':
      writer.varint(msg.ballot);
      writer.varint(msg.slot);
      writer.varint(msg.commitSlot);
      writeValue(writer, msg.value);
      break;
    case 'accepted':
      writer.varint(msg.ballot);
      writer.varint(msg.slot);
      break;
    case 'reject':
      writer.varint(msg.ballot);
      writer.varint(msg.promised);
      break;
    case 'heartbeat':
      writer.varint(msg.ballot);
      writer.varint(msg.commitSlot);
      writer.varint(msg.round);
      break;
    case 'heartbeatAck':
      writer.varint(msg.ballot);
      writer.varint(msg.round);
      writer.varint(msg.chosenPrefix);
      break;
    case 'catchupRequest':
      writer.varint(msg.fromSlot);
      break;
    case 'catchupReply':
      writer.varint(msg.commitSlot);
      writer.varint(msg.snapshotSlot);
      writeEntries(writer, msg.entries);
      break;
    case 'timeoutNow':
      writer.varint(msg.ballot);
      break;
    case 'notMember':
      writer.varint(msg.configFromSlot);
      writeMembers(writer, msg.members);
      break;
  }
  writer.u32le(crc32c(writer.bytes, 0, 0, writer.offset));
}

/** Exact size of encodeMessage(msg) in bytes (validates like encodeMessage). */
export function messageSize(msg: Message): number {
  const sizer = new Sizer();
  preencodeMessage(sizer, msg);
  return sizer.size;
}

/**
 * Encodes one message into a fresh, exactly-sized Uint8Array that the caller owns.
 * Throws CodecError (BAD_INTEGER, BAD_VALUE, BAD_TYPE) for a message that could not be
 * decoded back: a non-safe or negative integer, a replica id out of range, an empty or
 * repeating configuration, an unknown type or kind. Decode limits are not applied here.
 */
export function encodeMessage(msg: Message): Uint8Array {
  const sizer = new Sizer();
  preencodeMessage(sizer, msg);
  const writer = new Writer(sizer.size);
  writeMessage(writer, msg);
  return writer.finish();
}

// ---------------------------------------------------------------- reading

function readEntries(reader: Reader, limits: DecodeLimits): Entry[] {
  const count = reader.count(limits.entriesMax, ENTRY_BYTES_MIN, 'entry count');
  const entries: Entry[] = new Array(count);
  for (let i = 0; i < count; i++) entries[i] = readEntry(reader, limits);
  return entries;
}

function readBody(reader: Reader, tag: number, tagOffset: number, limits: DecodeLimits): Message {
  const from = readReplicaId(reader, 'from');
  const to = readReplicaId(reader, 'to');
  // Fields are read into locals first: object literal properties evaluate in source order,
  // but locals make the wire order explicit next to the layout in docs/codec.md.
  switch (tag) {
    case MESSAGE_TAGS.prepare: {
      const ballot = reader.varint('ballot');
      const fromSlot = reader.varint('fromSlot');
      const flagsOffset = reader.offset;
      const flags = reader.u8('prepare flags');
      if (flags > (PREPARE_FLAG_TRANSFER | PREPARE_FLAG_COOKIE)) {
        throw new CodecError('SYNOD_CODEC_BAD_VALUE', `prepare flags: unknown bits in ${flags}`, flagsOffset);
      }
      const transfer = (flags & PREPARE_FLAG_TRANSFER) !== 0;
      if ((flags & PREPARE_FLAG_COOKIE) === 0) return { type: 'prepare', from, to, ballot, fromSlot, transfer };
      const cookie = reader.lengthPrefixed(limits.payloadBytesMax, 'primary cookie');
      return { type: 'prepare', from, to, ballot, fromSlot, transfer, cookie };
    }
    case MESSAGE_TAGS.promise: {
      const ballot = reader.varint('ballot');
      const fromSlot = reader.varint('fromSlot');
      const chosenPrefix = reader.varint('chosenPrefix');
      const logStart = reader.varint('logStart');
      const entries = readEntries(reader, limits);
      return { type: 'promise', from, to, ballot, fromSlot, entries, chosenPrefix, logStart };
    }
    case MESSAGE_TAGS.accept: {
      const ballot = reader.varint('ballot');
      const slot = reader.varint('slot');
      const commitSlot = reader.varint('commitSlot');
      const value = readValue(reader, limits);
      return { type: 'accept', from, to, ballot, slot, value, commitSlot };
    }
    case MESSAGE_TAGS.accepted: {
      const ballot = reader.varint('ballot');
      const slot = reader.varint('slot');
      return { type: 'accepted', from, to, ballot, slot };
    }
    case MESSAGE_TAGS.reject: {
      const ballot = reader.varint('ballot');
      const promised = reader.varint('promised');
      return { type: 'reject', from, to, ballot, promised };
    }
    case MESSAGE_TAGS.heartbeat: {
      const ballot = reader.varint('ballot');
      const commitSlot = reader.varint('commitSlot');
      const round = reader.varint('round');
      return { type: 'heartbeat', from, to, ballot, commitSlot, round };
    }
    case MESSAGE_TAGS.heartbeatAck: {
      const ballot = reader.varint('ballot');
      const round = reader.varint('round');
      const chosenPrefix = reader.varint('chosenPrefix');
      return { type: 'heartbeatAck', from, to, ballot, round, chosenPrefix };
    }
    case MESSAGE_TAGS.catchupRequest: {
      const fromSlot = reader.varint('fromSlot');
      return { type: 'catchupRequest', from, to, fromSlot };
    }
    case MESSAGE_TAGS.catchupReply: {
      const commitSlot = reader.varint('commitSlot');
      const snapshotSlot = reader.varint('snapshotSlot');
      const entries = readEntries(reader, limits);
      return { type: 'catchupReply', from, to, entries, commitSlot, snapshotSlot };
    }
    case MESSAGE_TAGS.timeoutNow: {
      const ballot = reader.varint('ballot');
      return { type: 'timeoutNow', from, to, ballot };
    }
    case MESSAGE_TAGS.notMember: {
      const configFromSlot = reader.varint('configFromSlot');
      const members = readMembers(reader, limits, 'notMember message');
      return { type: 'notMember', from, to, configFromSlot, members };
    }
    default:
      throw new CodecError('SYNOD_CODEC_BAD_TYPE', `unknown message tag ${tag}`, tagOffset);
  }
}

/**
 * Decodes one frame produced by encodeMessage. Throws CodecError, and only CodecError, on
 * any malformed input. Command payloads in the result alias `bytes` (zero-copy): copy them
 * before reusing the buffer they came in.
 */
export function decodeMessage(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Message {
  const length = bytes.length;
  if (length > limits.messageBytesMax) {
    throw new CodecError('SYNOD_CODEC_TOO_LARGE', `message of ${length} bytes above the limit ${limits.messageBytesMax}`, 0);
  }
  if (length >= 1 && bytes[0] !== MESSAGE_FORMAT_VERSION) {
    throw new CodecError('SYNOD_CODEC_BAD_VERSION', `unknown message format version ${bytes[0]}`, 0);
  }
  if (length < MESSAGE_BYTES_MIN) {
    throw new CodecError('SYNOD_CODEC_TRUNCATED', `message of ${length} bytes is shorter than the minimum ${MESSAGE_BYTES_MIN}`, length);
  }
  const bodyEnd = length - CRC_BYTES;
  const trailer = new Reader(bytes, bodyEnd);
  const expected = trailer.u32le('checksum');
  const actual = crc32c(bytes, 0, 0, bodyEnd);
  if (actual !== expected) {
    throw new CodecError('SYNOD_CODEC_BAD_CHECKSUM', `checksum ${hex32(actual)} does not match the trailer ${hex32(expected)}`, bodyEnd);
  }
  const reader = new Reader(bytes, 1, bodyEnd);
  const tag = reader.u8('message tag');
  const msg = readBody(reader, tag, 1, limits);
  reader.expectEnd('message');
  return msg;
}

function hex32(value: number): string {
  return '0x' + value.toString(16).padStart(8, '0');
}
