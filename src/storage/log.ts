// The log store interface, shared by the file, pmem and memory backends (one compliance suite runs
// against all three: test/storage/compliance.ts).
//
// Shape taken from the verified persistent-memory log of microsoft/verified-storage (setup, start,
// tentatively_append, commit, read, advance_head, get_head_tail_and_capacity):
// - tentativelyAppend() assigns the next LSN and buffers the record; nothing is durable yet.
// - commit() makes everything appended before it durable as one group and resolves with the last durable
//   LSN. Concurrent commits share one write + one fdatasync (group commit). Commits resolve in LSN order.
// - advanceHead(lsn) says a durable snapshot covers everything below lsn; whole segments below are
//   deleted or recycled.
// LSNs start at 1 and are never reused for durable records. A crash (or close()) drops records that were
// appended but not committed.

import type { LogRecord, StoredRecord } from './format.js';
import type { StorageIo } from './io.js';
import type { FileLogOptions } from './file-log.js';

export type { LogRecord, StoredRecord } from './format.js';

export type LogBackend = 'file' | 'pmem' | 'memory';

export interface LogOptions {
  /** Bytes per segment file (preallocated). Default 64 MiB. A record must fit in one segment. */
  segmentBytes?: number;
  /**
   * Freed segments kept for reuse instead of deleted (recycling beats allocating). Default 8: a
   * leader's snapshot frees its four-interval log at once (leaderSnapshotIntervalFactor), and every
   * segment not kept then is zero-filled again before the next one.
   */
  spareSegmentsMax?: number;
  /** Largest single write group (a commit bigger than this is written as several groups). Default 8 MiB. */
  groupBytesMax?: number;
  /** Called during recovery with every record at or above the head, in LSN order. */
  onRecord?: (record: StoredRecord) => void;
  /** Injected file system (tests, simulator). Default node:fs. File backend only. */
  io?: StorageIo;
}

export interface RecoveryInfo {
  /** First LSN kept (records below it are covered by a snapshot). */
  headLsn: number;
  /** One past the last durable LSN: the next record appended gets this LSN. */
  tailLsn: number;
  /** Records at or above the head. */
  recordsFound: number;
  /** Highest ballot in any record ever kept (including the floor saved when the head advanced). */
  highestBallot: number;
  /** Where a torn tail was cut off, if one was. */
  tornTail: { file: string; offset: number; reason: string } | null;
  segments: number;
  durationMs: number;
}

export interface HeadTailCapacity {
  /** First LSN kept. */
  head: number;
  /** One past the last durable LSN. */
  tail: number;
  /** One past the last LSN appended (durable or not). */
  appendedTail: number;
  /** Bytes used by records from the head's segment to the tail. */
  usedBytes: number;
  /** Bytes of all segment files held (including prepared and spare segments). */
  capacityBytes: number;
}

export interface ReadLimits {
  /** Default 1024. */
  recordsMax?: number;
  /** Stop after the record that crosses this many payload bytes. Default 16 MiB. */
  bytesMax?: number;
  /** Stop before this LSN (exclusive). Default: the durable tail. */
  toLsn?: number;
}

export interface LogStats {
  appends: number;
  commits: number;
  /** Group writes (one writev, or one persist for pmem). */
  flushes: number;
  /** fdatasync / msync / persist calls. */
  syncs: number;
  bytesWritten: number;
}

export interface LogStore {
  readonly backend: LogBackend;
  readonly dir: string;
  /** File and pmem logs: the write path taken at open (FileLog.writePath). */
  readonly writePath?: 'native' | 'injected' | 'flush-loop' | 'mapped';
  readonly recovery: RecoveryInfo;
  /**
   * Buffers a record and returns its LSN. Synchronous, no I/O. Throws StorageError if the store
   * failed. The store owns `record.payload` from here on: do not modify it afterwards (the file
   * and pmem logs copy it into their buffers, the memory log keeps it; reads return copies).
   */
  tentativelyAppend(record: LogRecord): number;
  /** Resolves with the last durable LSN once every record appended before the call is durable. */
  commit(): Promise<number>;
  /** Durable records from `fromLsn` on. Throws SYNOD_STORAGE_COMPACTED below the head. Payloads are copies. */
  read(fromLsn: number, limits?: ReadLimits): Promise<StoredRecord[]>;
  /** A durable snapshot covers every LSN below `lsn`: persist the new head, free whole segments below it. */
  advanceHead(lsn: number): Promise<void>;
  headTailCapacity(): HeadTailCapacity;
  /** Highest ballot in any durable record (or saved as the floor when the head advanced). */
  highestBallot(): number;
  stats(): LogStats;
  /** Waits for an in-flight group write, drops uncommitted appends, releases files. */
  close(): Promise<void>;
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
// Spares never raise a log directory's peak: a segment becomes one only when a compaction frees it,
// and the log held it just before. With 2, a leader (snapshotting every 256 MiB of log, so freeing
// four or five 64 MiB segments at a time) deleted all but two and zero-filled most of its rolls:
// a fill running a quarter of the time at ~0.3 of a core (docs/performance.md, session 14).
export const DEFAULT_SPARE_SEGMENTS_MAX = 8;
export const DEFAULT_GROUP_BYTES_MAX = 8 * 1024 * 1024;
export const DEFAULT_READ_RECORDS_MAX = 1024;
export const DEFAULT_READ_BYTES_MAX = 16 * 1024 * 1024;

/** Opens (recovering) the log in `dir` with the chosen backend. */
/** `options`: the file and pmem backends also take FileLogOptions (the memory log ignores those). */
export async function openLog(dir: string, backend: LogBackend, options: FileLogOptions = {}): Promise<LogStore> {
  switch (backend) {
    case 'file': {
      const { FileLog } = await import('./file-log.js');
      return FileLog.open(dir, options);
    }
    case 'pmem': {
      const { PmemLog } = await import('./pmem-log.js');
      return PmemLog.open(dir, options);
    }
    case 'memory': {
      const { MemoryLog } = await import('./memory-log.js');
      return MemoryLog.open(dir, options);
    }
    default:
      throw new Error(`unknown log backend ${String(backend)}: use file, pmem or memory`);
  }
}

export function parseLogBackend(text: string): LogBackend {
  if (text === 'file' || text === 'pmem' || text === 'memory') return text;
  throw new Error(`--log-backend must be file, pmem or memory, got ${JSON.stringify(text)}`);
}
