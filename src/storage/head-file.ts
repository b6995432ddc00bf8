// `log.head`: the first LSN kept and a floor for the highest ballot, written atomically when a snapshot
// lets the head advance (temp, fsync, rename, directory fsync). 32 bytes:
//   "SYNHEAD\0" | format version u32 | reserved u32 | headLsn u64 | ballotFloor u64 ... crc32c of [0,28) at 28
// The ballot floor keeps the highest promised/accepted ballot alive when the records that held it are freed.

import { StorageError, corruptError, onFile } from './errors.js';
import { FORMAT_VERSION, crc32c, readU64, viewOf, writeU64 } from './format.js';
import { type StorageIo, readFileOrNull, writeFileAtomic } from './io.js';

export const HEAD_FILE = 'log.head';
const MAGIC = 'SYNHEAD\0';

export interface HeadState {
  headLsn: number;
  ballotFloor: number;
}

export function encodeHead(state: HeadState): Uint8Array {
  const bytes = new Uint8Array(32);
  const view = viewOf(bytes);
  for (let i = 0; i < 8; i++) bytes[i] = MAGIC.charCodeAt(i);
  view.setUint32(8, FORMAT_VERSION, true);
  writeU64(view, 12, state.headLsn);
  writeU64(view, 20, state.ballotFloor);
  view.setUint32(28, crc32c(bytes, 0, 0, 28), true);
  return bytes;
}

export function decodeHead(bytes: Uint8Array, file: string): HeadState {
  const view = viewOf(bytes);
  if (bytes.length !== 32) throw corruptError(file, 0, `head file is ${bytes.length} bytes, expected 32`);
  for (let i = 0; i < 8; i++) if (bytes[i] !== MAGIC.charCodeAt(i)) throw corruptError(file, 0, 'bad head file magic');
  if (view.getUint32(28, true) !== crc32c(bytes, 0, 0, 28)) throw corruptError(file, 28, 'head file checksum mismatch');
  const version = view.getUint32(8, true);
  if (version > FORMAT_VERSION) {
    throw new StorageError('SYNOD_STORAGE_BAD_VERSION', `${file} has format version ${version}; this build reads up to ${FORMAT_VERSION}: upgrade Synod`, file, 8);
  }
  return { headLsn: readU64(view, 12), ballotFloor: readU64(view, 20) };
}

export async function readHead(io: StorageIo, dir: string): Promise<HeadState | null> {
  const path = `${dir}/${HEAD_FILE}`;
  const bytes = await onFile('read', path, readFileOrNull(io, path));
  return bytes ? decodeHead(bytes, path) : null;
}

export async function writeHead(io: StorageIo, dir: string, state: HeadState): Promise<void> {
  await writeFileAtomic(io, dir, HEAD_FILE, encodeHead(state));
}
