// Public surface of the codec: messages on the wire, entries in the log, value identity.
export { CodecError, isCodecError, type CodecErrorCode } from './errors.js';
export { DEFAULT_DECODE_LIMITS, decodeLimits, type DecodeLimits } from './limits.js';
export { crc32c } from './crc32c.js';
export { Reader, Sizer, Writer, VARINT_BYTES_MAX, varintSize } from './buffer.js';
export {
  ENTRY_FORMAT_VERSION,
  decodeEntry,
  decodeValue,
  encodeEntry,
  encodeValue,
  valueBytes,
  valueKey,
} from './values.js';
export { MESSAGE_FORMAT_VERSION, MESSAGE_TAGS, decodeMessage, encodeMessage, messageSize } from './messages.js';
