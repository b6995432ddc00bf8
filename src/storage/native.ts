// Lazy loader of the optional native addon (native/pmem): memory mapping with cache-line flushes for the
// pmem backend, and a hardware (SSE4.2) CRC32C that the file log uses when present.
// The addon is built at install by native/build.mjs; where it could not build, load() says why.

import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { StorageError } from './errors.js';
import { setCrc32c, setSealRecords } from './format.js';
import { crc32c as crc32cJs } from '../codec/crc32c.js';

const NATIVE_CRC_BYTES_MIN = 256;

export interface NativeMapping {
  /** The mapped bytes. Invalid after unmap(). */
  buffer: ArrayBuffer;
  /** True if the mapping was made with MAP_SYNC (DAX): cache-line flushes alone make stores durable. */
  mapSync: boolean;
}

/** The addon's calls the pmem backend makes on a segment (the storage simulator models these). */
export type PmemMappingCalls = Pick<PmemAddon, 'map' | 'unmap' | 'flush' | 'drain' | 'msync' | 'fallocate'>;

export interface PmemAddon {
  map(fd: number, length: number, trySync: boolean): NativeMapping;
  unmap(buffer: ArrayBuffer): void;
  /** CLWB/CLFLUSHOPT/CLFLUSH over [offset, offset+length) (no fence). */
  flush(buffer: ArrayBuffer, offset: number, length: number): void;
  /** SFENCE: orders and completes the flushes before it. */
  drain(): void;
  /** msync(MS_SYNC) of the page-aligned range covering [offset, offset+length). Throws with errno code. */
  msync(buffer: ArrayBuffer, offset: number, length: number): void;
  /** posix_fallocate. Throws with errno code (ENOSPC). */
  fallocate(fd: number, length: number): void;
  crc32c(bytes: Uint8Array, previous: number, start: number, end: number): number;
  /** An ordered writer for writeSync (one per log). Absent from addons built before it existed. */
  createWriter?(): unknown;
  /**
   * pwritev of all `buffers` at `position` (split at IOV_MAX, looping over short writes), then, if `sync`,
   * one fdatasync: ONE job on libuv's pool. A writer's jobs run strictly in call order, each starting only
   * after the previous one's fdatasync returned; a failure is sticky (later jobs write nothing and reject).
   * Rejects with an Error carrying `code` (errno name) and `syscall` ('pwritev' | 'fdatasync').
   */
  writeSync?(writer: unknown, fd: number, buffers: Uint8Array[], position: number, sync: boolean): Promise<void>;
  /** See format.ts sealRecords. Absent on big-endian hosts and from addons built before it existed. */
  sealRecords?(bytes: Uint8Array, start: number, end: number, chain: number): number;
  features(): { clwb: boolean; clflushopt: boolean; sse42: boolean };
}

let cached: { addon: PmemAddon | null; reason: string } | null = null;

function addonPath(): string {
  // dist/src/storage/native.js -> <root>/native/pmem/build/Release/synod_pmem.node
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  return join(root, 'native', 'pmem', 'build', 'Release', 'synod_pmem.node');
}

/** The addon, or null with the reason it is unavailable. Loads once. */
export function tryLoadNative(): { addon: PmemAddon | null; reason: string } {
  if (cached) return cached;
  const path = addonPath();
  if (process.env['SYNOD_NO_NATIVE'] === '1') {
    cached = { addon: null, reason: 'disabled by SYNOD_NO_NATIVE=1' };
  } else if (!existsSync(path)) {
    const logPath = join(dirname(path), '..', '..', 'build-error.txt');
    const why = existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n')[0] : 'it was not built';
    cached = { addon: null, reason: `${path} is missing (${why}); run \`node native/build.mjs\` to see the build error` };
  } else {
    try {
      const require = createRequire(import.meta.url);
      cached = { addon: require(path) as PmemAddon, reason: '' };
    } catch (error) {
      cached = { addon: null, reason: `loading ${path} failed: ${(error as Error).message}` };
    }
  }
  return cached;
}

/** The addon, or a SYNOD_STORAGE_UNAVAILABLE error naming why it is not there. */
export function loadNative(): PmemAddon {
  const { addon, reason } = tryLoadNative();
  if (!addon) throw new StorageError('SYNOD_STORAGE_UNAVAILABLE', `pmem backend unavailable: ${reason}. Use --log-backend file.`);
  return addon;
}

let crcTried = false;
/** Switches the log CRC to the hardware one if the addon is present (same values, ~10x faster). */
export function tryNativeCrc(): boolean {
  if (crcTried) return false;
  crcTried = true;
  const { addon } = tryLoadNative();
  if (!addon || !addon.features().sse42) return false;
  const fn = addon.crc32c;
  // An N-API call costs ~100 ns: below ~256 bytes the pure-TS table loop is faster.
  setCrc32c((bytes, previous = 0, start = 0, end = bytes.length) =>
    end - start < NATIVE_CRC_BYTES_MIN ? crc32cJs(bytes, previous, start, end) : fn(bytes, previous, start, end),
  );
  // One call seals a whole run of records (the file log's groups): no per-record N-API call.
  const seal = addon.sealRecords;
  if (typeof seal === 'function') setSealRecords((bytes, start, end, chain) => seal.call(addon, bytes, start, end, chain));
  return true;
}
