// A file system in memory that can lose power, for running the real storage code (file log,
// metadata, snapshot store: everything that takes a StorageIo) under a seeded scheduler.
//
// What a power cut keeps (SAFETY.md, "Simulator fidelity"):
// - of each file, what the last fsync/fdatasync made durable, plus a random subset of the writes
//   and truncations made since, applied in a random order, each write possibly torn: only some
//   of its sectors land;
// - of each directory, what the last fsync of that directory made durable, plus a random prefix
//   of the name changes made since (creates, renames, unlinks: a journal replays them in order,
//   so a prefix; "none of them" is the common case a careless rename loses to).
// fsync of a file does not make its name durable: only an fsync of its directory does.
// A new directory's name is a name change of its parent like any other: durable once the parent
// is fsynced, and a directory whose name is lost is lost with everything in it. The root, '/', is
// always there.
//
// Every call is queued and completes only when the driver says so (completeOne), in an order the
// driver picks from its seed: the thread pool's reordering of independent calls. A power cut drops
// the queue, and the StorageIo handed out before it goes dead: its calls never complete, as the
// process that made them is gone. The storage simulator drives completeOne itself (manual mode);
// code on real timers (the runtime, test/runtime/power-loss.test.ts) lets pump() complete queued
// calls on timers of its own, a random few at a time after a random latency (automatic mode).
// mount({ orderedWriter: true }) also offers a model of the native addon's ordered writer, so that
// the file log takes its pipelined write path (the one production takes on Linux).
//
// mount().pmem models the rest of the addon for the pmem backend: a file mapped into memory. The
// caller's stores land in the mapping only; flush + drain (CLWB/SFENCE on a MAP_SYNC mapping, a
// cache line at a time) or msync (a page at a time) make the lines or pages covering a range
// durable, synchronously. A power cut keeps each other 64-byte line that differs from the disk with
// probability one half (caches write lines back whenever they like, in any order); an unmap hands
// what was never flushed to the file as ordinary unsynced writes. armPmemCrash(n) cuts the power
// inside the n-th flush or msync from then on (the lines it covers are dirty, so each lands or
// not), and that call throws: a crash at any point of the log's synchronous mapped write, which a
// cut between event-loop turns never reaches. A planted fault, 'pmem-flush-noop', makes flush and
// msync keep nothing.

import { orderedWriterOf, type StorageIo } from '../storage/io.js';
import type { PmemMappingCalls } from '../storage/native.js';
import type { Prng } from './prng.js';

/**
 * Faults planted to show that the storage checker catches a broken durability contract.
 * 'writer-acks-early': the ordered writer (mount({ orderedWriter })) reports a job done once its
 * write returned, before its fdatasync.
 */
export type PowerLossFault = 'lying-fsync' | 'no-dir-fsync' | 'writer-acks-early' | 'pmem-flush-noop';

/** The part of the native addon (storage/native.ts) that the pmem backend calls. */
export type PmemModel = PmemMappingCalls;

/** A file mapped into memory (mount().pmem.map): the caller's stores land in `bytes`. */
interface Mapping {
  inode: Inode;
  bytes: Uint8Array;
}

const CACHE_LINE_BYTES = 64;
const PAGE_BYTES = 4096;

type FileChange = { kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; size: number };
/** A directory's entry in its parent (the directory itself is in PowerLossFs.dirs, by path). */
const SUBDIRECTORY = Symbol('subdirectory');
type Entry = Inode | typeof SUBDIRECTORY;
type NameChange = { kind: 'link'; name: string; inode: Entry } | { kind: 'unlink'; name: string } | { kind: 'rename'; from: string; to: string };

class Inode {
  data: Uint8Array = new Uint8Array(0);
  size = 0;
  durable: Uint8Array = new Uint8Array(0);
  durableSize = 0;
  changes: FileChange[] = [];

  write(offset: number, bytes: Uint8Array): void {
    this.data = setAt(this.data, this.size, offset, bytes);
    this.size = Math.max(this.size, offset + bytes.length);
  }

  truncate(size: number): void {
    if (size < this.size) this.data.fill(0, size, this.size);
    else this.data = grow(this.data, size);
    this.size = size;
  }

  sync(): void {
    this.durable = this.data.slice(0, this.size);
    this.durableSize = this.size;
    this.changes = [];
  }
}

function grow(buffer: Uint8Array, size: number): Uint8Array {
  if (size <= buffer.length) return buffer;
  const next = new Uint8Array(Math.max(size, buffer.length * 2, 4096));
  next.set(buffer);
  return next;
}

/** Writes `bytes` at `offset` into a buffer of logical size `size` (the gap reads as zeros). */
function setAt(buffer: Uint8Array, size: number, offset: number, bytes: Uint8Array): Uint8Array {
  const out = grow(buffer, offset + bytes.length);
  if (offset > size) out.fill(0, size, offset);
  out.set(bytes, offset);
  return out;
}

interface Directory {
  names: Map<string, Entry>;
  durable: Map<string, Entry>;
  changes: NameChange[];
}

const emptyDirectory = (): Directory => ({ names: new Map(), durable: new Map(), changes: [] });

type Handle = { kind: 'file'; inode: Inode } | { kind: 'dir'; path: string };

function errno(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}' (power-loss fs)`), { code, syscall, path });
}

function split(path: string): { dir: string; name: string } {
  const at = path.lastIndexOf('/');
  return at < 0 ? { dir: '.', name: path } : { dir: path.slice(0, at) || '/', name: path.slice(at + 1) };
}

interface QueuedCall {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface PowerLossStats {
  calls: number;
  syncs: number;
  powerCuts: number;
  writesKept: number;
  writesLost: number;
  writesTorn: number;
  nameChangesLost: number;
  /** Directories lost with their names (created, and the parent not fsynced since). */
  directoriesLost: number;
  /** pmem: ranges made durable by flush or msync; unflushed lines a power cut kept or lost. */
  persists: number;
  linesEvicted: number;
  linesLost: number;
  /** pmem: power cuts inside a flush or msync (armPmemCrash). */
  pmemCrashes: number;
}

/** pump(): how the automatic mode completes calls. */
export interface PumpOptions {
  /** Each turn of the pump starts after a random 0..latencyMsMax ms (a timer). Default 2. */
  latencyMsMax?: number;
  /** Each turn completes a random 1..callsPerTurnMax of the queued calls, picked at random. Default 4. */
  callsPerTurnMax?: number;
}

export class PowerLossFs {
  private dirs = new Map<string, Directory>([['/', emptyDirectory()]]);
  private handles = new Map<number, Handle>();
  private nextFd = 3;
  private queue: QueuedCall[] = [];
  private generation = 0;
  /** Live mappings (pmem), by their buffer; a power cut or an unmap ends one. */
  private mappings = new Map<ArrayBuffer, Mapping>();
  /** armPmemCrash: flushes/msyncs left before the power is cut inside one. */
  private pmemCrashIn: number | null = null;
  readonly stats: PowerLossStats = { calls: 0, syncs: 0, powerCuts: 0, writesKept: 0, writesLost: 0, writesTorn: 0, nameChangesLost: 0, directoriesLost: 0, persists: 0, linesEvicted: 0, linesLost: 0, pmemCrashes: 0 };

  constructor(
    private readonly prng: Prng,
    private readonly fault: PowerLossFault | null = null,
    private readonly sectorBytes = 512,
  ) {}

  private pumping: Required<PumpOptions> | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;

  /**
   * Automatic mode, for code on real timers: queued calls complete without a driver, a random
   * 1..callsPerTurnMax of them (in random order) per turn, each turn on a timer of random
   * 0..latencyMsMax ms. Until the returned stop() is called; completeOne() still works beside it.
   * Runs are not replayable from the seed alone (the timers are real).
   */
  pump(options: PumpOptions = {}): () => void {
    const latencyMsMax = options.latencyMsMax ?? 2;
    const callsPerTurnMax = options.callsPerTurnMax ?? 4;
    if (!(Number.isInteger(latencyMsMax) && latencyMsMax >= 0)) throw new RangeError(`latencyMsMax must be an integer >= 0, got ${latencyMsMax}`);
    if (!(Number.isInteger(callsPerTurnMax) && callsPerTurnMax >= 1)) throw new RangeError(`callsPerTurnMax must be an integer >= 1, got ${callsPerTurnMax}`);
    this.pumping = { latencyMsMax, callsPerTurnMax };
    this.schedulePump();
    return () => {
      this.pumping = null;
      if (this.pumpTimer !== null) clearTimeout(this.pumpTimer);
      this.pumpTimer = null;
    };
  }

  private schedulePump(): void {
    if (this.pumping === null || this.pumpTimer !== null || this.queue.length === 0) return;
    this.pumpTimer = setTimeout(this.pumpTurn, this.prng.int(0, this.pumping.latencyMsMax));
  }

  private readonly pumpTurn = (): void => {
    this.pumpTimer = null;
    if (this.pumping === null) return;
    const count = this.prng.int(1, Math.min(this.pumping.callsPerTurnMax, Math.max(1, this.queue.length)));
    for (let i = 0; i < count && this.completeOne(); i++);
    this.schedulePump();
  };

  /** Calls queued and not yet completed. */
  get queued(): number {
    return this.queue.length;
  }

  /** Completes one queued call, picked at random. Returns false if none is queued. */
  completeOne(): boolean {
    if (this.queue.length === 0) return false;
    const at = this.prng.int(0, this.queue.length - 1);
    const call = this.queue[at]!;
    this.queue[at] = this.queue[this.queue.length - 1]!;
    this.queue.pop();
    let value: unknown;
    try {
      value = call.run();
    } catch (error) {
      call.reject(error);
      return true;
    }
    call.resolve(value);
    return true;
  }

  /**
   * Power cut: queued calls are dropped, open files forgotten, and every file and directory left
   * as the disk holds it (see the top of this file). The StorageIo handed out before is dead.
   */
  powerCut(): void {
    this.stats.powerCuts++;
    this.pmemCrashIn = null;
    this.generation++;
    this.queue = [];
    this.handles.clear();
    // Mapped stores never flushed: the caches wrote some lines back before the power went.
    for (const m of this.mappings.values()) {
      for (const [at, line] of dirtyLines(m.bytes, m.inode.durable, m.inode.durableSize)) {
        if (this.prng.chance(0.5)) {
          m.inode.durable.set(line, at);
          this.stats.linesEvicted++;
        } else this.stats.linesLost++;
      }
    }
    this.mappings.clear();
    const survivors = new Map<Entry, Entry>([[SUBDIRECTORY, SUBDIRECTORY]]);
    const survivorOf = (entry: Entry): Entry => {
      let kept = survivors.get(entry);
      if (!kept) {
        kept = this.afterPowerCut(entry as Inode);
        survivors.set(entry, kept);
      }
      return kept;
    };
    // Parents first: a directory survives if its parent did and still names it.
    const paths = [...this.dirs.keys()].sort((a, b) => a.split('/').length - b.split('/').length);
    for (const path of paths) {
      if (path !== '/') {
        const { dir: parent, name } = split(path);
        if (this.dirs.get(parent)?.names.get(name) !== SUBDIRECTORY) {
          this.dirs.delete(path);
          this.stats.directoriesLost++;
          continue;
        }
      }
      const dir = this.dirs.get(path)!;
      const names = new Map(dir.durable);
      const keep = this.prng.int(0, dir.changes.length);
      this.stats.nameChangesLost += dir.changes.length - keep;
      for (let i = 0; i < keep; i++) applyNameChange(names, dir.changes[i]!);
      dir.names = new Map([...names].map(([name, entry]) => [name, survivorOf(entry)]));
      dir.durable = new Map(dir.names);
      dir.changes = [];
    }
  }

  private afterPowerCut(inode: Inode): Inode {
    const kept = new Inode();
    kept.write(0, inode.durable);
    kept.size = inode.durableSize;
    const changes = inode.changes.filter((change) => {
      const keep = this.prng.chance(0.5);
      if (change.kind === 'write' && !keep) this.stats.writesLost++;
      return keep;
    });
    this.prng.shuffle(changes);
    for (const change of changes) {
      if (change.kind === 'truncate') {
        kept.truncate(change.size);
        continue;
      }
      if (!this.prng.chance(0.3)) {
        kept.write(change.offset, change.bytes);
        this.stats.writesKept++;
        continue;
      }
      // Torn: each sector the write touches lands or not.
      this.stats.writesTorn++;
      const end = change.offset + change.bytes.length;
      for (let at = change.offset; at < end; ) {
        const next = Math.min(end, (Math.floor(at / this.sectorBytes) + 1) * this.sectorBytes);
        if (this.prng.chance(0.5)) kept.write(at, change.bytes.subarray(at - change.offset, next - change.offset));
        at = next;
      }
    }
    kept.sync();
    return kept;
  }

  /**
   * A StorageIo on this file system until the next power cut, and a delay (a queued no-op) for its
   * clocks. `orderedWriter`: the io also offers the native addon's ordered writer (StorageIo.orderedWriter),
   * so that the file log takes its pipelined write path, as in production on Linux.
   */
  mount(options: { orderedWriter?: boolean } = {}): { io: StorageIo; delay: () => Promise<void>; pmem: PmemModel } {
    const generation = this.generation;
    const call = <T>(run: () => T): Promise<T> => {
      if (generation !== this.generation) return new Promise<T>(() => {});
      this.stats.calls++;
      return new Promise<T>((resolve, reject) => {
        this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
        this.schedulePump();
      });
    };
    const io: StorageIo = {
      open: (path, flags) => call(() => this.open(path, flags)),
      close: (fd) => call(() => void this.handle(fd, 'close')),
      writev: (fd, buffers, position) =>
        call(() => {
          let at = position;
          for (const b of buffers) {
            this.writeAt(fd, b, at);
            at += b.length;
          }
          return at - position;
        }),
      write: (fd, buffer, position) => call(() => (this.writeAt(fd, buffer, position), buffer.length)),
      read: (fd, buffer, offset, length, position) =>
        call(() => {
          const inode = this.file(fd, 'read');
          const n = Math.max(0, Math.min(length, inode.size - position));
          buffer.set(inode.data.subarray(position, position + n), offset);
          return n;
        }),
      fdatasync: (fd) => call(() => this.sync(fd)),
      fsync: (fd) => call(() => this.sync(fd)),
      ftruncate: (fd, length) =>
        call(() => {
          const inode = this.file(fd, 'ftruncate');
          inode.truncate(length);
          inode.changes.push({ kind: 'truncate', size: length });
        }),
      fstatSize: (fd) => call(() => this.file(fd, 'fstat').size),
      rename: (from, to) => call(() => this.rename(from, to)),
      unlink: (path) =>
        call(() => {
          const { dir, name } = split(path);
          const d = this.dirs.get(dir);
          if (!d?.names.has(name)) throw errno('ENOENT', 'unlink', path);
          if (d.names.get(name) === SUBDIRECTORY) throw errno('EISDIR', 'unlink', path);
          d.names.delete(name);
          d.changes.push({ kind: 'unlink', name });
        }),
      readdir: (path) =>
        call(() => {
          const d = this.dirs.get(path);
          if (!d) throw errno('ENOENT', 'scandir', path);
          return [...d.names.keys()].sort();
        }),
      mkdir: (path) => call(() => this.mkdirp(path)),
    };
    if (options.orderedWriter) {
      // The addon's writer (storage/io.ts, orderedWriterOf) on this file system; a completion
      // reaches the caller through one more queued step, so completions may arrive out of order.
      io.orderedWriter = () => {
        const write = orderedWriterOf(io, { ackBeforeSync: this.fault === 'writer-acks-early' });
        return (fd, buffers, position) =>
          write(fd, buffers, position).then(
            () => call(() => undefined),
            (error: unknown) =>
              call(() => {
                throw error;
              }),
          );
      };
    }
    return { io, delay: () => call(() => undefined), pmem: this.pmemModel(generation) };
  }

  /** The power goes inside the `persists`-th flush or msync from now (pmem), unless a cut comes first. */
  armPmemCrash(persists: number): void {
    this.pmemCrashIn = Math.max(1, persists);
  }

  /** Takes back an armPmemCrash that has not fired. */
  disarmPmemCrash(): void {
    this.pmemCrashIn = null;
  }

  /** The addon's mapping calls on this file system, for one mount (dead after the next power cut). */
  private pmemModel(generation: number): PmemModel {
    const live = () => generation === this.generation;
    const persist = (buffer: ArrayBuffer, offset: number, length: number, unit: number) => {
      const m = this.mappings.get(buffer);
      if (!live() || !m) return;
      if (this.pmemCrashIn !== null && --this.pmemCrashIn === 0) {
        // Mid-flush: the range's lines are dirty, so the cut keeps each or not, as any other.
        this.stats.pmemCrashes++;
        this.powerCut();
        throw errno('EIO', 'msync', `power cut inside a persist of [${offset}, ${offset + length}) (simulated)`);
      }
      this.stats.persists++;
      if (this.fault === 'pmem-flush-noop') return;
      const from = Math.floor(offset / unit) * unit;
      const to = Math.min(m.bytes.length, Math.ceil((offset + length) / unit) * unit);
      const bytes = m.bytes.slice(from, to);
      m.inode.write(from, bytes);
      m.inode.durable = setAt(m.inode.durable, m.inode.durableSize, from, bytes);
      m.inode.durableSize = Math.max(m.inode.durableSize, to);
    };
    return {
      map: (fd, length) => {
        const inode = this.file(fd, 'mmap');
        if (inode.size < length) throw errno('EINVAL', 'mmap', `fd ${fd}: mapping ${length} bytes of a ${inode.size}-byte file`);
        const bytes = inode.data.slice(0, length);
        if (live()) this.mappings.set(bytes.buffer as ArrayBuffer, { inode, bytes });
        // Both of the log's flush paths: CLWB+SFENCE on "DAX", msync otherwise.
        return { buffer: bytes.buffer as ArrayBuffer, mapSync: this.prng.chance(0.5) };
      },
      unmap: (buffer) => {
        const m = this.mappings.get(buffer);
        if (!live() || !m) return;
        this.mappings.delete(buffer);
        // What was never flushed stays in the page cache: ordinary unsynced writes of the file.
        for (const [at, line] of dirtyLines(m.bytes, m.inode.data, m.bytes.length)) {
          m.inode.write(at, line);
          m.inode.changes.push({ kind: 'write', offset: at, bytes: line.slice() });
        }
      },
      flush: (buffer, offset, length) => persist(buffer, offset, length, CACHE_LINE_BYTES),
      drain: () => {},
      msync: (buffer, offset, length) => persist(buffer, offset, length, PAGE_BYTES),
      fallocate: (fd, length) => {
        const inode = this.file(fd, 'fallocate');
        if (length <= inode.size) return;
        inode.truncate(length);
        inode.changes.push({ kind: 'truncate', size: length });
      },
    };
  }

  /** mkdir -p; returns the first directory created (undefined: all were there), as node:fs. */
  private mkdirp(path: string): string | undefined {
    if (!path.startsWith('/')) throw errno('EINVAL', 'mkdir (the power-loss fs takes absolute paths)', path);
    if (this.dirs.has(path)) return undefined;
    const { dir: parentPath, name } = split(path);
    const first = this.mkdirp(parentPath);
    const parent = this.dirs.get(parentPath)!;
    if (parent.names.has(name)) throw errno('EEXIST', 'mkdir', path);
    parent.names.set(name, SUBDIRECTORY);
    parent.changes.push({ kind: 'link', name, inode: SUBDIRECTORY });
    this.dirs.set(path, emptyDirectory());
    return first ?? path;
  }

  private open(path: string, flags: string): number {
    const fd = this.nextFd++;
    if (this.dirs.has(path)) {
      if (flags !== 'r') throw errno('EISDIR', 'open', path);
      this.handles.set(fd, { kind: 'dir', path });
      return fd;
    }
    const { dir, name } = split(path);
    const d = this.dirs.get(dir);
    if (!d) throw errno('ENOENT', 'open', path);
    const found = d.names.get(name);
    if (found === SUBDIRECTORY) throw errno('EISDIR', 'open', path);
    let inode = found;
    if (flags === 'w' || flags === 'w+') {
      if (inode) {
        inode.truncate(0);
        inode.changes.push({ kind: 'truncate', size: 0 });
      } else {
        inode = new Inode();
        d.names.set(name, inode);
        d.changes.push({ kind: 'link', name, inode });
      }
    } else if (flags !== 'r' && flags !== 'r+') {
      throw errno('EINVAL', `open (flags ${flags})`, path);
    }
    if (!inode) throw errno('ENOENT', 'open', path);
    this.handles.set(fd, { kind: 'file', inode });
    return fd;
  }

  private rename(from: string, to: string): void {
    const a = split(from);
    const b = split(to);
    if (a.dir !== b.dir) throw errno('EXDEV', 'rename (the power-loss fs renames within one directory)', `${from} -> ${to}`);
    const d = this.dirs.get(a.dir);
    const inode = d?.names.get(a.name);
    if (!d || !inode) throw errno('ENOENT', 'rename', from);
    if (inode === SUBDIRECTORY || d.names.get(b.name) === SUBDIRECTORY) throw errno('EISDIR', 'rename (the power-loss fs renames files only)', `${from} -> ${to}`);
    d.names.delete(a.name);
    d.names.set(b.name, inode);
    d.changes.push({ kind: 'rename', from: a.name, to: b.name });
  }

  private handle(fd: number, syscall: string): Handle {
    const h = this.handles.get(fd);
    if (!h) throw errno('EBADF', syscall, `fd ${fd}`);
    if (syscall === 'close') this.handles.delete(fd);
    return h;
  }

  private file(fd: number, syscall: string): Inode {
    const h = this.handle(fd, syscall);
    if (h.kind !== 'file') throw errno('EISDIR', syscall, h.path);
    return h.inode;
  }

  private writeAt(fd: number, bytes: Uint8Array, position: number): void {
    const inode = this.file(fd, 'write');
    inode.write(position, bytes);
    inode.changes.push({ kind: 'write', offset: position, bytes: bytes.slice() });
  }

  private sync(fd: number): void {
    this.stats.syncs++;
    const h = this.handle(fd, 'fsync');
    if (h.kind === 'file') {
      if (this.fault !== 'lying-fsync') h.inode.sync();
      return;
    }
    const d = this.dirs.get(h.path)!;
    if (this.fault === 'no-dir-fsync') return;
    d.durable = new Map(d.names);
    d.changes = [];
  }
}

function applyNameChange(names: Map<string, Entry>, change: NameChange): void {
  if (change.kind === 'link') names.set(change.name, change.inode);
  else if (change.kind === 'unlink') names.delete(change.name);
  else {
    const inode = names.get(change.from);
    if (inode) {
      names.delete(change.from);
      names.set(change.to, inode);
    }
  }
}

/** The cache lines of a mapping, below `end`, whose bytes differ from `file`'s: [offset, line]. */
function* dirtyLines(mapped: Uint8Array, file: Uint8Array, end: number): Generator<[number, Uint8Array]> {
  const stop = Math.min(mapped.length, end);
  for (let at = 0; at < stop; at += CACHE_LINE_BYTES) {
    const line = mapped.subarray(at, Math.min(at + CACHE_LINE_BYTES, stop));
    if (!sameBytes(line, file.subarray(at, at + line.length))) yield [at, line];
  }
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
