// On-disk format of a log segment, shared by the file and pmem backends.
//
// A segment is one preallocated file of `capacity` bytes:
//
//   0      SegmentHeader (64 B)  magic "SYNODLOG", format version, backend kind, segment index (the epoch),
//                                capacity, CRC32C of bytes [0, 60)
//   64     TailLine (64 B)       pmem only: persisted tail offset + CRC (all zero in file segments)
//   128    group, group, ...     each 8-byte aligned, never crossing a segment
//
//   group  = GroupHeader (32 B) + records
//            crc32c[4,32) | magic "SGRP" | epoch (= segment index) | bodyBytes | recordCount | recordsCrc | firstLsn u64
//            recordsCrc chains the records' own CRC words: a stale record under a fresh header fails it
//   record = RecordHeader (32 B) + payload + zero padding to 8 bytes
//            crc32c(header[4,32) ++ payload ++ padding) | payloadLength | type u8 | 0 u8 | 0 u16 | lsn low 32 bits |
//            slot u64 | ballot u64
//
// Integers are little endian; u64 fields are two u32 words (low, high) holding a safe integer.
// The group header carries the epoch, the record header the LSN: a recycled segment's stale groups fail the
// epoch check, and a stale record under a fresh group header fails its LSN check.
// A group is one commit: it is valid as a whole or not at all. Every group write ends with 32 zero bytes
// (a terminator the next group overwrites), so a clean end always reads as a zero header, even in a
// recycled segment full of stale bytes.

import { crc32c as crc32cJs, installCrc32c } from '../codec/crc32c.js';

export const FORMAT_VERSION = 1;
export const SEGMENT_MAGIC = 'SYNODLOG';
export const SEGMENT_HEADER_BYTES = 64;
export const TAIL_LINE_OFFSET = 64;
export const DATA_START = 128;
export const GROUP_HEADER_BYTES = 32;
export const RECORD_HEADER_BYTES = 32;
export const GROUP_MAGIC = 0x50524753; // "SGRP" little endian
export const BACKEND_KIND_FILE = 1;
export const BACKEND_KIND_PMEM = 2;
/** Record types 1..255 belong to the caller; 0 never appears, so zeroed space never parses as a record. */
export const RECORD_TYPE_MIN = 1;
export const RECORD_TYPE_MAX = 255;
export const SEGMENT_BYTES_MIN = 64 * 1024;
export const SEGMENT_BYTES_MAX = 2 ** 31;

const TWO_32 = 2 ** 32;

/** The CRC32C in use: the pure-TS one, or the SSE4.2 one from the native addon once it loads. */
export let crc32c: (bytes: Uint8Array, previous?: number, start?: number, end?: number) => number = crc32cJs;

export function setCrc32c(fn: typeof crc32c): void {
  // Checked against the published check value before it is trusted with data.
  const check = fn(new TextEncoder().encode('123456789'));
  if (check !== 0xe3069283) throw new Error(`crc32c implementation fails its check value (${check})`);
  crc32c = fn;
  installCrc32c(fn); // wire frames too
}

export function pad8(n: number): number {
  return (n + 7) & ~7;
}

export function recordBytes(payloadLength: number): number {
  return RECORD_HEADER_BYTES + pad8(payloadLength);
}

export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * TWO_32;
}

// One DataView per buffer, reused: creating one per record showed up at ~10% of the append path.
const views = new WeakMap<Uint8Array, DataView>();
export function viewOf(bytes: Uint8Array): DataView {
  let view = views.get(bytes);
  if (view === undefined) {
    view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    views.set(bytes, view);
  }
  return view;
}

// ---------------------------------------------------------------- segment header

export interface SegmentHeader {
  formatVersion: number;
  backendKind: number;
  segmentIndex: number;
  capacity: number;
}

export function encodeSegmentHeader(header: SegmentHeader, target: Uint8Array = new Uint8Array(SEGMENT_HEADER_BYTES)): Uint8Array {
  target.fill(0, 0, SEGMENT_HEADER_BYTES);
  const view = viewOf(target);
  for (let i = 0; i < 8; i++) target[i] = SEGMENT_MAGIC.charCodeAt(i);
  view.setUint32(8, header.formatVersion, true);
  view.setUint32(12, header.backendKind, true);
  view.setUint32(16, header.segmentIndex, true);
  writeU64(view, 24, header.capacity);
  view.setUint32(60, crc32c(target, 0, 0, 60), true);
  return target;
}

/** Returns the header, or a reason it is not one. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader | string {
  if (bytes.length < SEGMENT_HEADER_BYTES) return 'file shorter than a segment header';
  for (let i = 0; i < 8; i++) if (bytes[i] !== SEGMENT_MAGIC.charCodeAt(i)) return 'bad segment magic';
  const view = viewOf(bytes);
  if (view.getUint32(60, true) !== crc32c(bytes, 0, 0, 60)) return 'segment header checksum mismatch';
  return {
    formatVersion: view.getUint32(8, true),
    backendKind: view.getUint32(12, true),
    segmentIndex: view.getUint32(16, true),
    capacity: readU64(view, 24),
  };
}

// ---------------------------------------------------------------- tail line (pmem)

export function encodeTailLine(tailOffset: number, segmentIndex: number, target: Uint8Array, at: number): void {
  const view = viewOf(target);
  view.setUint32(at + 4, tailLineCheck(tailOffset, segmentIndex), true);
  view.setUint32(at, tailOffset, true);
}

function tailLineCheck(tailOffset: number, segmentIndex: number): number {
  const scratch = new Uint8Array(8);
  const view = viewOf(scratch);
  view.setUint32(0, tailOffset, true);
  view.setUint32(4, segmentIndex, true);
  return crc32c(scratch);
}

/** The persisted tail offset, or null if the line is zero or torn. */
export function decodeTailLine(bytes: Uint8Array, at: number, segmentIndex: number): number | null {
  const view = viewOf(bytes);
  const tail = view.getUint32(at, true);
  if (tail === 0) return null;
  return view.getUint32(at + 4, true) === tailLineCheck(tail, segmentIndex) ? tail : null;
}

// ---------------------------------------------------------------- group header

export interface GroupHeader {
  epoch: number;
  bodyBytes: number;
  recordCount: number;
  /** crc32c chained over the records' CRC words, in order (see chainRecordCrc). */
  recordsCrc: number;
  firstLsn: number;
}

/** Extends a group's recordsCrc with the record whose header starts at `at`. */
export function chainRecordCrc(chain: number, bytes: Uint8Array, at: number): number {
  return crc32c(bytes, chain, at, at + 4);
}

export function encodeGroupHeader(group: GroupHeader, target: Uint8Array, at: number): void {
  const view = viewOf(target);
  view.setUint32(at + 4, GROUP_MAGIC, true);
  view.setUint32(at + 8, group.epoch, true);
  view.setUint32(at + 12, group.bodyBytes, true);
  view.setUint32(at + 16, group.recordCount, true);
  view.setUint32(at + 20, group.recordsCrc, true);
  writeU64(view, at + 24, group.firstLsn);
  view.setUint32(at, crc32c(target, 0, at + 4, at + GROUP_HEADER_BYTES), true);
}

/** The header at `at`, or a reason it is not a valid one. Does not check the epoch. */
export function decodeGroupHeader(bytes: Uint8Array, at: number): GroupHeader | string {
  if (at + GROUP_HEADER_BYTES > bytes.length) return 'group header runs past the segment end';
  const view = viewOf(bytes);
  if (view.getUint32(at + 4, true) !== GROUP_MAGIC) return 'bad group magic';
  if (view.getUint32(at, true) !== crc32c(bytes, 0, at + 4, at + GROUP_HEADER_BYTES)) return 'group header checksum mismatch';
  return {
    epoch: view.getUint32(at + 8, true),
    bodyBytes: view.getUint32(at + 12, true),
    recordCount: view.getUint32(at + 16, true),
    recordsCrc: view.getUint32(at + 20, true),
    firstLsn: readU64(view, at + 24),
  };
}

// ---------------------------------------------------------------- records

/** One log record. The store never interprets `payload`. */
export interface LogRecord {
  /** Caller-defined record type, 1..255. */
  type: number;
  /** A slot number (or 0), safe integer >= 0. */
  slot: number;
  /** A ballot (or 0), safe integer >= 0. The store tracks the highest one it holds (see highestBallot()). */
  ballot: number;
  payload: Uint8Array;
}

/** A record read back from the log, with its LSN. */
export interface StoredRecord extends LogRecord {
  lsn: number;
}

export function validateRecord(record: LogRecord, payloadBytesMax: number): string | null {
  if (!Number.isInteger(record.type) || record.type < RECORD_TYPE_MIN || record.type > RECORD_TYPE_MAX) {
    return `record type must be an integer in ${RECORD_TYPE_MIN}..${RECORD_TYPE_MAX}, got ${record.type}`;
  }
  if (!Number.isSafeInteger(record.slot) || record.slot < 0) return `record slot must be a safe integer >= 0, got ${record.slot}`;
  if (!Number.isSafeInteger(record.ballot) || record.ballot < 0) return `record ballot must be a safe integer >= 0, got ${record.ballot}`;
  if (!(record.payload instanceof Uint8Array)) return 'record payload must be a Uint8Array';
  if (record.payload.length > payloadBytesMax) {
    return `record payload of ${record.payload.length} bytes exceeds the limit of ${payloadBytesMax} (raise segmentBytes)`;
  }
  return null;
}

/** Writes record (header, payload, padding) at `at`; returns the bytes written. Caller checked the room. */
export function encodeRecord(record: LogRecord, lsn: number, target: Uint8Array, at: number): number {
  const size = encodeRecordUnsealed(record, lsn, target, at);
  viewOf(target).setUint32(at, crc32c(target, 0, at + 4, at + size), true);
  return size;
}

/**
 * Writes record (header, payload, padding) at `at` but not its CRC word: `sealRecords` sets it later, for
 * a whole run of records in one call (the file log seals a group when it flushes it). Returns the bytes
 * written. Caller checked the room.
 */
export function encodeRecordUnsealed(record: LogRecord, lsn: number, target: Uint8Array, at: number): number {
  const view = viewOf(target);
  const length = record.payload.length;
  view.setUint32(at + 4, length, true);
  view.setUint32(at + 8, record.type, true); // type in the low byte, the other three zero
  view.setUint32(at + 12, lsn % TWO_32, true);
  writeU64(view, at + 16, record.slot);
  writeU64(view, at + 24, record.ballot);
  const payloadAt = at + RECORD_HEADER_BYTES;
  target.set(record.payload, payloadAt);
  const padded = pad8(length);
  if (padded !== length) target.fill(0, payloadAt + length, payloadAt + padded);
  return RECORD_HEADER_BYTES + padded;
}

/**
 * [start, end) of `bytes` holds whole records written by encodeRecordUnsealed: sets each one's CRC word and
 * returns `chain` (a group's recordsCrc) extended with those words, in order (= encodeRecord + chainRecordCrc
 * per record). The native addon's version does the same in one call (installed by setSealRecords).
 */
export let sealRecords: (bytes: Uint8Array, start: number, end: number, chain: number) => number = sealRecordsJs;

function sealRecordsJs(bytes: Uint8Array, start: number, end: number, chain: number): number {
  const view = viewOf(bytes);
  let at = start;
  while (at < end) {
    const size = RECORD_HEADER_BYTES + pad8(view.getUint32(at + 4, true));
    if (at + size > end) throw new Error(`internal: record at ${at} runs past ${end}`);
    view.setUint32(at, crc32c(bytes, 0, at + 4, at + size), true);
    chain = crc32c(bytes, chain, at, at + 4);
    at += size;
  }
  return chain;
}

export function setSealRecords(fn: typeof sealRecords): void {
  // Checked against the TS version on sample records (lengths 0, 5, 300) before it is trusted with data.
  const sample = (seal: typeof sealRecords): [Uint8Array, number] => {
    const bytes = new Uint8Array(1024);
    let at = 0;
    for (const [i, length] of [0, 5, 300].entries()) {
      const payload = new Uint8Array(length).map((_, k) => (k * 31 + i) & 0xff);
      at += encodeRecordUnsealed({ type: 1 + i, slot: 7 * i, ballot: 3 + i, payload }, 1 + i, bytes, at);
    }
    return [bytes, seal(bytes, 0, at, 0x1234)];
  };
  const [want, wantChain] = sample(sealRecordsJs);
  const [got, gotChain] = sample(fn);
  if (gotChain !== wantChain || got.some((b, k) => b !== want[k])) throw new Error('sealRecords implementation disagrees with the TS one');
  sealRecords = fn;
}

/**
 * Checks the record at `at` (which must lie inside [at, end)). Returns its total size in bytes, or a
 * reason it is not valid. `copy` decides whether the payload is copied out or viewed in place.
 */
export function checkRecord(bytes: Uint8Array, at: number, end: number, lsn: number): number | string {
  if (at + RECORD_HEADER_BYTES > end) return 'record header runs past the end of its group';
  const view = viewOf(bytes);
  const length = view.getUint32(at + 4, true);
  const size = RECORD_HEADER_BYTES + pad8(length);
  if (at + size > end) return `record length ${length} runs past the end of its group`;
  const typeWord = view.getUint32(at + 8, true);
  if (typeWord < RECORD_TYPE_MIN || typeWord > RECORD_TYPE_MAX) return `bad record type word ${typeWord}`;
  if (view.getUint32(at + 12, true) !== lsn % TWO_32) return `record carries lsn ${view.getUint32(at + 12, true)}, expected ${lsn % TWO_32}`;
  if (crc32c(bytes, 0, at + 4, at + size) !== view.getUint32(at, true)) return 'record checksum mismatch';
  return size;
}

/** Decodes a record already checked by checkRecord. The payload is a copy: callers may keep it. */
export function decodeRecord(bytes: Uint8Array, at: number, lsn: number): StoredRecord {
  const view = viewOf(bytes);
  const length = view.getUint32(at + 4, true);
  const payloadAt = at + RECORD_HEADER_BYTES;
  return {
    lsn,
    type: bytes[at + 8]!,
    slot: readU64(view, at + 16),
    ballot: readU64(view, at + 24),
    payload: bytes.slice(payloadAt, payloadAt + length),
  };
}

export function recordBallot(bytes: Uint8Array, at: number): number {
  return readU64(viewOf(bytes), at + 24);
}

export function segmentFileName(index: number): string {
  return `seg-${index.toString().padStart(10, '0')}.log`;
}

export function parseSegmentFileName(name: string): number | null {
  const m = /^seg-(\d{10})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}
