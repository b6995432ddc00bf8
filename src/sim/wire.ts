import { decodeMessage, encodeMessage } from '../codec/messages.js';
import type { Message } from '../core/types.js';

/** What a real network does to a message: encode it to bytes and decode a fresh copy. */
export function codecWire(msg: Message): Message {
  return decodeMessage(encodeMessage(msg));
}
