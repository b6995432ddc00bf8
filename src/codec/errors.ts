// Typed codec errors. Every way that encoding or decoding can fail ends in one CodecError
// with a stable `code` (for programs and metrics) and the byte `offset` where it failed
// (for humans reading a hex dump). Decoders never throw anything else on any input.

export type CodecErrorCode =
  /** The input ends before the field being read (or a length/count points past the end). */
  | 'SYNOD_CODEC_TRUNCATED'
  /** Bytes are left over after a complete message or entry. */
  | 'SYNOD_CODEC_TRAILING_BYTES'
  /** The leading format version byte is not one this build understands. */
  | 'SYNOD_CODEC_BAD_VERSION'
  /** An unknown message tag or value kind (on decode, or an unknown `type`/`kind` on encode). */
  | 'SYNOD_CODEC_BAD_TYPE'
  /** A varint that is overlong (non-canonical) or above 2^53-1; on encode, a non-safe or negative integer. */
  | 'SYNOD_CODEC_BAD_INTEGER'
  /** A field outside its domain: a boolean not 0/1, a replica id out of range, empty or repeated members. */
  | 'SYNOD_CODEC_BAD_VALUE'
  /** A length or count above a DecodeLimits bound. */
  | 'SYNOD_CODEC_TOO_LARGE'
  /** The CRC32C trailer does not match the bytes it covers. */
  | 'SYNOD_CODEC_BAD_CHECKSUM';

export class CodecError extends Error {
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    /** Byte offset in the input (decode) or output (encode) where the problem was found. */
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'CodecError';
  }
}

export function isCodecError(error: unknown): error is CodecError {
  return error instanceof CodecError;
}
