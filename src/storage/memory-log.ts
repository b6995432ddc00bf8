// The memory log: same interface and rules as the file log, nothing on disk. For tests only.
// State lives in a process-wide map keyed by `dir`, so close + open behaves like a restart: committed
// records survive, uncommitted ones are gone. resetMemoryLogs() forgets everything.

import { DEFAULT_READ_BYTES_MAX, DEFAULT_READ_RECORDS_MAX, DEFAULT_SEGMENT_BYTES } from './log.js';
import type { HeadTailCapacity, LogOptions, LogStats, LogStore, ReadLimits, RecoveryInfo } from './log.js';
import { StorageError, misuse } from './errors.js';
import { DATA_START, GROUP_HEADER_BYTES, RECORD_HEADER_BYTES, type LogRecord, type StoredRecord, recordBytes, validateRecord } from './format.js';

interface DurableImage {
  head: number;
  ballotFloor: number;
  records: StoredRecord[]; // records[i].lsn === head + i... after head moves, first kept is at offset
}

const images = new Map<string, DurableImage>();

export function resetMemoryLogs(): void {
  images.clear();
}

export class MemoryLog implements LogStore {
  readonly backend = 'memory' as const;
  recovery!: RecoveryInfo;
  private readonly image: DurableImage;
  private tentative: StoredRecord[] = [];
  private nextLsn: number;
  private ballotDurable: number;
  private closed = false;
  private readonly payloadBytesMax: number;
  private readonly counters: LogStats = { appends: 0, commits: 0, flushes: 0, syncs: 0, bytesWritten: 0 };
  private flushing: Promise<void> | null = null;

  private constructor(
    readonly dir: string,
    options: LogOptions,
  ) {
    let image = images.get(dir);
    if (!image) {
      image = { head: 1, ballotFloor: 0, records: [] };
      images.set(dir, image);
    }
    this.image = image;
    this.payloadBytesMax = (options.segmentBytes ?? DEFAULT_SEGMENT_BYTES) - DATA_START - GROUP_HEADER_BYTES - RECORD_HEADER_BYTES;
    this.nextLsn = image.records.length ? image.records[image.records.length - 1]!.lsn + 1 : image.head;
    this.ballotDurable = image.ballotFloor;
    for (const r of image.records) if (r.ballot > this.ballotDurable) this.ballotDurable = r.ballot;
  }

  static async open(dir: string, options: LogOptions = {}): Promise<MemoryLog> {
    const log = new MemoryLog(dir, options);
    const kept = log.image.records.filter((r) => r.lsn >= log.image.head);
    if (options.onRecord) for (const r of kept) options.onRecord(copy(r));
    log.recovery = {
      headLsn: log.image.head,
      tailLsn: log.nextLsn,
      recordsFound: kept.length,
      highestBallot: log.ballotDurable,
      tornTail: null,
      segments: 0,
      durationMs: 0,
    };
    return log;
  }

  tentativelyAppend(record: LogRecord): number {
    if (this.closed) throw misuse('append on a closed log');
    const problem = validateRecord(record, this.payloadBytesMax);
    if (problem) throw misuse(problem);
    const lsn = this.nextLsn++;
    this.tentative.push({ lsn, type: record.type, slot: record.slot, ballot: record.ballot, payload: record.payload }); // owned from here (LogStore.tentativelyAppend); reads hand out copies
    this.counters.appends++;
    return lsn;
  }

  commit(): Promise<number> {
    if (this.closed) return Promise.reject(misuse('commit on a closed log'));
    this.counters.commits++;
    // Like a real flush, durability arrives later (a macrotask), and concurrent commits share it.
    const previous = this.flushing ?? Promise.resolve();
    const flush = previous.then(
      () =>
        new Promise<void>((resolve) =>
          setImmediate(() => {
            if (this.tentative.length > 0) {
              for (const r of this.tentative) {
                this.image.records.push(r);
                this.counters.bytesWritten += recordBytes(r.payload.length);
                if (r.ballot > this.ballotDurable) this.ballotDurable = r.ballot;
              }
              this.tentative = [];
              this.counters.flushes++;
              this.counters.syncs++;
            }
            resolve();
          }),
        ),
    );
    this.flushing = flush;
    return flush.then(() => this.durableTail() - 1);
  }

  private durableTail(): number {
    const records = this.image.records;
    return records.length ? records[records.length - 1]!.lsn + 1 : this.image.head;
  }

  async read(fromLsn: number, limits: ReadLimits = {}): Promise<StoredRecord[]> {
    if (!Number.isSafeInteger(fromLsn) || fromLsn < 1) throw misuse(`read: bad lsn ${fromLsn}`);
    if (fromLsn < this.image.head) {
      throw new StorageError('SYNOD_STORAGE_COMPACTED', `lsn ${fromLsn} is below the log head ${this.image.head}: a snapshot covers it`);
    }
    const toLsn = limits.toLsn ?? Infinity;
    const recordsMax = limits.recordsMax ?? DEFAULT_READ_RECORDS_MAX;
    const bytesMax = limits.bytesMax ?? DEFAULT_READ_BYTES_MAX;
    const out: StoredRecord[] = [];
    let bytes = 0;
    for (const r of this.image.records) {
      if (r.lsn < fromLsn) continue;
      if (r.lsn >= toLsn || out.length >= recordsMax || bytes >= bytesMax) break;
      out.push(copy(r));
      bytes += r.payload.length;
    }
    return out;
  }

  async advanceHead(lsn: number): Promise<void> {
    const tail = this.durableTail();
    if (!Number.isSafeInteger(lsn) || lsn < this.image.head || lsn > tail) {
      throw misuse(`advanceHead(${lsn}): must lie in [head ${this.image.head}, durable tail ${tail}]`);
    }
    this.image.ballotFloor = this.ballotDurable;
    this.image.head = lsn;
    this.image.records = this.image.records.filter((r) => r.lsn >= lsn);
  }

  headTailCapacity(): HeadTailCapacity {
    let used = 0;
    for (const r of this.image.records) used += recordBytes(r.payload.length);
    return { head: this.image.head, tail: this.durableTail(), appendedTail: this.nextLsn, usedBytes: used, capacityBytes: used };
  }

  highestBallot(): number {
    return this.ballotDurable;
  }

  stats(): LogStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushing) await this.flushing;
    this.tentative = [];
  }
}

function copy(r: StoredRecord): StoredRecord {
  return { lsn: r.lsn, type: r.type, slot: r.slot, ballot: r.ballot, payload: r.payload.slice() };
}
