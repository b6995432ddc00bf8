// Recovery scan of one segment, shared by the file and pmem backends.
//
// Rules (docs/storage.md, "Recovery"):
// - Groups are read in order; each must have a valid header with this segment's epoch, the expected first
//   LSN, and records that all pass their checks. A group is accepted whole or not at all.
// - A zero header (the terminator written after every group) ends the segment's groups. It is also what a
//   lost write of a group's first page leaves, so the caller checks that nothing valid follows it.
// - Anything else is damage (including a valid header from an earlier epoch: stale bytes where a terminator
//   should be). Whether damage is a torn tail or corruption is decided by the caller
//   (it needs to know what follows: see `findGroupAfter` and the pmem tail pointer).

import {
  DATA_START,
  GROUP_HEADER_BYTES,
  GROUP_MAGIC,
  RECORD_HEADER_BYTES,
  chainRecordCrc,
  checkRecord,
  decodeGroupHeader,
  recordBallot,
  viewOf,
} from './format.js';

export interface ScannedGroup {
  firstLsn: number;
  offset: number;
  recordCount: number;
  bodyBytes: number;
}

export interface SegmentScan {
  groups: ScannedGroup[];
  /** First byte after the last valid group. */
  endOffset: number;
  /** The LSN after the last valid record (the expected LSN if the segment holds none). */
  nextLsn: number;
  highestBallot: number;
  /** The scan stopped at a zero group header at `endOffset` (not at damage, nor at the end of the space). */
  terminated: boolean;
  damage: Damage | null;
}

export interface Damage {
  offset: number;
  reason: string;
  /** Where the damaged group's header starts (= offset unless the damage is in its records). */
  group: number;
  /**
   * The group's header passed its checksum and carries this segment's epoch: it was written whole in this
   * pass, so the damage is not a torn header.
   */
  wholeHeader: boolean;
  /** The whole header's first LSN when that LSN was not the expected one, else null. */
  unexpectedLsn: number | null;
}

/**
 * Scans a whole segment image. `expectLsn` is the LSN the first group must start at (null: the first
 * segment of the log, any start accepted). `limit` bounds the scan (the capacity, or a pmem tail).
 * `onRecord(bytes, at, lsn)` sees each record of each accepted group, in order.
 */
export function scanSegment(
  bytes: Uint8Array,
  segmentIndex: number,
  expectLsn: number | null,
  limit: number,
  onRecord?: (bytes: Uint8Array, at: number, lsn: number) => void,
): SegmentScan {
  const groups: ScannedGroup[] = [];
  let offset = DATA_START;
  let nextLsn = expectLsn ?? 0;
  let highestBallot = 0;
  let damage: Damage | null = null;
  let terminated = false;
  const end = Math.min(limit, bytes.length);
  while (offset + GROUP_HEADER_BYTES <= end) {
    if (isZero(bytes, offset, offset + GROUP_HEADER_BYTES)) {
      terminated = true;
      break;
    }
    const header = decodeGroupHeader(bytes, offset);
    if (typeof header === 'string') {
      damage = { offset, reason: header, group: offset, wholeHeader: false, unexpectedLsn: null };
      break;
    }
    if (header.epoch !== segmentIndex) {
      damage = { offset, reason: `group epoch ${header.epoch} does not match segment ${segmentIndex}`, group: offset, wholeHeader: false, unexpectedLsn: null };
      break;
    }
    const whole = (reason: string, at = offset, unexpectedLsn: number | null = null): Damage => ({ offset: at, reason, group: offset, wholeHeader: true, unexpectedLsn });
    if (expectLsn !== null || groups.length > 0) {
      if (header.firstLsn !== nextLsn) {
        damage = whole(`group starts at lsn ${header.firstLsn}, expected ${nextLsn}`, offset, header.firstLsn);
        break;
      }
    } else if (header.firstLsn < 1) {
      damage = whole(`group starts at lsn ${header.firstLsn}`, offset, header.firstLsn);
      break;
    }
    const bodyStart = offset + GROUP_HEADER_BYTES;
    const bodyEnd = bodyStart + header.bodyBytes;
    if (header.recordCount < 1 || header.bodyBytes % 8 !== 0 || bodyEnd > end) {
      damage = whole(`group of ${header.recordCount} records / ${header.bodyBytes} bytes does not fit`);
      break;
    }
    // Check the whole group before accepting any of it.
    let at = bodyStart;
    let groupBallot = 0;
    let chain = 0;
    for (let i = 0; i < header.recordCount; i++) {
      const size = checkRecord(bytes, at, bodyEnd, header.firstLsn + i);
      if (typeof size === 'string') {
        damage = whole(`${size} (record ${header.firstLsn + i})`, at);
        break;
      }
      chain = chainRecordCrc(chain, bytes, at);
      const ballot = recordBallot(bytes, at);
      if (ballot > groupBallot) groupBallot = ballot;
      at += size;
    }
    if (damage) break;
    if (at !== bodyEnd) {
      damage = whole(`group body has ${bodyEnd - at} bytes after its last record`, at);
      break;
    }
    if (chain !== header.recordsCrc) {
      damage = whole('group records do not match the group checksum (stale or torn records)');
      break;
    }
    if (onRecord) {
      at = bodyStart;
      for (let i = 0; i < header.recordCount; i++) {
        onRecord(bytes, at, header.firstLsn + i);
        at += checkedSize(bytes, at);
      }
    }
    if (groupBallot > highestBallot) highestBallot = groupBallot;
    groups.push({ firstLsn: header.firstLsn, offset, recordCount: header.recordCount, bodyBytes: header.bodyBytes });
    nextLsn = header.firstLsn + header.recordCount;
    offset = bodyEnd;
  }
  return { groups, endOffset: offset, nextLsn, highestBallot, terminated, damage };
}

function checkedSize(bytes: Uint8Array, at: number): number {
  const length = viewOf(bytes).getUint32(at + 4, true);
  return RECORD_HEADER_BYTES + ((length + 7) & ~7);
}

/** Offset of the first valid group header of `epoch` at an 8-aligned offset >= from, or -1. */
export function findGroupAfter(bytes: Uint8Array, from: number, epoch: number): number {
  const view = viewOf(bytes);
  for (let at = (from + 7) & ~7; at + GROUP_HEADER_BYTES <= bytes.length; at += 8) {
    if (view.getUint32(at + 4, true) !== GROUP_MAGIC) continue;
    const header = decodeGroupHeader(bytes, at);
    if (typeof header !== 'string' && header.epoch === epoch) return at;
  }
  return -1;
}

export function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}
