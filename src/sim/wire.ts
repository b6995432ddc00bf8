import { decodeMessage, encodeMessage } from '../codec/messages.js';
import { encodedBatchOf, encodeValue } from '../codec/values.js';
import type { Message, Value } from '../core/types.js';

/** What a real network does to a message: encode it to bytes and decode a fresh copy. */
export function codecWire(msg: Message): Message {
  return decodeMessage(encodeMessage(msg));
}

/**
 * What the runtime does with a leader's own batch once its log record is made: the same value held
 * by its encoding (codec/values.ts, encodedBatchOf; Replica.adoptEncoding), or null when the
 * runtime would keep it as it is (small batches, other kinds).
 */
export function leaderEncoding(value: Value): Value | null {
  if (value.kind !== 'batch') return null;
  encodeValue(value); // the encoding is cached on the value, as the log record's is
  return encodedBatchOf(value);
}
