// Typed storage errors. Every failure a user or operator can hit ends in one StorageError
// with a stable `code`; the message says what happened, where, and what to do about it.
//
// A replica that gets any of these from its log must stop voting: it cannot prove that
// what it is about to acknowledge is durable. It recovers (from its own log if the error
// was transient, from its peers otherwise).

export type StorageErrorCode =
  /** A record or file failed its checksum or framing somewhere other than the torn tail. */
  | 'SYNOD_STORAGE_CORRUPT'
  /** The file system is full (ENOSPC, EDQUOT). */
  | 'SYNOD_STORAGE_NO_SPACE'
  /** Any other I/O failure (EIO from write/fdatasync/msync, EBADF, ...). Fatal for the store. */
  | 'SYNOD_STORAGE_IO'
  /** The store was used wrongly: append after close, record too large, head beyond tail. */
  | 'SYNOD_STORAGE_MISUSE'
  /** A file was written by a format version this build does not read. */
  | 'SYNOD_STORAGE_BAD_VERSION'
  /** The requested backend cannot run here (e.g. the pmem addon did not build). */
  | 'SYNOD_STORAGE_UNAVAILABLE'
  /** Records asked for lie below the head (a snapshot covers them; they were deleted). */
  | 'SYNOD_STORAGE_COMPACTED';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    /** The file involved, if any. */
    readonly file: string | null = null,
    /** The byte offset in `file` where the problem was found, if any. */
    readonly offset: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }

  /** For SYNOD_STORAGE_CORRUPT: what was found, without the advice for a replica's own files. */
  reason: string | null = null;
}

export function isStorageError(error: unknown, code?: StorageErrorCode): error is StorageError {
  return error instanceof StorageError && (code === undefined || error.code === code);
}

export function corruptError(file: string, offset: number, reason: string): StorageError {
  const error = new StorageError(
    'SYNOD_STORAGE_CORRUPT',
    `corrupt log data in ${file} at byte ${offset}: ${reason}. This is not a torn last write, ` +
      `so the replica will not guess: stop it, move the data directory aside and let it recover from its peers ` +
      `(or restore the file from a backup).`,
    file,
    offset,
  );
  error.reason = reason;
  return error;
}

/** Wraps an fs error into a StorageError with a stable code and an actionable message. */
export function ioError(error: unknown, operation: string, file: string | null): StorageError {
  if (error instanceof StorageError) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const where = file ? ` on ${file}` : '';
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageError(
      'SYNOD_STORAGE_NO_SPACE',
      `no space left: ${operation}${where} failed (${code}). Nothing after the last acknowledged write was kept; ` +
        `free space (or take a snapshot so old segments are deleted) and restart the replica.`,
      file,
      null,
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR') {
    // Not the device: a file of the wrong type or mode (a copy made as another user, a directory in its place).
    const what =
      code === 'EISDIR'
        ? 'it is a directory where a regular file is expected: move it aside'
        : "permission denied: the replica's user must be able to read and write it and write its directory (check owner and mode)";
    return new StorageError('SYNOD_STORAGE_IO', `cannot use a file: ${operation}${where} failed (${code}): ${what}, then restart the replica.`, file, null, { cause: error });
  }
  return new StorageError(
    'SYNOD_STORAGE_IO',
    `I/O error: ${operation}${where} failed (${code ?? String(error)}). The store is now unusable: the replica ` +
      `stops voting; check the device (dmesg), then restart it so it recovers from its log and its peers.`,
    file,
    null,
    { cause: error },
  );
}

/** Awaits `promise`; a failure becomes an ioError naming `file` (a StorageError passes through). */
export async function onFile<T>(operation: string, file: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw ioError(error, operation, file);
  }
}

export function misuse(message: string): StorageError {
  return new StorageError('SYNOD_STORAGE_MISUSE', message);
}
