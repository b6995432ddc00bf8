// Length-prefixed frames: u32 big-endian payload length, then the payload.
//
//   +----------------+------------------------+
//   | length (u32 BE) | payload (length bytes) |
//   +----------------+------------------------+
//
// The decoder is bounded and zero-copy where it can be:
// - a frame that lies wholly inside one received chunk is delivered as a subarray of that chunk;
// - a frame that spans chunks is copied into one buffer of exactly its length, allocated only
//   once its header has been read and checked against frameBytesMax;
// - a header announcing more than frameBytesMax is an error before anything is allocated.
// So the decoder never holds more than FRAME_HEADER_BYTES + frameBytesMax bytes of a partial frame.
// With `growFromBytes` (for ports open to anyone: the binary client port) the buffer of a frame
// larger than that starts at about that size and doubles as its bytes arrive, so that a header
// alone cannot make the decoder reserve frameBytesMax; without it (the peer transport) the
// buffer is allocated once, at its full length.

import { TransportError } from './types.js';

export const FRAME_HEADER_BYTES = 4;
/** The wire format's own ceiling: the length field is a u32. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

/** Writes the 4-byte header for a payload of `length` bytes into `target` at `offset`. */
export function writeFrameHeader(target: Uint8Array, offset: number, length: number): void {
  if (!(Number.isInteger(length) && length >= 0 && length <= FRAME_BYTES_LIMIT)) {
    throw new RangeError(`frame length out of range: ${length}`);
  }
  target[offset] = length >>> 24;
  target[offset + 1] = (length >>> 16) & 0xff;
  target[offset + 2] = (length >>> 8) & 0xff;
  target[offset + 3] = length & 0xff;
}

/** One frame as a fresh buffer: header + payload. For tests and tools; the TCP writer batches instead. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export class FrameDecoder {
  // The header being assembled when it spans chunks.
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  // The length of a frame whose header is read but none of whose body has arrived, or -1.
  // Deciding only when body bytes arrive keeps a body that starts a chunk zero-copy.
  private expected = -1;
  // The body being assembled when it spans chunks (its length is bodyLength; the buffer is that
  // long, or shorter while it grows), and how much is filled.
  private body: Uint8Array | null = null;
  private bodyLength = 0;
  private bodyFilled = 0;
  private failed: TransportError | null = null;

  /** `growFromBytes`: 0, or the first size of a growing buffer for a frame that spans chunks (see above). */
  constructor(
    readonly frameBytesMax: number,
    readonly growFromBytes = 0,
  ) {
    if (!(Number.isInteger(frameBytesMax) && frameBytesMax >= 0 && frameBytesMax <= FRAME_BYTES_LIMIT)) {
      throw new RangeError(`frameBytesMax out of range: ${frameBytesMax}`);
    }
    if (!(Number.isInteger(growFromBytes) && growFromBytes >= 0)) throw new RangeError(`growFromBytes out of range: ${growFromBytes}`);
  }

  /** Bytes received of a partial frame (header or body). Never above FRAME_HEADER_BYTES + frameBytesMax. */
  bufferedBytes(): number {
    if (this.body !== null) return FRAME_HEADER_BYTES + this.bodyFilled;
    return this.expected >= 0 ? FRAME_HEADER_BYTES : this.headerFilled;
  }

  /** Bytes allocated for a partial frame's body (with growFromBytes: about what arrived, at least growFromBytes). */
  reservedBytes(): number {
    return this.body === null ? 0 : this.body.length;
  }

  /**
   * push() for a caller that reads each frame where it lies: onFrame(bytes, start, end) gets the
   * frame's payload as bytes [start, end) (valid after the call, as push()'s views), so the
   * frames that lie wholly in the chunk cost no view object each. Frames that span chunks go
   * through push() (their payload is a buffer of its own: start 0).
   */
  pushRanges(chunk: Uint8Array, onFrame: (bytes: Uint8Array, start: number, end: number) => void): TransportError | null {
    if (this.failed !== null) return this.failed;
    let at = 0;
    const end = chunk.length;
    if (this.body === null && this.expected < 0 && this.headerFilled === 0) {
      while (end - at >= FRAME_HEADER_BYTES) {
        const length = ((chunk[at]! << 24) | (chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!) >>> 0;
        // A frame too large, or not wholly here: push() below refuses it or keeps its start.
        if (length > this.frameBytesMax || end - at - FRAME_HEADER_BYTES < length) break;
        at += FRAME_HEADER_BYTES;
        onFrame(chunk, at, at + length);
        at += length;
      }
      if (at === end) return null;
    }
    this.onRange = onFrame;
    return this.push(at === 0 ? chunk : chunk.subarray(at), this.rangeOfFrame);
  }
  private onRange: (bytes: Uint8Array, start: number, end: number) => void = () => {};
  private readonly rangeOfFrame = (frame: Uint8Array): void => this.onRange(frame, 0, frame.length);

  /**
   * Feeds one chunk; calls onFrame for each complete frame, in order. Returns null, or the error
   * that makes the stream undecodable (the decoder then refuses every later chunk with it).
   * onFrame must not throw (the caller catches its handler's exceptions).
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): TransportError | null {
    if (this.failed !== null) return this.failed;
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.body !== null) {
        // Continue a body that spans chunks.
        const take = Math.min(this.bodyLength - this.bodyFilled, end - at);
        if (this.bodyFilled + take > this.body.length) this.grow(this.bodyFilled + take);
        this.body.set(chunk.subarray(at, at + take), this.bodyFilled);
        this.bodyFilled += take;
        at += take;
        if (this.bodyFilled === this.bodyLength) {
          // A grown buffer reaches exactly bodyLength when the last bytes come (grow caps there).
          const frame = this.body;
          this.body = null;
          this.bodyFilled = 0;
          onFrame(frame);
        }
        continue;
      }
      if (this.expected < 0) {
        let length: number;
        if (this.headerFilled === 0 && end - at >= FRAME_HEADER_BYTES) {
          // Fast path: the whole header is in this chunk.
          length = ((chunk[at]! << 24) | (chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!) >>> 0;
          at += FRAME_HEADER_BYTES;
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.headerFilled, end - at);
          this.header.set(chunk.subarray(at, at + take), this.headerFilled);
          this.headerFilled += take;
          at += take;
          if (this.headerFilled < FRAME_HEADER_BYTES) break; // at === end
          const h = this.header;
          length = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
          this.headerFilled = 0;
        }
        if (length > this.frameBytesMax) {
          this.failed = new TransportError(
            'SYNOD_TRANSPORT_FRAME_TOO_LARGE',
            `inbound frame of ${length} bytes exceeds frameBytesMax ${this.frameBytesMax}`,
          );
          return this.failed;
        }
        this.expected = length;
      }
      const length = this.expected;
      if (end - at >= length) {
        // Zero-copy: the body lies wholly inside this chunk.
        const frame = chunk.subarray(at, at + length);
        at += length;
        this.expected = -1;
        onFrame(frame);
      } else if (at < end) {
        // The body spans chunks: one allocation of exactly its length, bounded by frameBytesMax
        // (growing: what is here, at least growFromBytes, never more than its length).
        this.body = new Uint8Array(this.growFromBytes === 0 ? length : Math.min(length, Math.max(this.growFromBytes, end - at)));
        this.bodyLength = length;
        this.bodyFilled = end - at;
        this.body.set(chunk.subarray(at, end), 0);
        this.expected = -1;
        at = end;
      }
      // else: the header ended the chunk; the body decides in the next one.
    }
    return null;
  }

  /** A body buffer of at least `bytes` (doubling, capped at the frame's length), the filled part copied over. */
  private grow(bytes: number): void {
    const body = new Uint8Array(Math.min(this.bodyLength, Math.max(bytes, 2 * this.body!.length)));
    body.set(this.body!.subarray(0, this.bodyFilled), 0);
    this.body = body;
  }
}
