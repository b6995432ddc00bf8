// The file-system calls the storage layer makes, behind one interface, so that tests (and the simulator)
// can inject faults: ENOSPC after N bytes, EIO from fdatasync, lost unsynced writes.
// The default goes straight to node:fs's callback API (libuv's thread pool): nothing here blocks the loop.

import fs from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface StorageIo {
  open(path: string, flags: string, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  /** May write fewer bytes than asked (returns the count); callers loop. */
  writev(fd: number, buffers: Uint8Array[], position: number): Promise<number>;
  write(fd: number, buffer: Uint8Array, position: number): Promise<number>;
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstatSize(fd: number): Promise<number>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** mkdir -p. Resolves with the first directory it created (undefined: all were there), as node:fs. */
  mkdir(path: string): Promise<string | undefined>;
  /**
   * Test-only: an ordered writer as the native addon makes one (createWriter/writeSync), for the
   * file log's pipelined write path (submitLoop) on this file system. Each call is one job: write
   * every buffer from `position`, then fdatasync; a job starts only after the previous one's
   * fdatasync returned; completions may reach the caller out of order. Absent in nodeIo (the log
   * takes the addon's there).
   */
  orderedWriter?(): OrderedWriter;
}

/** One job of an ordered writer: write every buffer at `position`, then fdatasync (see orderedWriterOf). */
export type OrderedWriter = (fd: number, buffers: Uint8Array[], position: number) => Promise<void>;

/**
 * The native addon's ordered writer (native/pmem/pmem.c, createWriter/writeSync) over `io`, for
 * tests and the storage simulator: jobs run one after another in call order, each a write of every
 * buffer (read when the job runs, not when it is queued) and an fdatasync; the next job starts once
 * that returned. A failure is sticky: later jobs write nothing and fail alike. `ackBeforeSync`
 * (a planted bug): a job is reported done once its write returned, before its fdatasync.
 */
export function orderedWriterOf(io: StorageIo, options: { ackBeforeSync?: boolean } = {}): OrderedWriter {
  let previous: Promise<unknown> = Promise.resolve();
  return (fd, buffers, position) => {
    const written = previous.then(() => writevAll(io, fd, buffers, position));
    const job = written.then(() => io.fdatasync(fd));
    previous = job; // a rejection carries on to every later job: sticky
    return options.ackBeforeSync === true ? written : job;
  };
}

function cb<T>(fn: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * Test-only disk fault (the black-box harness, through SYNOD_TEST_HOOKS in `synod start`): while
 * the hook answers a mode, nodeIo's writes and syncs fail as a full or failing disk would.
 *   ENOSPC  writes and syncs fail with ENOSPC; nothing is written.
 *   EIO     writes succeed (they reach the page cache) but fdatasync/fsync fail with EIO, the
 *           "fsyncgate" case: the data may or may not be on disk, and must not be counted durable.
 * The file log's native writer bypasses nodeIo, so it applies the hook itself (withDiskFaults).
 * Never installed in production: one null check per call when absent.
 */
export type DiskFaultMode = 'ENOSPC' | 'EIO';
let diskFaultHook: (() => DiskFaultMode | null) | null = null;

export function setDiskFaultHook(hook: (() => DiskFaultMode | null) | null): void {
  diskFaultHook = hook;
}

export function diskFaultHookInstalled(): boolean {
  return diskFaultHook !== null;
}

function injected(op: 'write' | 'sync'): NodeJS.ErrnoException | null {
  const mode = diskFaultHook?.() ?? null;
  if (mode === null || (mode === 'EIO' && op === 'write')) return null;
  return Object.assign(new Error(`${mode}: injected disk fault (test hook) on ${op === 'write' ? 'write' : 'fsync'}`), { code: mode, errno: mode === 'EIO' ? -5 : -28, syscall: op === 'write' ? 'write' : 'fdatasync' });
}

/**
 * The native ordered writer under the test-only disk fault hook, as nodeIo applies it, decided when
 * a job is queued: ENOSPC fails the job before it writes; EIO writes it (into the page cache) and
 * fails its sync. `run(fd, buffers, position, sync)` queues one job of the addon's writer.
 */
export function withDiskFaults(run: (fd: number, buffers: Uint8Array[], position: number, sync: boolean) => Promise<void>): OrderedWriter {
  return (fd, buffers, position) => {
    const failedWrite = injected('write');
    if (failedWrite) return Promise.reject(failedWrite);
    const failedSync = injected('sync');
    if (failedSync) {
      return run(fd, buffers, position, false).then(() => {
        throw failedSync;
      });
    }
    return run(fd, buffers, position, true);
  };
}

export const nodeIo: StorageIo = {
  open: (path, flags, mode = 0o644) => cb((done) => fs.open(path, flags, mode, done)),
  close: (fd) => cb<void>((done) => fs.close(fd, (err) => done(err, undefined))),
  writev: (fd, buffers, position) => cb((done) => {
    const fault = diskFaultHook && injected('write');
    if (fault) done(fault, 0);
    else fs.writev(fd, buffers as NodeJS.ArrayBufferView[], position, done);
  }),
  write: (fd, buffer, position) => cb((done) => {
    const fault = diskFaultHook && injected('write');
    if (fault) done(fault, 0);
    else fs.write(fd, buffer, 0, buffer.length, position, done);
  }),
  read: (fd, buffer, offset, length, position) => cb((done) => fs.read(fd, buffer, offset, length, position, done)),
  fdatasync: (fd) => cb<void>((done) => {
    const fault = diskFaultHook && injected('sync');
    if (fault) done(fault, undefined);
    else fs.fdatasync(fd, (err) => done(err, undefined));
  }),
  fsync: (fd) => cb<void>((done) => {
    const fault = diskFaultHook && injected('sync');
    if (fault) done(fault, undefined);
    else fs.fsync(fd, (err) => done(err, undefined));
  }),
  ftruncate: (fd, length) => cb<void>((done) => fs.ftruncate(fd, length, (err) => done(err, undefined))),
  fstatSize: (fd) => cb((done) => fs.fstat(fd, (err, st) => done(err, st?.size ?? 0))),
  rename: (from, to) => cb<void>((done) => fs.rename(from, to, (err) => done(err, undefined))),
  unlink: (path) => cb<void>((done) => fs.unlink(path, (err) => done(err, undefined))),
  readdir: (path) => cb((done) => fs.readdir(path, done)),
  mkdir: (path) => cb<string | undefined>((done) => fs.mkdir(path, { recursive: true }, (err, first) => done(err, first))),
};

/** Writes all of `buffers` at `position`, looping over short writes. */
export async function writevAll(io: StorageIo, fd: number, buffers: Uint8Array[], position: number): Promise<void> {
  let total = 0;
  for (const b of buffers) total += b.length;
  let written = await io.writev(fd, buffers, position);
  while (written < total) {
    // Rare: rebuild the remaining list and go again.
    const rest: Uint8Array[] = [];
    let skip = written;
    for (const b of buffers) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    const n = await io.writev(fd, rest, position + written);
    if (n <= 0) throw Object.assign(new Error('writev wrote 0 bytes'), { code: 'EIO' });
    written += n;
  }
}

export async function readFully(io: StorageIo, fd: number, buffer: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await io.read(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** fsync of a directory: makes renames and new names in it durable. */
export async function syncDir(io: StorageIo, dir: string): Promise<void> {
  const fd = await io.open(dir, 'r');
  try {
    await io.fsync(fd);
  } finally {
    await io.close(fd);
  }
}

/**
 * mkdir -p whose new names are durable: each directory that gained one is fsynced (the parent of
 * the first one created, and each created one but the last). A new directory's name is like a
 * rename's: until its parent is fsynced a power cut may lose it, and everything in it.
 */
export async function mkdirDurable(io: StorageIo, path: string): Promise<void> {
  const made = await io.mkdir(path);
  if (made === undefined) return;
  const first = resolve(made); // node:fs answers in the caller's terms: relative for a relative path
  // The created ones are path's ancestors from `first` down: each one's parent gained its name.
  const gained: string[] = [];
  for (let p = resolve(path); p.length >= first.length; p = dirname(p)) gained.unshift(dirname(p));
  for (const dir of gained) await syncDir(io, dir);
}

/** Atomic replace: temp file, fsync, rename over `name`, fsync of the directory. */
export async function writeFileAtomic(io: StorageIo, dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const temp = `${dir}/${name}.tmp`;
  const fd = await io.open(temp, 'w');
  try {
    await writevAll(io, fd, [bytes], 0);
    await io.fsync(fd);
  } finally {
    await io.close(fd);
  }
  await io.rename(temp, `${dir}/${name}`);
  await syncDir(io, dir);
}

/** Reads a whole (small) file, or null if it does not exist. */
export async function readFileOrNull(io: StorageIo, path: string): Promise<Uint8Array | null> {
  let fd: number;
  try {
    fd = await io.open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const size = await io.fstatSize(fd);
    const buffer = new Uint8Array(size);
    await readFully(io, fd, buffer, size, 0);
    return buffer;
  } finally {
    await io.close(fd);
  }
}
