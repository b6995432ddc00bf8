// The replica's metadata file, `meta`: promised ballot, incarnation id, cached configuration, last snapshot.
// Replaced atomically (temp file, fsync, rename, directory fsync). Binary, versioned, checksummed:
//   "SYNODMET" | version u32 | configBytes u32 | promised u64 | snapshotSlot u64 | incarnation 16 B |
//   config (configBytes, codec-encoded by the caller) | crc32c of everything before u32
//
// Hot path note: the runtime need not rewrite this on every promise. A promise can be a log record
// (its ballot is in the record header); on recovery promised = max(meta.promised, log.highestBallot()).

import { StorageError, corruptError, ioError, misuse } from './errors.js';
import { FORMAT_VERSION, crc32c, readU64, viewOf, writeU64 } from './format.js';
import { type StorageIo, mkdirDurable, nodeIo, readFileOrNull, writeFileAtomic } from './io.js';

export const META_FILE = 'meta';
const MAGIC = 'SYNODMET';
const FIXED_BYTES = 48;

export interface Metadata {
  promised: number;
  /** Random id of this data directory's life (SAFETY: a wiped replica must not rejoin as itself). 16 bytes. */
  incarnation: Uint8Array;
  /** The accepted configuration, encoded by the caller (a cache: the log is the source of truth). */
  config: Uint8Array;
  /** Last slot covered by a durable snapshot (0: none). */
  snapshotSlot: number;
}

export function encodeMetadata(meta: Metadata): Uint8Array {
  if (meta.incarnation.length !== 16) throw misuse('incarnation must be 16 bytes');
  if (!Number.isSafeInteger(meta.promised) || meta.promised < 0) throw misuse(`promised must be a safe integer >= 0, got ${meta.promised}`);
  const bytes = new Uint8Array(FIXED_BYTES + meta.config.length + 4);
  const view = viewOf(bytes);
  for (let i = 0; i < 8; i++) bytes[i] = MAGIC.charCodeAt(i);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, meta.config.length, true);
  writeU64(view, 16, meta.promised);
  writeU64(view, 24, meta.snapshotSlot);
  bytes.set(meta.incarnation, 32);
  bytes.set(meta.config, FIXED_BYTES);
  view.setUint32(bytes.length - 4, crc32c(bytes, 0, 0, bytes.length - 4), true);
  return bytes;
}

export function decodeMetadata(bytes: Uint8Array, file: string): Metadata {
  if (bytes.length < FIXED_BYTES + 4) throw corruptError(file, 0, `metadata file of ${bytes.length} bytes is too short`);
  const view = viewOf(bytes);
  for (let i = 0; i < 8; i++) if (bytes[i] !== MAGIC.charCodeAt(i)) throw corruptError(file, 0, 'bad metadata magic');
  if (view.getUint32(bytes.length - 4, true) !== crc32c(bytes, 0, 0, bytes.length - 4)) throw corruptError(file, bytes.length - 4, 'metadata checksum mismatch');
  const version = view.getUint32(8, true);
  if (version > FORMAT_VERSION) throw new StorageError('SYNOD_STORAGE_BAD_VERSION', `${file} has format version ${version}; upgrade Synod`, file, 8);
  const configBytes = view.getUint32(12, true);
  if (FIXED_BYTES + configBytes + 4 !== bytes.length) throw corruptError(file, 12, 'metadata length mismatch');
  return {
    promised: readU64(view, 16),
    snapshotSlot: readU64(view, 24),
    incarnation: bytes.slice(32, 48),
    config: bytes.slice(FIXED_BYTES, FIXED_BYTES + configBytes),
  };
}

export async function readMetadata(dir: string, io: StorageIo = nodeIo): Promise<Metadata | null> {
  const path = `${dir}/${META_FILE}`;
  let bytes: Uint8Array | null;
  try {
    bytes = await readFileOrNull(io, path);
  } catch (error) {
    throw ioError(error, 'read metadata', path);
  }
  return bytes ? decodeMetadata(bytes, path) : null;
}

/** Atomically replaces the metadata file. Resolves once the new contents and the rename are durable. */
export async function writeMetadata(dir: string, meta: Metadata, io: StorageIo = nodeIo): Promise<void> {
  const bytes = encodeMetadata(meta);
  try {
    await mkdirDurable(io, dir);
    await writeFileAtomic(io, dir, META_FILE, bytes);
  } catch (error) {
    throw ioError(error, 'write metadata', `${dir}/${META_FILE}`);
  }
}
