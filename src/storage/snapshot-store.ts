// Snapshot files. The application's snapshot is streamed into a temp file with a running CRC32C, then
// fsynced, renamed to its final name and the directory fsynced; the newest `keep` are kept (pinned ones,
// being shipped to a peer, are never deleted). A snapshot reads back as a stream of chunks; a corrupt or
// partial one is detected (checksums, lengths) and skipped in favour of the previous one. A pruned
// snapshot's file is kept as the spare (one at most) and the next snapshot is written over it, as
// the log recycles its segments: overwriting allocated blocks needs no allocation, and a flush of
// them no journal commit, where a new file needs both at every step.
//
//   snap-<slot, 16 digits>.snap
//   snap-spare.free                 a pruned snapshot's file, to be written over by the next one
//   header  "SYNODSNP" | version u32 | metaBytes u32 | slot u64 | crc32c(header[0,24) ++ meta) u32 | 0 u32
//   meta    metaBytes bytes (caller's: e.g. configurations, session table digest)
//   body    the application's bytes
//   trailer bodyBytes u64 | crc32c(body) u32 | 0 u32 | "SNAPEND\0"

import { StorageError, corruptError, ioError, misuse, onFile } from './errors.js';
import { FORMAT_VERSION, crc32c, readU64, viewOf, writeU64 } from './format.js';
import { type StorageIo, mkdirDurable, nodeIo, readFully, syncDir, writevAll } from './io.js';
import { BULK_STEP_BYTES, BulkPacer, type PacerClock, realPacerClock } from './pacer.js';

const MAGIC = 'SYNODSNP';
const END_MAGIC = 'SNAPEND\0';
const HEADER_BYTES = 32;
const TRAILER_BYTES = 24;
const SPARE_NAME = 'snap-spare.free';
// Written and flushed a step at a time, paced (pacer.ts): the log's group commits share the disk.
const WRITE_BUFFER_BYTES = BULK_STEP_BYTES;
export const DEFAULT_SNAPSHOTS_KEPT = 2;
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 256 * 1024;

export interface SnapshotInfo {
  slot: number;
  path: string;
  meta: Uint8Array;
  /** Body bytes. */
  bodyBytes: number;
}

export interface SnapshotStoreOptions {
  /** How many valid snapshots to keep (newest first). Default 2. */
  keep?: number;
  io?: StorageIo;
  /** Tests: the clock a snapshot's paced writes time their steps and rest by (pacer.ts). */
  pacerClock?: PacerClock;
  /** Keep a pruned snapshot's file to write the next snapshot over (see above). Default true. */
  recycle?: boolean;
}

function fileName(slot: number): string {
  return `snap-${slot.toString().padStart(16, '0')}.snap`;
}

function parseFileName(name: string): number | null {
  const m = /^snap-(\d{16})\.snap$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** A snapshot being written. write() chunks in order, then commit() (or abort()). */
export class SnapshotWriter {
  private crc = 0;
  private bodyBytes = 0;
  private position: number;
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  private done = false;
  private readonly pacer: BulkPacer;

  constructor(
    private readonly store: SnapshotStore,
    private readonly io: StorageIo,
    private readonly fd: number,
    private readonly tempPath: string,
    readonly slot: number,
    headerAndMeta: Uint8Array,
    pacerClock: PacerClock,
    /** Written over a spare: it may run past this snapshot's end until commit() cuts it. */
    private readonly recycled: boolean,
  ) {
    this.pacer = new BulkPacer(() => false, pacerClock);
    this.buffered.push(headerAndMeta);
    this.bufferedBytes = headerAndMeta.length;
    this.position = 0;
  }

  /** The caller may reuse `chunk` once this resolves. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw misuse('snapshot write after commit/abort');
    this.crc = crc32c(chunk, this.crc);
    this.bodyBytes += chunk.length;
    if (chunk.length >= WRITE_BUFFER_BYTES) {
      // A large chunk is written before this resolves, so it goes out as it is (a copy of a whole
      // state machine's snapshot was one more transient buffer of its size), a buffer at a time.
      for (let at = 0; at < chunk.length; at += WRITE_BUFFER_BYTES) {
        const part = chunk.subarray(at, Math.min(chunk.length, at + WRITE_BUFFER_BYTES));
        this.buffered.push(part);
        this.bufferedBytes += part.length;
        if (this.bufferedBytes >= WRITE_BUFFER_BYTES) await this.step();
      }
      // A step was written in the loop, so what is still buffered is this chunk's tail (less than a
      // step): copied, since the caller may reuse the chunk once this resolves.
      for (let i = 0; i < this.buffered.length; i++) this.buffered[i] = this.buffered[i]!.slice();
      return;
    }
    // A small chunk is copied: it may be reused once this resolves, before the buffer is written.
    this.buffered.push(chunk.slice());
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes >= WRITE_BUFFER_BYTES) await this.step();
  }

  /**
   * One paced step (pacer.ts): the buffered bytes written and flushed, then a rest. Flushed as it
   * goes: a log's fdatasync on the same file system can wait for a journal commit that must first
   * write back every dirty block of this file (ext4 data=ordered). Many megabytes of a snapshot
   * left dirty until commit() stalled the log's group commits behind them; now at most a step is.
   */
  private async step(): Promise<void> {
    await this.pacer.step(async () => {
      await this.writeBuffered();
      try {
        await this.io.fdatasync(this.fd);
      } catch (error) {
        await this.abort();
        throw ioError(error, 'snapshot fdatasync', this.tempPath);
      }
    });
  }

  private async writeBuffered(): Promise<void> {
    try {
      await writevAll(this.io, this.fd, this.buffered, this.position);
    } catch (error) {
      await this.abort();
      throw ioError(error, 'snapshot write', this.tempPath);
    }
    this.position += this.bufferedBytes;
    this.buffered = [];
    this.bufferedBytes = 0;
  }

  /** Makes the snapshot durable under its final name, then prunes old ones. */
  async commit(): Promise<SnapshotInfo> {
    if (this.done) throw misuse('snapshot committed twice');
    const trailer = new Uint8Array(TRAILER_BYTES);
    const view = viewOf(trailer);
    writeU64(view, 0, this.bodyBytes);
    view.setUint32(8, this.crc, true);
    for (let i = 0; i < 8; i++) trailer[16 + i] = END_MAGIC.charCodeAt(i);
    this.buffered.push(trailer);
    this.bufferedBytes += TRAILER_BYTES;
    await this.writeBuffered(); // the last bytes: the fsync below flushes them, no rest before it
    this.done = true;
    const finalPath = `${this.store.dir}/${fileName(this.slot)}`;
    try {
      if (this.recycled) await this.io.ftruncate(this.fd, this.position);
      await this.io.fsync(this.fd);
      await this.io.close(this.fd);
      await this.io.rename(this.tempPath, finalPath);
      await syncDir(this.io, this.store.dir);
    } catch (error) {
      throw ioError(error, 'snapshot commit', this.tempPath);
    }
    // Read back once: verified, it is the good one prune() keeps (which otherwise reads the newest
    // snapshot back to find it: a second full read and checksum of every snapshot).
    const info = await this.store.inspect(this.slot);
    if (!info) throw corruptError(finalPath, 0, 'snapshot failed verification right after it was written');
    await this.store.prune(this.slot);
    return info;
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.io.close(this.fd).catch(() => {});
    await this.io.unlink(this.tempPath).catch(() => {});
  }
}

export class SnapshotStore {
  private readonly io: StorageIo;
  private readonly keep: number;
  private readonly pacerClock: PacerClock;
  private readonly pins = new Map<number, number>();
  private readonly recycle: boolean;
  /** The spare file: none, being made by prune(), or ready for create() to take. */
  private spare: 'none' | 'pending' | 'ready' = 'none';

  private constructor(
    readonly dir: string,
    options: SnapshotStoreOptions,
  ) {
    this.io = options.io ?? nodeIo;
    this.keep = options.keep ?? DEFAULT_SNAPSHOTS_KEPT;
    this.pacerClock = options.pacerClock ?? realPacerClock;
    this.recycle = options.recycle ?? true;
    if (!Number.isInteger(this.keep) || this.keep < 1) throw misuse(`keep must be an integer >= 1, got ${this.keep}`);
  }

  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const store = new SnapshotStore(dir, options);
    try {
      await mkdirDurable(store.io, dir);
      for (const name of await store.io.readdir(dir)) {
        if (name.endsWith('.tmp')) await onFile('delete a leftover temp file', `${dir}/${name}`, store.io.unlink(`${dir}/${name}`));
        else if (name === SPARE_NAME) {
          if (store.recycle) store.spare = 'ready';
          else await store.io.unlink(`${dir}/${name}`);
        }
      }
    } catch (error) {
      throw ioError(error, 'open snapshot store', dir);
    }
    return store;
  }

  /** Starts a snapshot of the state after applying `slot`. */
  async create(slot: number, meta: Uint8Array = new Uint8Array(0)): Promise<SnapshotWriter> {
    if (!Number.isSafeInteger(slot) || slot < 0) throw misuse(`snapshot slot must be a safe integer >= 0, got ${slot}`);
    const header = new Uint8Array(HEADER_BYTES + meta.length);
    const view = viewOf(header);
    for (let i = 0; i < 8; i++) header[i] = MAGIC.charCodeAt(i);
    view.setUint32(8, FORMAT_VERSION, true);
    view.setUint32(12, meta.length, true);
    writeU64(view, 16, slot);
    header.set(meta, HEADER_BYTES);
    view.setUint32(24, crc32c(meta, crc32c(header, 0, 0, 24)), true);
    const tempPath = `${this.dir}/${fileName(slot)}.${process.pid}.${Date.now()}.tmp`;
    const recycled = await this.takeSpare(tempPath);
    let fd: number;
    try {
      fd = recycled ?? (await this.io.open(tempPath, 'w'));
    } catch (error) {
      throw ioError(error, 'snapshot create', tempPath);
    }
    return new SnapshotWriter(this, this.io, fd, tempPath, slot, header, this.pacerClock, recycled !== null);
  }

  /** The spare renamed to `tempPath` and opened for writing over, or null (none, or it failed: a new file then). */
  private async takeSpare(tempPath: string): Promise<number | null> {
    if (this.spare !== 'ready') return null;
    this.spare = 'none';
    try {
      await this.io.rename(`${this.dir}/${SPARE_NAME}`, tempPath);
    } catch {
      return null;
    }
    try {
      return await this.io.open(tempPath, 'r+');
    } catch {
      await this.io.unlink(tempPath).catch(() => {});
      return null;
    }
  }

  /** Writes a whole snapshot from a stream of chunks. */
  async save(slot: number, meta: Uint8Array, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<SnapshotInfo> {
    const writer = await this.create(slot, meta);
    try {
      for await (const chunk of source) await writer.write(chunk);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer.commit();
  }

  /** Slots of snapshot files present (valid or not), newest first. */
  async slots(): Promise<number[]> {
    const names = await this.io.readdir(this.dir);
    return names.map(parseFileName).filter((s): s is number => s !== null).sort((a, b) => b - a);
  }

  /** The newest snapshot that verifies completely; corrupt or partial ones are skipped. */
  async latest(): Promise<SnapshotInfo | null> {
    for (const slot of await this.slots()) {
      const info = await this.inspect(slot);
      if (info) return info;
    }
    return null;
  }

  /** Verifies the snapshot at `slot` end to end. Returns null (never throws) if it is corrupt or partial. */
  async inspect(slot: number): Promise<SnapshotInfo | null> {
    try {
      return await this.read(slot, DEFAULT_SNAPSHOT_CHUNK_BYTES, true).finish();
    } catch (error) {
      if (error instanceof StorageError && error.code === 'SYNOD_STORAGE_CORRUPT') return null;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /**
   * Streams the body of the snapshot at `slot` in chunks (for applying, or shipping to a lagging peer).
   * The last chunk is yielded only after the checksum verified; on a mismatch the iterator throws
   * SYNOD_STORAGE_CORRUPT, so a consumer must treat what it received as void until the end.
   * With `checkOnly`, the body is read into one reused buffer and checked, and nothing is yielded
   * (inspect() after each snapshot: 9 MB less garbage per 100,000 keys).
   */
  read(slot: number, chunkBytes = DEFAULT_SNAPSHOT_CHUNK_BYTES, checkOnly = false): SnapshotReader {
    return readSnapshotFile(this.io, `${this.dir}/${fileName(slot)}`, slot, chunkBytes, checkOnly, this.pin(slot));
  }

  /** The whole verified body of the snapshot at `slot`. */
  async readWhole(slot: number): Promise<Uint8Array> {
    return wholeBody(this.read(slot));
  }

  /**
   * A snapshot file anywhere (a backup copied out of a store, under any name), verified as read()
   * does; its slot is the header's. Touches nothing beside it.
   */
  static async readFile(path: string, io: StorageIo = nodeIo): Promise<{ slot: number; body: Uint8Array }> {
    const reader = readSnapshotFile(io, path, null, DEFAULT_SNAPSHOT_CHUNK_BYTES, false, () => {});
    const body = await wholeBody(reader);
    return { slot: reader.info().slot, body };
  }

  /** Keeps the snapshot at `slot` from being pruned until the returned function is called. */
  pin(slot: number): () => void {
    this.pins.set(slot, (this.pins.get(slot) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pins.get(slot) ?? 1) - 1;
      if (n <= 0) this.pins.delete(slot);
      else this.pins.set(slot, n);
    };
  }

  /**
   * Deletes all but the newest `keep` snapshot files, always keeping the newest one that verifies (so a
   * corrupt newest file never costs the last good one) and every pinned one. `verified`: a slot
   * whose snapshot the caller has just verified, taken as the good one instead of searching.
   */
  async prune(verified?: number): Promise<void> {
    const slots = await this.slots();
    const keepSet = new Set(slots.slice(0, this.keep));
    const good = verified ?? (await this.latest())?.slot;
    if (good !== undefined) keepSet.add(good);
    for (const slot of slots) {
      if (keepSet.has(slot) || this.pins.has(slot)) continue;
      if (good !== undefined && slot > good) continue; // newer than the last good one: leave it for inspection
      const path = `${this.dir}/${fileName(slot)}`;
      try {
        // Not synced: after a crash the file has either name, and either is valid.
        if (this.recycle && this.spare === 'none') {
          this.spare = 'pending';
          await this.io.rename(path, `${this.dir}/${SPARE_NAME}`);
          this.spare = 'ready';
        } else {
          await this.io.unlink(path);
        }
      } catch (error) {
        if (this.spare === 'pending') this.spare = 'none';
        throw ioError(error, 'snapshot prune', path);
      }
    }
  }
}

export interface SnapshotReader {
  body: AsyncIterable<Uint8Array>;
  /** Known once the body has been read to the end. */
  info(): SnapshotInfo;
  finish(): Promise<SnapshotInfo>;
}

/** SnapshotStore.read() of the file at `path`; `slot` null takes the header's (a file outside a store). `release` runs when reading ends. */
function readSnapshotFile(io: StorageIo, path: string, slot: number | null, chunkBytes: number, checkOnly: boolean, release: () => void): SnapshotReader {
  let info: SnapshotInfo | null = null;
  async function* body(): AsyncGenerator<Uint8Array> {
    let fd: number;
    try {
      fd = await io.open(path, 'r');
    } catch (error) {
      release();
      // ENOENT stays as it is: a snapshot pruned meanwhile (inspect() takes it as absent), a missing backup.
      throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? error : ioError(error, 'snapshot open', path);
    }
    try {
      const size = await io.fstatSize(fd);
      if (size < HEADER_BYTES + TRAILER_BYTES) throw corruptError(path, 0, `snapshot file of ${size} bytes is too short (partial)`);
      const header = new Uint8Array(HEADER_BYTES);
      await readFully(io, fd, header, HEADER_BYTES, 0);
      const view = viewOf(header);
      for (let i = 0; i < 8; i++) if (header[i] !== MAGIC.charCodeAt(i)) throw corruptError(path, 0, 'bad snapshot magic');
      const metaBytes = view.getUint32(12, true);
      if (HEADER_BYTES + metaBytes + TRAILER_BYTES > size) throw corruptError(path, 12, 'snapshot meta runs past the end of the file');
      const meta = new Uint8Array(metaBytes);
      await readFully(io, fd, meta, metaBytes, HEADER_BYTES);
      if (crc32c(meta, crc32c(header, 0, 0, 24)) !== view.getUint32(24, true)) throw corruptError(path, 24, 'snapshot header checksum mismatch');
      // The version only once the checksum vouches for it: a flipped bit there is damage (skipped for the
      // previous snapshot), not a newer format.
      const version = view.getUint32(8, true);
      if (version > FORMAT_VERSION) throw new StorageError('SYNOD_STORAGE_BAD_VERSION', `${path} has format version ${version}; upgrade Synod`, path, 8);
      const headerSlot = readU64(view, 16);
      if (slot !== null && headerSlot !== slot) throw corruptError(path, 16, `snapshot says slot ${headerSlot}, file name says ${slot}`);
      const trailer = new Uint8Array(TRAILER_BYTES);
      await readFully(io, fd, trailer, TRAILER_BYTES, size - TRAILER_BYTES);
      for (let i = 0; i < 8; i++) if (trailer[16 + i] !== END_MAGIC.charCodeAt(i)) throw corruptError(path, size - 8, 'snapshot trailer missing (partial write)');
      const tview = viewOf(trailer);
      const bodyBytes = readU64(tview, 0);
      const bodyStart = HEADER_BYTES + metaBytes;
      if (bodyStart + bodyBytes + TRAILER_BYTES !== size) throw corruptError(path, size - TRAILER_BYTES, `snapshot body length ${bodyBytes} does not match the file size`);
      let crc = 0;
      let held: Uint8Array | null = null;
      const reused = checkOnly ? new Uint8Array(Math.min(chunkBytes, bodyBytes)) : null;
      for (let at = 0; at < bodyBytes; ) {
        const n = Math.min(chunkBytes, bodyBytes - at);
        const chunk = reused ? reused.subarray(0, n) : new Uint8Array(n);
        await readFully(io, fd, chunk, n, bodyStart + at);
        crc = crc32c(chunk, crc);
        at += n;
        if (held) yield held;
        if (!reused) held = chunk;
      }
      if (crc !== tview.getUint32(8, true)) throw corruptError(path, bodyStart, 'snapshot body checksum mismatch');
      info = { slot: headerSlot, path, meta, bodyBytes };
      if (held) yield held;
    } catch (error) {
      // EISDIR (a directory opens, then fails to read), EIO...: a StorageError naming the file.
      throw ioError(error, 'snapshot read', path);
    } finally {
      await io.close(fd).catch(() => {});
      release();
    }
  }
  const iterable = body();
  return {
    body: iterable,
    info: () => {
      if (!info) throw misuse('snapshot info is known only once the body has been read to the end');
      return info;
    },
    finish: async () => {
      for await (const _ of iterable) {
        /* drain */
      }
      return info!;
    },
  };
}

async function wholeBody(reader: SnapshotReader): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of reader.body) chunks.push(c);
  return Buffer.concat(chunks);
}
