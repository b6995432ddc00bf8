// The file log (and, with backend 'pmem', the persistent-memory log): segmented, append-only,
// group-committed. Format in format.ts, rules in docs/storage.md.
//
// Write path (group commit):
//
//   tentativelyAppend ──header+copy──▶ pending groups (1 MiB chunks, reused)      no I/O, no await
//   commit ─▶ waiter(target LSN) ─▶ if no flush in flight: flush()
//   flush: take ALL pending groups ─▶ seal (record CRCs, group headers) ─▶ per group: one write
//          ─▶ fdatasync ─▶ resolve waiters ≤ durable
//          while it runs, new appends pile up and the next flush takes them all at once.
//   With the addon (submitLoop): write+fdatasync is one pool job of the log's ordered writer, and the next
//   flush is queued behind the running one (jobs run strictly in order), so the disk never waits for the
//   JS thread between groups. Otherwise (no addon, injected io): flushLoop, one flush at a time.
//
// Each flush is one or more write groups (one per segment touched, or per groupBytesMax), each written
// and fdatasynced before the next is written. Only the last group of the log can be torn by a crash.
// Segments are preallocated (zero-filled, or recycled from below the head) by a background task that
// also fsyncs the directory, so a roll costs no allocation and nothing in a new segment is acknowledged
// before its name is durable.
//
// The pmem backend shares all of this except the write path: each segment is memory-mapped (MAP_SYNC on
// DAX if possible, pre-faulted); a commit copies its groups into the mapping, makes exactly that range
// durable (CLWB + SFENCE under MAP_SYNC, msync of the page-aligned range otherwise), then writes and
// persists the segment's tail pointer. Recovery trusts the tail: damage before it is corruption, anything
// after it is a torn tail.

import { DEFAULT_GROUP_BYTES_MAX, DEFAULT_READ_BYTES_MAX, DEFAULT_READ_RECORDS_MAX, DEFAULT_SEGMENT_BYTES, DEFAULT_SPARE_SEGMENTS_MAX } from './log.js';
import type { HeadTailCapacity, LogOptions, LogStats, LogStore, ReadLimits, RecoveryInfo } from './log.js';
import { StorageError, corruptError, ioError, misuse, onFile } from './errors.js';
import {
  BACKEND_KIND_FILE,
  BACKEND_KIND_PMEM,
  DATA_START,
  TAIL_LINE_OFFSET,
  FORMAT_VERSION,
  GROUP_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  SEGMENT_BYTES_MAX,
  SEGMENT_BYTES_MIN,
  SEGMENT_HEADER_BYTES,
  type LogRecord,
  type StoredRecord,
  checkRecord,
  decodeGroupHeader,
  decodeRecord,
  decodeSegmentHeader,
  decodeTailLine,
  encodeTailLine,
  encodeGroupHeader,
  encodeRecordUnsealed,
  encodeSegmentHeader,
  parseSegmentFileName,
  recordBytes,
  sealRecords,
  segmentFileName,
  validateRecord,
} from './format.js';
import { GroupIndex } from './group-index.js';
import { readHead, writeHead } from './head-file.js';
import { BULK_STEP_BYTES, BulkPacer, type PacerClock, realPacerClock } from './pacer.js';
import { type OrderedWriter, type StorageIo, diskFaultHookInstalled, mkdirDurable, nodeIo, readFully, syncDir, withDiskFaults, writevAll } from './io.js';
import { findGroupAfter, scanSegment } from './scan.js';
import { type PmemMappingCalls, loadNative, tryLoadNative, tryNativeCrc } from './native.js';

const CHUNK_BYTES = 1024 * 1024;
const CHUNK_POOL_MAX = 64;
/** Native path: group writes queued at once (one running, one waiting for it). */
const PIPELINE_DEPTH = 2;
const TERMINATOR = new Uint8Array(GROUP_HEADER_BYTES);
const TWO_32 = 2 ** 32;
/** The on-disk format is little endian: header words are written through a Uint32Array only on such hosts. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

interface Segment {
  index: number;
  path: string;
  fd: number;
  capacity: number;
  /** First LSN of its first durable group, or null while it holds none. */
  firstLsn: number | null;
  /** End of its durable groups. */
  durableEnd: number;
  /** pmem: the mapping of the whole segment, and whether it was made with MAP_SYNC. */
  map: Uint8Array | null;
  mapSync: boolean;
}

interface Part {
  buf: Uint8Array;
  start: number;
  end: number;
}

interface PendingGroup {
  segmentIndex: number;
  offset: number;
  firstLsn: number;
  count: number;
  bodyBytes: number;
  ballotMax: number;
  recordsCrc: number;
  parts: Part[];
}

interface Waiter {
  target: number;
  resolve: (durable: number) => void;
  reject: (error: unknown) => void;
}

export interface FileLogOptions extends LogOptions {
  /**
   * pmem only: how a range is made durable. 'auto' (default): CLWB+SFENCE if the mapping has MAP_SYNC
   * (DAX), else msync. 'cacheline': always CLWB+SFENCE (durable only on DAX; measures the flush path
   * elsewhere). 'msync': always msync.
   */
  pmemFlush?: 'auto' | 'cacheline' | 'msync';
  /** Tests: the clock a segment's paced zero-fill times its steps and rests by (pacer.ts). */
  pacerClock?: PacerClock;
  /** pmem, the storage simulator: a model of the addon's mapping calls (PowerLossFs.mount().pmem) instead of the addon. */
  pmemAddon?: PmemMappingCalls;
}

export class FileLog implements LogStore {
  recovery!: RecoveryInfo;
  private readonly addon: PmemMappingCalls | null;
  private readonly pmemFlush: 'auto' | 'cacheline' | 'msync';
  private readonly backendKind: number;

  private readonly io: StorageIo;
  /**
   * Native ordered writer (addon), used on the real file system (no injected `options.io`): a group's
   * write + fdatasync is ONE thread-pool job, and the next group's job is queued while one is in flight
   * (the addon runs a writer's jobs strictly one after another, so a group is written only after the one
   * before it is durable). Without it the JS thread must see the write complete before it issues the sync,
   * and see the sync complete before it issues the next write; while it is busy encoding the next group
   * (milliseconds at 4 MiB groups) the disk sits idle. See docs/storage.md, "Performance".
   */
  private readonly writeAndSync: OrderedWriter | null;
  /** Which write path the log took at open (diagnostics, tests). */
  readonly writePath: 'native' | 'injected' | 'flush-loop' | 'mapped';
  /** Submitted native writes not yet processed, oldest first; each settles (never rejects) after its handler ran. */
  private inflight: Promise<void>[] = [];
  /** Last LSN handed to the native writer (durable once its write completes). */
  private submittedLsn = 0;
  private readonly segmentBytes: number;
  private readonly spareSegmentsMax: number;
  private readonly groupBytesMax: number;
  readonly payloadBytesMax: number;

  private segments: Segment[] = [];
  private spares: string[] = [];
  private spareSeq = 0;
  private prepared: { index: number; promise: Promise<Segment> } | null = null;
  /** Someone waits for the prepared segment (a roll, a close): its zero-fill stops resting between steps. */
  private prepareUrgent = false;
  private readonly pacerClock: PacerClock;
  private readonly index = new GroupIndex();

  private head = 1;
  private nextLsn = 1;
  private durableLsn = 0; // last durable LSN (inclusive)
  private ballotDurable = 0;

  // Reservation cursor: where the next group would go.
  private reserveSegment = 0;
  private reserveOffset = DATA_START;
  private pending: PendingGroup[] = [];
  private chunk: Uint8Array = new Uint8Array(0);
  private chunkWords: Uint32Array = new Uint32Array(0);
  private chunkUsed = 0;
  private chunkPool: Uint8Array[] = [];

  private waiters: Waiter[] = [];
  /** The head moves in flight, chained (advanceHead). */
  private headMoves: Promise<void> = Promise.resolve();
  private flushing: Promise<void> | null = null;
  private failed: StorageError | null = null;
  private closed = false;
  private readonly counters: LogStats = { appends: 0, commits: 0, flushes: 0, syncs: 0, bytesWritten: 0 };

  protected constructor(
    readonly dir: string,
    options: FileLogOptions,
    readonly backend: 'file' | 'pmem' = 'file',
  ) {
    this.addon = backend === 'pmem' ? (options.pmemAddon ?? loadNative()) : null;
    this.pmemFlush = options.pmemFlush ?? 'auto';
    this.backendKind = backend === 'pmem' ? BACKEND_KIND_PMEM : BACKEND_KIND_FILE;
    this.io = options.io ?? nodeIo;
    const native = backend === 'file' && options.io === undefined ? tryLoadNative().addon : null;
    const injectedWriter = backend === 'file' ? options.io?.orderedWriter?.() : undefined;
    if (injectedWriter) {
      this.writeAndSync = injectedWriter; // the storage simulator's model of the addon's writer
    } else if (native && typeof native.createWriter === 'function' && typeof native.writeSync === 'function') {
      const writer = native.createWriter();
      const run = (fd: number, buffers: Uint8Array[], position: number, sync: boolean) => native.writeSync!(writer, fd, buffers, position, sync);
      // The test-only disk fault hook lives in nodeIo, which this writer bypasses: applied here.
      this.writeAndSync = diskFaultHookInstalled() ? withDiskFaults(run) : (fd, buffers, position) => run(fd, buffers, position, true);
    } else {
      this.writeAndSync = null;
    }
    this.writePath = backend === 'pmem' ? 'mapped' : injectedWriter ? 'injected' : this.writeAndSync ? 'native' : 'flush-loop';
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.pacerClock = options.pacerClock ?? realPacerClock;
    this.spareSegmentsMax = options.spareSegmentsMax ?? DEFAULT_SPARE_SEGMENTS_MAX;
    this.groupBytesMax = options.groupBytesMax ?? DEFAULT_GROUP_BYTES_MAX;
    if (!Number.isInteger(this.segmentBytes) || this.segmentBytes < SEGMENT_BYTES_MIN || this.segmentBytes > SEGMENT_BYTES_MAX || this.segmentBytes % 8) {
      throw misuse(`segmentBytes must be a multiple of 8 in ${SEGMENT_BYTES_MIN}..${SEGMENT_BYTES_MAX}, got ${this.segmentBytes}`);
    }
    if (!Number.isInteger(this.groupBytesMax) || this.groupBytesMax < 4096) throw misuse(`groupBytesMax must be >= 4096, got ${this.groupBytesMax}`);
    if (!Number.isInteger(this.spareSegmentsMax) || this.spareSegmentsMax < 0) throw misuse('spareSegmentsMax must be an integer >= 0');
    this.payloadBytesMax = this.segmentBytes - DATA_START - GROUP_HEADER_BYTES - RECORD_HEADER_BYTES;
  }

  static async open(dir: string, options: FileLogOptions = {}): Promise<FileLog> {
    return FileLog.openBackend(dir, options, 'file');
  }

  protected static async openBackend(dir: string, options: FileLogOptions, backend: 'file' | 'pmem'): Promise<FileLog> {
    tryNativeCrc();
    const log = new FileLog(dir, options, backend);
    try {
      await log.recover(options);
    } catch (error) {
      await log.closeFiles();
      throw error instanceof StorageError ? error : ioError(error, 'recovery', dir);
    }
    return log;
  }

  // ------------------------------------------------------------ recovery

  private async recover(options: FileLogOptions): Promise<void> {
    const started = performance.now();
    const io = this.io;
    // Each file's failures name that file (EISDIR, EACCES: not the device; see ioError).
    await onFile('create the log directory', this.dir, mkdirDurable(io, this.dir));
    const names = (await onFile('list the log directory', this.dir, io.readdir(this.dir))).sort();
    for (const name of names) {
      // Half-prepared segments and half-written metadata: never acknowledged, never named. Drop them.
      if (name.endsWith('.tmp')) await onFile('delete a leftover temp file', `${this.dir}/${name}`, io.unlink(`${this.dir}/${name}`));
      const spare = /^spare-(\d+)\.log$/.exec(name);
      if (spare) {
        this.spares.push(`${this.dir}/${name}`);
        // New spare names must never reuse a present one (a rename would silently replace it).
        this.spareSeq = Math.max(this.spareSeq, Number(spare[1]) + 1);
      }
    }
    for (const spare of this.spares) {
      // Only a regular file we can write is a spare: a directory was taken at the next roll, which failed
      // and left a prep-N.tmp directory behind that blocked every later open.
      await onFile('close', spare, io.close(await onFile('open spare segment (read-write)', spare, io.open(spare, 'r+'))));
    }
    const indices = names.map(parseSegmentFileName).filter((i): i is number => i !== null);
    const headState = await readHead(io, this.dir);
    // Without log.head the log must start at segment 1, lsn 1. Else the head advanced and its file is lost,
    // and with it the ballot floor (the highest ballot of the freed records): refuse rather than lower it.
    const headMissing = (start: string) =>
      corruptError(
        `${this.dir}/log.head`,
        0,
        `log.head is missing, but the log starts at ${start}: the head advanced, and log.head held it and the ballot floor; restore log.head from a backup or recover the replica from its peers`,
      );
    if (headState === null && indices.length > 0 && indices[0]! > 1) throw headMissing(segmentFileName(indices[0]!));
    if (indices.length === 0 && headState === null && this.spares.length > 0) {
      // Spares are made only by freeing segments below an advanced head: this log's files are missing.
      throw corruptError(this.spares[0]!, 0, 'a spare segment exists but no segment file (seg-*.log) and no log.head: the log\'s files are missing');
    }
    // Without a head file the head never advanced: the log starts at lsn 1 (else records are missing).
    let expect: number | null = headState === null ? 1 : null;
    let firstLsn: number | null = null;
    let ballot = headState?.ballotFloor ?? 0;
    let records = 0;
    let tornTail: RecoveryInfo['tornTail'] = null;
    const headLsn = headState?.headLsn ?? 1;
    const onRecord = options.onRecord;
    let image = new Uint8Array(0);
    // Where the groups read so far stop short of a segment's end (a zero header, or an empty segment's
    // start): if a later group does not continue from there, that zero header is a lost write.
    let logEnd: { path: string; offset: number } | null = null;
    let emptyBefore: Segment | null = null;
    // Terminators to write back (torn tails): only once every check passed, so a refused open writes nothing.
    const repairs: { segment: Segment; offset: number }[] = [];

    for (let i = 0; i < indices.length; i++) {
      const index = indices[i]!;
      if (i > 0 && index !== indices[i - 1]! + 1) {
        throw corruptError(`${this.dir}/${segmentFileName(indices[i - 1]! + 1)}`, 0, 'segment file missing from the middle of the log');
      }
      const segment = await this.openSegmentFile(index);
      this.segments.push(segment);
      if (!segment.map && image.length < segment.capacity) image = new Uint8Array(segment.capacity);
      const bytes = await this.readSegmentImage(segment, image);
      // pmem: the persisted tail pointer bounds what was acknowledged.
      const persistedTail = segment.map ? decodeTailLine(bytes, TAIL_LINE_OFFSET, index) : null;
      const scan = scanSegment(bytes, index, expect, persistedTail ?? segment.capacity, (b, at, lsn) => {
        if (lsn < headLsn) return;
        records++;
        if (onRecord) onRecord(decodeRecord(b, at, lsn));
      });
      for (const g of scan.groups) this.index.add(g.firstLsn, index, g.offset);
      if (scan.groups.length > 0) {
        segment.firstLsn = scan.groups[0]!.firstLsn;
        if (firstLsn === null) firstLsn = segment.firstLsn;
        expect = scan.nextLsn;
      }
      segment.durableEnd = scan.endOffset;
      if (scan.highestBallot > ballot) ballot = scan.highestBallot;
      if (persistedTail !== null && (scan.damage || scan.endOffset !== persistedTail)) {
        const at = scan.damage?.offset ?? scan.endOffset;
        throw corruptError(segment.path, at, `${scan.damage?.reason ?? 'log ends early'} before the persisted tail at byte ${persistedTail}`);
      }
      if (persistedTail !== null && persistedTail + GROUP_HEADER_BYTES <= segment.capacity && bytes[persistedTail] !== 0) {
        // Whatever lies past the persisted tail was never acknowledged: a torn tail. Restore the terminator.
        repairs.push({ segment, offset: persistedTail });
        tornTail = { file: segment.path, offset: persistedTail, reason: 'data past the persisted tail pointer' };
      }
      if (scan.terminated && persistedTail === null) {
        // A zero header is also what a lost write of a group's first page leaves (the old terminator). Every
        // write ends with a terminator that the next group overwrites, so no group of this pass lies past
        // the real end: if one does, the zero header hides acknowledged groups.
        const after = findGroupAfter(bytes, scan.endOffset + GROUP_HEADER_BYTES, index);
        if (after >= 0) {
          throw corruptError(segment.path, scan.endOffset, `zero group header (a lost or misdirected write?), but a valid group of this segment follows at byte ${after}`);
        }
      }
      const damage = scan.damage;
      if (damage !== null && damage.unexpectedLsn !== null) {
        // A whole group header of this pass is never a torn write: records before it are missing (or it is
        // misplaced). If this segment starts with it, the records are missing where the log stopped short.
        if (i === 0 && damage.group === DATA_START && headState === null && damage.unexpectedLsn > 1) {
          throw headMissing(`lsn ${damage.unexpectedLsn} (${segment.path})`);
        }
        if (damage.group === DATA_START && logEnd !== null && expect !== null && damage.unexpectedLsn > expect) {
          throw corruptError(
            logEnd.path,
            logEnd.offset,
            `the log's groups stop here at lsn ${expect} (a zero group header: a lost or misdirected write?), but ${segment.path} starts at lsn ${damage.unexpectedLsn}: records ${expect}..${damage.unexpectedLsn - 1} are missing`,
          );
        }
        throw corruptError(segment.path, damage.offset, `${damage.reason}: a whole group header of this segment, not a torn write`);
      }
      if (scan.groups.length > 0 && emptyBefore !== null) {
        // Only the last segment (prepared ahead, or cut at a torn tail) can be empty.
        throw corruptError(emptyBefore.path, DATA_START, `segment holds no group, but the later ${segment.path} does (from lsn ${scan.groups[0]!.firstLsn})`);
      }
      if (scan.groups.length > 0) logEnd = scan.endOffset + GROUP_HEADER_BYTES <= segment.capacity ? { path: segment.path, offset: scan.endOffset } : null;
      else if (logEnd === null) logEnd = { path: segment.path, offset: DATA_START };
      if (scan.groups.length === 0 && emptyBefore === null) emptyBefore = segment;
      if (damage) {
        // Torn tail or corruption? Every group write ends with a zero terminator and a roll waits for the
        // old segment's fdatasync, so damage is a torn tail only if no valid group of this pass follows it,
        // here or in a later segment. The search starts at the damage itself (a torn header never passes
        // as a group), or past the damaged group's whole header when its records are what failed.
        const laterHere = findGroupAfter(bytes, damage.wholeHeader ? damage.group + GROUP_HEADER_BYTES : damage.offset, index);
        if (laterHere >= 0) throw corruptError(segment.path, damage.offset, `${damage.reason}; a valid group follows at byte ${laterHere}`);
        for (let j = i + 1; j < indices.length; j++) {
          const later = await this.openSegmentFile(indices[j]!);
          this.segments.push(later);
          if (!later.map && image.length < later.capacity) image = new Uint8Array(later.capacity);
          const laterBytes = await this.readSegmentImage(later, image);
          if (decodeTailLine(laterBytes, TAIL_LINE_OFFSET, later.index) !== null || findGroupAfter(laterBytes, DATA_START, later.index) >= 0) {
            throw corruptError(segment.path, damage.offset, `${damage.reason}; later segment ${later.path} holds valid data`);
          }
        }
        // A torn tail: put the terminator back where the last valid group ends.
        const cut = scan.endOffset;
        if (cut + GROUP_HEADER_BYTES <= segment.capacity) repairs.push({ segment, offset: cut });
        tornTail = { file: segment.path, offset: cut, reason: `${damage.reason} at byte ${damage.offset}` };
        break;
      }
    }

    if (headState !== null && firstLsn === null) {
      // The head file is written only once the log holds records, and the segment holding the last durable
      // record is never freed: some segment must hold a group.
      const what = indices.length === 0 ? 'no segment file (seg-*.log) is left' : 'no segment holds a record';
      throw corruptError(`${this.dir}/log.head`, 12, `the head file says the log starts at lsn ${headLsn}, but ${what}: the log's records are missing`);
    }
    if (firstLsn !== null && headLsn < firstLsn && headState !== null) {
      throw corruptError(this.segments[0]!.path, DATA_START, `log starts at lsn ${firstLsn} but the head file says ${headLsn}: records are missing`);
    }
    const tail = expect ?? headLsn;
    if (headLsn > tail) throw corruptError(`${this.dir}/log.head`, 12, `head lsn ${headLsn} is beyond the log's tail ${tail}`);

    for (const { segment, offset } of repairs) {
      if (segment.map) {
        segment.map.fill(0, offset, offset + GROUP_HEADER_BYTES);
        this.persistRange(segment, offset, GROUP_HEADER_BYTES);
      } else {
        await onFile('write a torn-tail terminator', segment.path, writevAll(io, segment.fd, [new Uint8Array(GROUP_HEADER_BYTES)], offset));
        await onFile('fdatasync', segment.path, io.fdatasync(segment.fd));
      }
    }
    // Anything recovered may still sit only in the page cache (a killed process): make it durable before
    // reporting it as such.
    for (const s of this.segments) {
      if (s.firstLsn === null) continue;
      if (s.map) this.persistRange(s, DATA_START, s.durableEnd - DATA_START);
      else await onFile('fdatasync', s.path, io.fdatasync(s.fd));
    }
    this.head = Math.max(headLsn, firstLsn ?? headLsn);
    this.nextLsn = tail;
    this.durableLsn = tail - 1;
    this.ballotDurable = ballot;

    // Segments wholly below the head (their removal was cut short by a crash) become spares: only as the
    // head file says, never on what the scan found (a segment that reads as empty is evidence, not garbage).
    if (headState !== null) await this.freeSegmentsBelowHead();
    if (this.segments.length === 0) {
      this.segments.push(await this.prepareSegment(1));
    }
    // The flush loop rolls into a segment only once the previous one's write is durable, so a
    // power cut leaves at most two empty segments at the end: the one rolled into and the one
    // prepared ahead. The native writer's pipeline can have rolled into several, each name durable
    // and its first write still queued, and lose them all. Appends continue after the last group
    // (below: the first empty segment, or the prepared one), so the empty ones past those two are
    // retired, highest first (a cut meanwhile leaves no gap in the names); else the log went on
    // in the last of them, and the next start refused the empty ones before it as corruption.
    let trailingEmpty = 0;
    for (let k = this.segments.length - 1; k >= 0 && this.segments[k]!.firstLsn === null; k--) trailingEmpty++;
    if (trailingEmpty > 2) {
      const extra = this.segments.splice(this.segments.length - (trailingEmpty - 2)).reverse();
      await this.retireSegments(extra);
    }
    let last = this.segments[this.segments.length - 1]!;
    if (last.firstLsn === null && this.segments.length > 1) {
      // An empty last segment is the one prepared ahead before the restart: it stays the prepared one,
      // if it has this log's size. Appends place groups in a segment not yet rolled into by
      // segmentBytes, so one prepared with another size (segmentBytes changed across the restart)
      // would be written past its end: it becomes a spare, and is prepared again (resized).
      this.segments.pop();
      if (last.capacity === this.segmentBytes) {
        this.prepared = { index: last.index, promise: Promise.resolve(last) };
      } else {
        await this.retireSegments([last], true);
        this.startPrepare(last.index);
      }
      last = this.segments[this.segments.length - 1]!;
    } else {
      this.startPrepare(last.index + 1);
    }
    this.reserveSegment = last.index;
    this.reserveOffset = last.durableEnd;
    this.recovery = {
      headLsn: this.head,
      tailLsn: tail,
      recordsFound: records,
      highestBallot: ballot,
      tornTail,
      segments: this.segments.length,
      durationMs: performance.now() - started,
    };
  }

  /** The whole segment: its mapping (pmem), or read into `image` (zeros past a short file). */
  private async readSegmentImage(segment: Segment, image: Uint8Array): Promise<Uint8Array> {
    if (segment.map) return segment.map;
    const bytes = image.subarray(0, segment.capacity);
    const got = await onFile('read', segment.path, readFully(this.io, segment.fd, bytes, segment.capacity, 0));
    if (got < segment.capacity) bytes.fill(0, got);
    return bytes;
  }

  private async openSegmentFile(index: number): Promise<Segment> {
    const path = `${this.dir}/${segmentFileName(index)}`;
    const fd = await onFile('open segment (read-write)', path, this.io.open(path, 'r+'));
    const segment: Segment = { index, path, fd, capacity: 0, firstLsn: null, durableEnd: DATA_START, map: null, mapSync: false };
    try {
      const size = await onFile('fstat', path, this.io.fstatSize(fd));
      const headerBytes = new Uint8Array(DATA_START);
      await onFile('read', path, readFully(this.io, fd, headerBytes, DATA_START, 0));
      const header = decodeSegmentHeader(headerBytes);
      if (typeof header === 'string') throw corruptError(path, 0, header);
      if (header.backendKind !== this.backendKind) {
        throw new StorageError(
          'SYNOD_STORAGE_MISUSE',
          `${path} was written by the ${header.backendKind === BACKEND_KIND_PMEM ? 'pmem' : 'file'} backend; open it with that backend`,
          path,
          12,
        );
      }
      // The pmem tail line is unused in file segments: it must be zero.
      for (let at = SEGMENT_HEADER_BYTES; at < DATA_START && !this.addon; at++) {
        if (headerBytes[at] !== 0) throw corruptError(path, at, 'non-zero byte in the unused tail line of a file segment');
      }
      if (header.formatVersion > FORMAT_VERSION) {
        throw new StorageError('SYNOD_STORAGE_BAD_VERSION', `${path} has format version ${header.formatVersion}; this build reads up to ${FORMAT_VERSION}: upgrade Synod`, path, 8);
      }
      if (header.segmentIndex !== index) throw corruptError(path, 16, `segment header says index ${header.segmentIndex}, file name says ${index}`);
      if (header.capacity !== size) throw corruptError(path, 24, `segment header says ${header.capacity} bytes, file has ${size}`);
      segment.capacity = header.capacity;
      if (this.addon) this.mapSegment(segment);
      return segment;
    } catch (error) {
      await this.io.close(fd);
      throw error;
    }
  }

  // ------------------------------------------------------------ segments: prepare, roll, recycle

  /**
   * Creates segment `index`: recycled spare or zero-filled file, header, fdatasync, rename, dir
   * fsync. `ahead`: prepared before it is needed (startPrepare), so its zero-fill is paced.
   */
  private async prepareSegment(index: number, ahead = false): Promise<Segment> {
    const temp = `${this.dir}/prep-${index}.tmp`;
    try {
      return await this.prepareSegmentAs(index, temp, ahead);
    } catch (error) {
      throw ioError(error, `prepare ${segmentFileName(index)}`, temp);
    }
  }

  private async prepareSegmentAs(index: number, temp: string, ahead: boolean): Promise<Segment> {
    const io = this.io;
    const path = `${this.dir}/${segmentFileName(index)}`;
    const capacity = this.segmentBytes;
    const spare = this.spares.shift();
    let fd: number;
    if (spare !== undefined) {
      // Opened before it is renamed: if it cannot be, it stays a spare and no prep-N.tmp is left behind.
      try {
        fd = await onFile('open spare segment (read-write)', spare, io.open(spare, 'r+'));
      } catch (error) {
        this.spares.unshift(spare);
        throw error;
      }
      try {
        await onFile('rename a spare segment', spare, io.rename(spare, temp));
      } catch (error) {
        await io.close(fd).catch(() => {});
        this.spares.unshift(spare);
        throw error;
      }
      if ((await io.fstatSize(fd)) !== capacity) await io.ftruncate(fd, capacity);
    } else if (this.addon) {
      fd = await io.open(temp, 'w+');
      try {
        this.addon.fallocate(fd, capacity);
      } catch (error) {
        await io.close(fd).catch(() => {});
        throw error;
      }
    } else {
      fd = await io.open(temp, 'w+');
      const zeros = new Uint8Array(BULK_STEP_BYTES);
      // Flushed as it goes and paced (pacer.ts): 64 MiB of dirty zeros flushed at once queued ahead
      // of this log's own fdatasyncs (and, replicas sharing a disk, ahead of theirs: they roll at
      // about the same LSN), a ~130 ms stall in a bench; back to back in 1 MiB steps, every log
      // job took 5-10 ms for the ~0.75 s of the fill. The segment is needed only when the current
      // one is full, so a fill made ahead rests between steps until a roll or a close waits for it.
      const pacer = new BulkPacer(() => !ahead || this.prepareUrgent || this.closed, this.pacerClock);
      for (let at = 0; at < capacity; at += BULK_STEP_BYTES) {
        await pacer.step(async () => {
          await writevAll(io, fd, [at + BULK_STEP_BYTES <= capacity ? zeros : zeros.subarray(0, capacity - at)], at);
          await io.fdatasync(fd);
        });
      }
    }
    try {
      // Header, zero tail line, and a terminator at DATA_START: a recycled spare's stale groups never read as live.
      const header = new Uint8Array(DATA_START + GROUP_HEADER_BYTES);
      encodeSegmentHeader({ formatVersion: FORMAT_VERSION, backendKind: this.backendKind, segmentIndex: index, capacity }, header);
      await writevAll(io, fd, [header], 0);
      await io.fdatasync(fd);
      await io.rename(temp, path);
      await syncDir(io, this.dir);
    } catch (error) {
      await io.close(fd).catch(() => {});
      throw error;
    }
    const segment: Segment = { index, path, fd, capacity, firstLsn: null, durableEnd: DATA_START, map: null, mapSync: false };
    if (this.addon) this.mapSegment(segment);
    return segment;
  }

  private mapSegment(segment: Segment): void {
    const mapping = this.addon!.map(segment.fd, segment.capacity, this.pmemFlush !== 'msync');
    segment.map = new Uint8Array(mapping.buffer);
    segment.mapSync = mapping.mapSync;
  }

  private unmapSegment(segment: Segment): void {
    if (!segment.map) return;
    const buffer = segment.map.buffer as ArrayBuffer;
    segment.map = null;
    this.addon!.unmap(buffer);
  }

  /** pmem: makes [offset, offset+length) of the mapping durable. Throws StorageError on EIO. */
  private persistRange(segment: Segment, offset: number, length: number): void {
    const addon = this.addon!;
    const buffer = segment.map!.buffer as ArrayBuffer;
    try {
      if (this.pmemFlush === 'cacheline' || (this.pmemFlush === 'auto' && segment.mapSync)) {
        addon.flush(buffer, offset, length);
        addon.drain();
      } else {
        addon.msync(buffer, offset, length);
      }
    } catch (error) {
      throw ioError(error, 'persist (msync/flush)', segment.path);
    }
    this.counters.syncs++;
  }

  private startPrepare(index: number): void {
    const promise = this.prepareSegment(index, true);
    promise.catch(() => {}); // surfaced when the segment is needed
    this.prepared = { index, promise };
  }

  private async segmentFor(index: number): Promise<Segment> {
    const last = this.segments[this.segments.length - 1]!;
    if (last.index === index) return last;
    if (index !== last.index + 1) throw misuse(`internal: segment ${index} requested after ${last.index}`);
    let segment: Segment;
    if (this.prepared && this.prepared.index === index) {
      this.prepareUrgent = true;
      try {
        segment = await this.prepared.promise;
      } finally {
        this.prepareUrgent = false;
      }
      this.prepared = null;
    } else {
      segment = await this.prepareSegment(index);
    }
    this.segments.push(segment);
    this.startPrepare(index + 1);
    return segment;
  }

  /**
   * Closes segments and keeps them as spares (room allowing, or `keep`), else deletes them. A spare
   * is handed out only after the directory fsync: reused before its rename is durable, a power cut
   * could leave its old name on the new contents (a segment whose header names another index).
   */
  private async retireSegments(segments: Segment[], keep = false): Promise<void> {
    const spares: string[] = [];
    for (const segment of segments) {
      this.unmapSegment(segment);
      await onFile('close', segment.path, this.io.close(segment.fd));
      if (keep || this.spares.length + spares.length < this.spareSegmentsMax) {
        const sparePath = `${this.dir}/spare-${this.spareSeq++}.log`;
        await onFile('rename to a spare', segment.path, this.io.rename(segment.path, sparePath));
        spares.push(sparePath);
      } else {
        await onFile('delete', segment.path, this.io.unlink(segment.path));
      }
    }
    await syncDir(this.io, this.dir);
    this.spares.push(...spares);
  }

  private async freeSegmentsBelowHead(): Promise<void> {
    const freed: Segment[] = [];
    while (this.segments.length > 1) {
      const next = this.segments[1]!;
      if (next.firstLsn === null || next.firstLsn > this.head) break;
      freed.push(this.segments.shift()!);
    }
    if (freed.length > 0) {
      this.index.dropSegmentsBelow(this.segments[0]!.index);
      await this.retireSegments(freed);
    }
  }

  // ------------------------------------------------------------ append and group commit

  tentativelyAppend(record: LogRecord): number {
    if (this.failed) throw this.failed;
    if (this.closed) throw misuse('append on a closed log');
    const problem = validateRecord(record, this.payloadBytesMax);
    if (problem) throw misuse(problem);
    const size = recordBytes(record.payload.length);
    let group = this.pending.length > 0 ? this.pending[this.pending.length - 1]! : null;
    if (group === null || group.bodyBytes + size > this.groupBytesMax || this.reserveOffset + size > this.capacityOf(this.reserveSegment)) {
      group = this.newGroup(size);
    }
    if (this.chunkUsed + size > this.chunk.length) this.newChunk(size);
    const at = this.chunkUsed;
    const lsn = this.nextLsn;
    // The CRC words are set when the group is flushed (sealRecords: one pass, one call per part).
    if (LITTLE_ENDIAN) {
      // = encodeRecordUnsealed, through a word view of the chunk (records are 8-aligned in it): measured
      // ~2x faster than DataView calls at 64 B..1 KiB records.
      const words = this.chunkWords;
      const w = at >>> 2;
      const length = record.payload.length;
      const slot = record.slot;
      const ballot = record.ballot;
      words[w + 1] = length;
      words[w + 2] = record.type;
      words[w + 3] = lsn >>> 0; // lsn mod 2^32
      words[w + 4] = slot >>> 0;
      words[w + 5] = (slot / TWO_32) >>> 0;
      words[w + 6] = ballot >>> 0;
      words[w + 7] = (ballot / TWO_32) >>> 0;
      const chunk = this.chunk;
      chunk.set(record.payload, at + RECORD_HEADER_BYTES);
      const payloadEnd = at + RECORD_HEADER_BYTES + length;
      if (payloadEnd !== at + size) chunk.fill(0, payloadEnd, at + size);
    } else {
      encodeRecordUnsealed(record, lsn, this.chunk, at);
    }
    this.chunkUsed = at + size;
    const parts = group.parts;
    const lastPart = parts.length > 0 ? parts[parts.length - 1]! : null;
    if (lastPart !== null && lastPart.buf === this.chunk && lastPart.end === at) lastPart.end = at + size;
    else parts.push({ buf: this.chunk, start: at, end: at + size });
    group.count++;
    group.bodyBytes += size;
    if (record.ballot > group.ballotMax) group.ballotMax = record.ballot;
    this.reserveOffset += size;
    this.nextLsn = lsn + 1;
    this.counters.appends++;
    return lsn;
  }

  private capacityOf(segmentIndex: number): number {
    const last = this.segments[this.segments.length - 1]!;
    return segmentIndex === last.index ? last.capacity : this.segmentBytes;
  }

  private newGroup(size: number): PendingGroup {
    let segmentIndex = this.reserveSegment;
    let offset = this.reserveOffset;
    if (offset + GROUP_HEADER_BYTES + size > this.capacityOf(segmentIndex)) {
      segmentIndex++;
      offset = DATA_START;
    }
    const group: PendingGroup = { segmentIndex, offset, firstLsn: this.nextLsn, count: 0, bodyBytes: 0, ballotMax: 0, recordsCrc: 0, parts: [] };
    this.pending.push(group);
    this.reserveSegment = segmentIndex;
    this.reserveOffset = offset + GROUP_HEADER_BYTES;
    return group;
  }

  private newChunk(size: number): void {
    this.chunk = size <= CHUNK_BYTES ? (this.chunkPool.pop() ?? new Uint8Array(CHUNK_BYTES)) : new Uint8Array(size);
    this.chunkWords = new Uint32Array(this.chunk.buffer, this.chunk.byteOffset, this.chunk.length >>> 2);
    this.chunkUsed = 0;
  }

  commit(): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(misuse('commit on a closed log'));
    this.counters.commits++;
    const target = this.nextLsn - 1;
    if (target <= this.durableLsn) return Promise.resolve(this.durableLsn);
    const promise = new Promise<number>((resolve, reject) => this.waiters.push({ target, resolve, reject }));
    if (this.flushing === null) this.flushing = this.writeAndSync ? this.submitLoop() : this.flushLoop();
    return promise;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.waiters.length > 0 && this.pending.length > 0 && this.failed === null) {
        const groups = this.pending;
        this.pending = [];
        // Seal the chunk: later appends go to a fresh one, so these chunks are ours alone until released.
        this.chunk = new Uint8Array(0);
        this.chunkUsed = 0;
        await this.writeGroups(groups);
        const lastGroup = groups[groups.length - 1]!;
        this.durableLsn = lastGroup.firstLsn + lastGroup.count - 1;
        let w = 0;
        while (w < this.waiters.length && this.waiters[w]!.target <= this.durableLsn) this.waiters[w++]!.resolve(this.durableLsn);
        if (w > 0) this.waiters.splice(0, w);
        this.releaseChunks(groups);
      }
    } catch (error) {
      this.fail(ioError(error, 'log write', this.dir));
    } finally {
      this.flushing = null;
    }
  }

  private async writeGroups(groups: PendingGroup[]): Promise<void> {
    let i = 0;
    while (i < groups.length) {
      // One writev + one fdatasync per group, in order (sealRun): a group, and a roll's new segment, is
      // written only once the one before is durable, so only the very last group of the log can be torn.
      const segmentIndex = groups[i]!.segmentIndex;
      const segment = await this.segmentFor(segmentIndex);
      const first = i;
      const { iov, start, end, next } = this.sealRun(segment, groups, i);
      i = next;
      if (segment.map) {
        this.writeMapped(segment, iov, start, end);
        this.finishGroups(segment, groups, first, i);
        continue;
      }
      try {
        await writevAll(this.io, segment.fd, iov, start);
      } catch (error) {
        throw ioError(error, 'writev', segment.path);
      }
      this.counters.flushes++;
      this.counters.bytesWritten += end - start;
      try {
        await this.io.fdatasync(segment.fd);
      } catch (error) {
        throw ioError(error, 'fdatasync', segment.path);
      }
      this.counters.syncs++;
      this.finishGroups(segment, groups, first, i);
    }
  }

  /**
   * Seals the group `groups[from]` (its records' CRCs, recordsCrc, its header) and lists the bytes to
   * write: header, record runs, and a terminator if it fits; `next` is `from + 1`.
   */
  private sealRun(segment: Segment, groups: PendingGroup[], from: number): { iov: Uint8Array[]; start: number; end: number; next: number } {
    const iov: Uint8Array[] = [];
    const start = groups[from]!.offset;
    let end = start;
    let i = from;
    // One group per write: each write is followed by its own fdatasync before the next is issued
    // (writeGroups, and the ordered native writer), so only the log's last group can ever be torn.
    // Several groups in one write could keep group k+1 and lose group k on a power loss, which
    // recovery must read as corruption. A flush has more than one group only past groupBytesMax
    // (8 MiB) or across a segment, so the extra syncs are rare.
    for (; i < groups.length && i === from && groups[i]!.segmentIndex === segment.index; i++) {
      const g = groups[i]!;
      if (g.offset !== end) throw misuse(`internal: group at ${g.offset} does not follow ${end}`);
      let recordsCrc = 0;
      for (const p of g.parts) recordsCrc = sealRecords(p.buf, p.start, p.end, recordsCrc);
      g.recordsCrc = recordsCrc;
      const header = new Uint8Array(GROUP_HEADER_BYTES);
      encodeGroupHeader({ epoch: segment.index, bodyBytes: g.bodyBytes, recordCount: g.count, recordsCrc, firstLsn: g.firstLsn }, header, 0);
      iov.push(header);
      for (const p of g.parts) iov.push(p.start === 0 && p.end === p.buf.length ? p.buf : p.buf.subarray(p.start, p.end));
      end = g.offset + GROUP_HEADER_BYTES + g.bodyBytes;
    }
    if (end + GROUP_HEADER_BYTES <= segment.capacity) iov.push(TERMINATOR);
    return { iov, start, end, next: i };
  }

  /**
   * The native write path: hands groups to the ordered writer without waiting for the previous write to
   * complete (a new flush waits while PIPELINE_DEPTH writes are queued; one flush queues a job per group),
   * so the disk goes from one group's fdatasync straight
   * to the next group's write. Ordering (hence "only the last group can be torn") is the writer's: a job
   * starts writing only after the previous one's fdatasync returned.
   */
  private async submitLoop(): Promise<void> {
    try {
      while (this.failed === null && this.pending.length > 0 && this.waiters.length > 0 && this.waiters[this.waiters.length - 1]!.target > this.submittedLsn) {
        if (this.inflight.length >= PIPELINE_DEPTH) {
          await this.inflight[0];
          continue;
        }
        const groups = this.pending;
        this.pending = [];
        // Seal the chunk: later appends go to a fresh one, so these chunks are ours alone until released.
        this.chunk = new Uint8Array(0);
        this.chunkUsed = 0;
        let i = 0;
        while (i < groups.length) {
          const segment = await this.segmentFor(groups[i]!.segmentIndex);
          if (this.failed) return;
          const first = i;
          const { iov, start, end, next } = this.sealRun(segment, groups, i);
          i = next;
          const last = groups[i - 1]!;
          const durable = last.firstLsn + last.count - 1;
          const releaseChunks = i === groups.length; // chunks may span runs: release after the last one
          this.submittedLsn = durable;
          this.counters.flushes++;
          this.counters.bytesWritten += end - start;
          const to = i;
          const write = this.writeAndSync!(segment.fd, iov, start);
          write.catch(() => {}); // handled below, maybe after the previous write's handler
          // The writer runs the jobs in order, but their completions may reach JS out of order (a job that
          // finishes fast can be reported before the one before it): handle them strictly in order.
          const previous = this.inflight.length > 0 ? this.inflight[this.inflight.length - 1]! : Promise.resolve();
          const done = previous.then(() => write).then(
            () => {
              this.inflight.shift();
              if (this.failed) return;
              this.counters.syncs++;
              this.finishGroups(segment, groups, first, to);
              this.durableLsn = durable;
              let w = 0;
              while (w < this.waiters.length && this.waiters[w]!.target <= durable) this.waiters[w++]!.resolve(durable);
              if (w > 0) this.waiters.splice(0, w);
              if (releaseChunks) this.releaseChunks(groups);
            },
            (error: unknown) => {
              this.inflight.shift();
              this.fail(ioError(error, (error as { syscall?: string }).syscall === 'fdatasync' ? 'fdatasync' : 'writev', segment.path));
            },
          );
          this.inflight.push(done);
        }
      }
    } catch (error) {
      this.fail(ioError(error, 'log write', this.dir));
    } finally {
      this.flushing = null;
    }
  }

  private releaseChunks(groups: PendingGroup[]): void {
    for (const g of groups) for (const p of g.parts) if (p.buf.length === CHUNK_BYTES && this.chunkPool.length < CHUNK_POOL_MAX && p.start === 0) this.chunkPool.push(p.buf);
  }

  private finishGroups(segment: Segment, groups: PendingGroup[], from: number, to: number): void {
    for (let k = from; k < to; k++) {
      const g = groups[k]!;
      if (segment.firstLsn === null) segment.firstLsn = g.firstLsn;
      segment.durableEnd = g.offset + GROUP_HEADER_BYTES + g.bodyBytes;
      this.index.add(g.firstLsn, g.segmentIndex, g.offset);
      if (g.ballotMax > this.ballotDurable) this.ballotDurable = g.ballotMax;
    }
  }

  /** pmem: copy into the mapping, persist the range, then persist the tail pointer that covers it. */
  private writeMapped(segment: Segment, iov: Uint8Array[], start: number, end: number): void {
    const map = segment.map!;
    let at = start;
    for (const part of iov) {
      map.set(part, at);
      at += part.length;
    }
    this.persistRange(segment, start, at - start);
    encodeTailLine(end, segment.index, map, TAIL_LINE_OFFSET);
    this.persistRange(segment, TAIL_LINE_OFFSET, 8);
    this.counters.flushes++;
    this.counters.bytesWritten += end - start;
  }

  private fail(error: StorageError): void {
    if (this.failed === null) this.failed = error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(this.failed);
  }

  // ------------------------------------------------------------ read, head, close

  async read(fromLsn: number, limits: ReadLimits = {}): Promise<StoredRecord[]> {
    if (this.failed) throw this.failed;
    if (!Number.isSafeInteger(fromLsn) || fromLsn < 1) throw misuse(`read: bad lsn ${fromLsn}`);
    if (fromLsn < this.head) {
      throw new StorageError('SYNOD_STORAGE_COMPACTED', `lsn ${fromLsn} is below the log head ${this.head}: a snapshot covers it`);
    }
    const toLsn = Math.min(limits.toLsn ?? Infinity, this.durableLsn + 1);
    const recordsMax = limits.recordsMax ?? DEFAULT_READ_RECORDS_MAX;
    const bytesMax = limits.bytesMax ?? DEFAULT_READ_BYTES_MAX;
    const out: StoredRecord[] = [];
    let bytes = 0;
    let location = this.index.locate(fromLsn);
    while (location !== null && location.firstLsn < toLsn && out.length < recordsMax && bytes < bytesMax) {
      const segment = this.segments.find((s) => s.index === location!.segmentIndex);
      if (!segment) throw misuse(`internal: segment ${location.segmentIndex} not open`);
      const headerBytes = new Uint8Array(GROUP_HEADER_BYTES);
      if (segment.map) headerBytes.set(segment.map.subarray(location.offset, location.offset + GROUP_HEADER_BYTES));
      else await readFully(this.io, segment.fd, headerBytes, GROUP_HEADER_BYTES, location.offset);
      const header = decodeGroupHeader(headerBytes, 0);
      if (typeof header === 'string') throw corruptError(segment.path, location.offset, `${header} (on read)`);
      const bodyAt = location.offset + GROUP_HEADER_BYTES;
      const body = segment.map ? segment.map.subarray(bodyAt, bodyAt + header.bodyBytes) : new Uint8Array(header.bodyBytes);
      if (!segment.map) await readFully(this.io, segment.fd, body, header.bodyBytes, bodyAt);
      let at = 0;
      for (let k = 0; k < header.recordCount; k++) {
        const lsn = header.firstLsn + k;
        const size = checkRecord(body, at, body.length, lsn);
        if (typeof size === 'string') throw corruptError(segment.path, location.offset + GROUP_HEADER_BYTES + at, `${size} (on read)`);
        if (lsn >= fromLsn && lsn < toLsn && out.length < recordsMax && bytes < bytesMax) {
          const record = decodeRecord(body, at, lsn);
          out.push(record);
          bytes += record.payload.length;
        }
        at += size;
      }
      location = this.index.next(location.firstLsn);
    }
    return out;
  }

  async advanceHead(lsn: number): Promise<void> {
    if (this.failed) throw this.failed;
    if (!Number.isSafeInteger(lsn) || lsn < this.head || lsn > this.durableLsn + 1) {
      throw misuse(`advanceHead(${lsn}): must lie in [head ${this.head}, durable tail ${this.durableLsn + 1}]`);
    }
    if (lsn === this.head) return;
    // One move at a time (callers need not await: the runtime's compactions don't): two at once
    // shared log.head.tmp (one rename failed with ENOENT and stopped the log), and their frees
    // interleaved, so a power cut could leave a segment missing below one still present.
    const move = this.headMoves.then(() => this.moveHead(lsn));
    this.headMoves = move.catch(() => {});
    return move;
  }

  private async moveHead(lsn: number): Promise<void> {
    if (this.failed) throw this.failed;
    if (lsn <= this.head) return; // a later move already passed it
    try {
      await writeHead(this.io, this.dir, { headLsn: lsn, ballotFloor: this.ballotDurable });
      this.head = lsn;
      await this.freeSegmentsBelowHead();
    } catch (error) {
      const wrapped = ioError(error, 'advanceHead', this.dir);
      this.fail(wrapped);
      throw wrapped;
    }
  }

  headTailCapacity(): HeadTailCapacity {
    let used = 0;
    for (const s of this.segments) used += s.durableEnd - DATA_START;
    const held = this.segments.length + this.spares.length + (this.prepared ? 1 : 0);
    return { head: this.head, tail: this.durableLsn + 1, appendedTail: this.nextLsn, usedBytes: used, capacityBytes: held * this.segmentBytes };
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
    await this.headMoves;
    while (this.inflight.length > 0) await this.inflight[this.inflight.length - 1];
    this.pending = [];
    const dropped = this.waiters;
    this.waiters = [];
    for (const w of dropped) w.reject(misuse('log closed before this commit completed'));
    if (this.prepared) {
      const prepared = await this.prepared.promise.catch(() => null);
      this.prepared = null;
      if (prepared && !this.segments.includes(prepared)) this.segments.push(prepared);
    }
    await this.closeFiles();
  }

  private async closeFiles(): Promise<void> {
    const segments = this.segments;
    this.segments = [];
    for (const s of segments) {
      this.unmapSegment(s);
      await this.io.close(s.fd).catch(() => {});
    }
  }
}
