// The connection handshake. The dialer speaks first; the acceptor answers once; then only the
// dialer sends (frames, see frame.ts). Every handshake message has the same envelope:
//
//   offset size
//   0      4    magic "SYNP" (0x53 0x59 0x4e 0x50): garbage, HTTP or TLS is refused at byte 1
//   4      1    kind: 1 hello, 2 welcome, 3 refuse
//   5      2    body length (u16 BE), at most HANDSHAKE_BODY_BYTES_MAX
//   7      n    body
//
// hello   (dialer -> acceptor): versionMin u16 | versionMax u16 | senderId u16 | targetId u16 |
//                               clusterIdLength u8 | clusterId (utf-8, 1..255 bytes) |
//                               extensions: (type u8 | length u8 | value)*  (unknown types skipped)
//          extension 1: the sender's incarnation id (16 bytes, random, stored with its data)
//          extension 2: where the sender listens for peers: port u16 | host (utf-8, 1..253 bytes);
//                       left out when the body would exceed HANDSHAKE_BODY_BYTES_MAX
// welcome (acceptor -> dialer): version u16 (the highest version both support) | acceptorId u16
// refuse  (acceptor -> dialer): reason u8 | versionMin u16 | versionMax u16 | messageLength u16 | message utf-8
//
// All integers big-endian. See docs/transport.md for the rules each side applies.

import { TransportError, type PeerAddress, type ReplicaId, type TransportErrorCode } from './types.js';

export const HANDSHAKE_MAGIC = new Uint8Array([0x53, 0x59, 0x4e, 0x50]); // "SYNP"
export const HANDSHAKE_ENVELOPE_BYTES = 7;
export const HANDSHAKE_BODY_BYTES_MAX = 512;
export const HANDSHAKE_BYTES_MAX = HANDSHAKE_ENVELOPE_BYTES + HANDSHAKE_BODY_BYTES_MAX;
export const CLUSTER_ID_BYTES_MAX = 255;
const REFUSE_MESSAGE_BYTES_MAX = 400;
const PROTOCOL_VERSION_MAX = 0xffff;

const KIND_HELLO = 1;
const KIND_WELCOME = 2;
const KIND_REFUSE = 3;

export interface Hello {
  kind: 'hello';
  versionMin: number;
  versionMax: number;
  senderId: ReplicaId;
  /** The replica the dialer means to reach (its configured peer id). */
  targetId: ReplicaId;
  clusterId: string;
  /** The sender's incarnation id as 32 hex digits (a hello extension; null when absent). */
  incarnation: string | null;
  /**
   * Where the sender listens for peers (a hello extension; null when absent). Lets a replica
   * reach one that dialed it before it knows that replica's address from the log: a joiner hears
   * a leader added after the members it was started with.
   */
  address: PeerAddress | null;
}

export interface Welcome {
  kind: 'welcome';
  version: number;
  acceptorId: ReplicaId;
}

export interface Refuse {
  kind: 'refuse';
  code: RefuseCode;
  versionMin: number;
  versionMax: number;
  message: string;
}

export type HandshakeMessage = Hello | Welcome | Refuse;

/** The reasons an acceptor may send in a refusal, with their wire numbers. */
export type RefuseCode = Extract<
  TransportErrorCode,
  | 'SYNOD_TRANSPORT_CLUSTER_MISMATCH'
  | 'SYNOD_TRANSPORT_VERSION_MISMATCH'
  | 'SYNOD_TRANSPORT_WRONG_REPLICA'
  | 'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED'
  | 'SYNOD_TRANSPORT_SHUTTING_DOWN'
  | 'SYNOD_TRANSPORT_INCARNATION_MISMATCH'
>;
const REFUSE_CODES: readonly RefuseCode[] = [
  'SYNOD_TRANSPORT_CLUSTER_MISMATCH', // 1
  'SYNOD_TRANSPORT_VERSION_MISMATCH', // 2
  'SYNOD_TRANSPORT_WRONG_REPLICA', // 3
  'SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', // 4
  'SYNOD_TRANSPORT_SHUTTING_DOWN', // 5
  'SYNOD_TRANSPORT_INCARNATION_MISMATCH', // 6
];

export const INCARNATION_BYTES = 16;
const EXTENSION_INCARNATION = 1;
const EXTENSION_ADDRESS = 2;
const ADDRESS_HOST_BYTES_MAX = 253;

export function isRefuseCode(code: string): code is RefuseCode {
  return (REFUSE_CODES as readonly string[]).includes(code);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** The highest version in both ranges, or null when they do not overlap. */
export function negotiateVersion(aMin: number, aMax: number, bMin: number, bMax: number): number | null {
  const low = Math.max(aMin, bMin);
  const high = Math.min(aMax, bMax);
  return low <= high ? high : null;
}

export function isValidVersionRange(min: number, max: number): boolean {
  return Number.isInteger(min) && Number.isInteger(max) && min >= 1 && min <= max && max <= PROTOCOL_VERSION_MAX;
}

function envelope(kind: number, bodyLength: number): { out: Uint8Array; view: DataView } {
  if (bodyLength > HANDSHAKE_BODY_BYTES_MAX) throw new RangeError(`handshake body too long: ${bodyLength}`);
  const out = new Uint8Array(HANDSHAKE_ENVELOPE_BYTES + bodyLength);
  out.set(HANDSHAKE_MAGIC, 0);
  out[4] = kind;
  const view = new DataView(out.buffer);
  view.setUint16(5, bodyLength);
  return { out, view };
}

export function encodeHello(
  hello: Omit<Hello, 'kind' | 'incarnation' | 'address'> & { incarnation?: string | null; address?: PeerAddress | null },
): Uint8Array {
  const cluster = utf8.encode(hello.clusterId);
  if (cluster.length < 1 || cluster.length > CLUSTER_ID_BYTES_MAX) {
    throw new RangeError(`clusterId must be 1..${CLUSTER_ID_BYTES_MAX} utf-8 bytes, got ${cluster.length}`);
  }
  const incarnation = hello.incarnation ? Buffer.from(hello.incarnation, 'hex') : null;
  if (incarnation !== null && (incarnation.length !== INCARNATION_BYTES || !/^[0-9a-f]+$/.test(hello.incarnation!))) {
    throw new RangeError(`incarnation must be ${INCARNATION_BYTES * 2} lowercase hex digits`);
  }
  let extensionBytes = incarnation === null ? 0 : 2 + INCARNATION_BYTES;
  // The address is a hint: left out (not refused) when it cannot be sent, so the hello still goes.
  let host = hello.address ? utf8.encode(hello.address.host) : null;
  if (host !== null && (host.length < 1 || host.length > ADDRESS_HOST_BYTES_MAX || !isPort(hello.address!.port))) host = null;
  if (host !== null && 9 + cluster.length + extensionBytes + 4 + host.length > HANDSHAKE_BODY_BYTES_MAX) host = null;
  if (host !== null) extensionBytes += 4 + host.length;
  const { out, view } = envelope(KIND_HELLO, 9 + cluster.length + extensionBytes);
  view.setUint16(7, hello.versionMin);
  view.setUint16(9, hello.versionMax);
  view.setUint16(11, hello.senderId);
  view.setUint16(13, hello.targetId);
  out[15] = cluster.length;
  out.set(cluster, 16);
  let at = 16 + cluster.length;
  if (incarnation !== null) {
    out[at] = EXTENSION_INCARNATION;
    out[at + 1] = INCARNATION_BYTES;
    out.set(incarnation, at + 2);
    at += 2 + INCARNATION_BYTES;
  }
  if (host !== null) {
    out[at] = EXTENSION_ADDRESS;
    out[at + 1] = 2 + host.length;
    view.setUint16(at + 2, hello.address!.port);
    out.set(host, at + 4);
  }
  return out;
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

export function encodeWelcome(welcome: Omit<Welcome, 'kind'>): Uint8Array {
  const { out, view } = envelope(KIND_WELCOME, 4);
  view.setUint16(7, welcome.version);
  view.setUint16(9, welcome.acceptorId);
  return out;
}

export function encodeRefuse(refuse: Omit<Refuse, 'kind'>): Uint8Array {
  let message = utf8.encode(refuse.message);
  if (message.length > REFUSE_MESSAGE_BYTES_MAX) message = message.subarray(0, REFUSE_MESSAGE_BYTES_MAX);
  const { out, view } = envelope(KIND_REFUSE, 7 + message.length);
  out[7] = REFUSE_CODES.indexOf(refuse.code) + 1;
  view.setUint16(8, refuse.versionMin);
  view.setUint16(10, refuse.versionMax);
  view.setUint16(12, message.length);
  out.set(message, 14);
  return out;
}

export type HandshakeParse =
  | { status: 'more' }
  | { status: 'error'; error: TransportError }
  | { status: 'done'; message: HandshakeMessage; consumed: number };

/** Says what a non-Synod peer looks like, for the refusal reason. */
export function describeForeignBytes(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 64);
  const text = String.fromCharCode(...head);
  if (/^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI) /.test(text) || /^[A-Z]{3,7} \//.test(text)) {
    return `received HTTP (${JSON.stringify(text.split(/[\r\n]/)[0])}) on the peer port: not a Synod peer`;
  }
  if (head[0] === 0x16 && head[1] === 0x03) return 'received a TLS handshake on a plain peer port: not a Synod peer';
  const hex = Array.from(head.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `bad magic (first bytes ${hex}): not a Synod peer`;
}

/**
 * Parses one handshake message from the start of `bytes` (everything received so far).
 * Rejects foreign bytes as soon as one byte of the magic differs, so a peer port spoken to in
 * HTTP answers at once rather than waiting for a timeout.
 */
export function parseHandshake(bytes: Uint8Array): HandshakeParse {
  const magicSeen = Math.min(bytes.length, HANDSHAKE_MAGIC.length);
  for (let i = 0; i < magicSeen; i++) {
    if (bytes[i] !== HANDSHAKE_MAGIC[i]) {
      return { status: 'error', error: new TransportError('SYNOD_TRANSPORT_NOT_A_PEER', describeForeignBytes(bytes)) };
    }
  }
  if (bytes.length < HANDSHAKE_ENVELOPE_BYTES) return { status: 'more' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = bytes[4]!;
  const bodyLength = view.getUint16(5);
  const malformed = (why: string): HandshakeParse => ({
    status: 'error',
    error: new TransportError('SYNOD_TRANSPORT_HANDSHAKE_MALFORMED', `malformed handshake: ${why}`),
  });
  if (bodyLength > HANDSHAKE_BODY_BYTES_MAX) return malformed(`body of ${bodyLength} bytes exceeds ${HANDSHAKE_BODY_BYTES_MAX}`);
  const consumed = HANDSHAKE_ENVELOPE_BYTES + bodyLength;
  if (bytes.length < consumed) return { status: 'more' };
  const body = 7;
  switch (kind) {
    case KIND_HELLO: {
      if (bodyLength < 10) return malformed('hello too short');
      const clusterLength = bytes[body + 8]!;
      if (bodyLength < 9 + clusterLength || clusterLength < 1) return malformed('hello cluster id length disagrees with body length');
      let clusterId: string;
      try {
        clusterId = utf8Strict.decode(bytes.subarray(body + 9, body + 9 + clusterLength));
      } catch {
        return malformed('cluster id is not utf-8');
      }
      const message: Hello = {
        kind: 'hello',
        versionMin: view.getUint16(body),
        versionMax: view.getUint16(body + 2),
        senderId: view.getUint16(body + 4),
        targetId: view.getUint16(body + 6),
        clusterId,
        incarnation: null,
        address: null,
      };
      // Extensions: later versions may add types; a reader skips the ones it does not know.
      for (let at = body + 9 + clusterLength; at < consumed; ) {
        if (at + 2 > consumed) return malformed('hello extension header runs past the body');
        const type = bytes[at]!;
        const length = bytes[at + 1]!;
        if (at + 2 + length > consumed) return malformed('hello extension runs past the body');
        if (type === EXTENSION_INCARNATION) {
          if (length !== INCARNATION_BYTES) return malformed(`incarnation extension of ${length} bytes, expected ${INCARNATION_BYTES}`);
          message.incarnation = Buffer.from(bytes.subarray(at + 2, at + 2 + length)).toString('hex');
        } else if (type === EXTENSION_ADDRESS) {
          if (length < 3) return malformed(`address extension of ${length} bytes, expected a port and a host`);
          const port = view.getUint16(at + 2);
          let host: string;
          try {
            host = utf8Strict.decode(bytes.subarray(at + 4, at + 2 + length));
          } catch {
            return malformed('address extension host is not utf-8');
          }
          if (!isPort(port)) return malformed(`address extension port ${port} is not in 1..65535`);
          message.address = { host, port };
        }
        at += 2 + length;
      }
      return { status: 'done', message, consumed };
    }
    case KIND_WELCOME: {
      if (bodyLength !== 4) return malformed('welcome must have a 4-byte body');
      return { status: 'done', message: { kind: 'welcome', version: view.getUint16(body), acceptorId: view.getUint16(body + 2) }, consumed };
    }
    case KIND_REFUSE: {
      if (bodyLength < 7) return malformed('refuse too short');
      const messageLength = view.getUint16(body + 5);
      if (bodyLength !== 7 + messageLength) return malformed('refuse message length disagrees with body length');
      const code = REFUSE_CODES[bytes[body]! - 1];
      const text = new TextDecoder().decode(bytes.subarray(body + 7, body + 7 + messageLength));
      if (code === undefined) return malformed(`refusal with unknown reason ${bytes[body]}: ${text}`);
      return {
        status: 'done',
        message: { kind: 'refuse', code, versionMin: view.getUint16(body + 1), versionMax: view.getUint16(body + 3), message: text },
        consumed,
      };
    }
    default:
      return malformed(`unknown kind ${kind}`);
  }
}

/**
 * Accumulates handshake bytes across chunks, bounded by HANDSHAKE_BYTES_MAX.
 * Handshake messages are tiny, so copying is fine here (frames are zero-copy, see frame.ts).
 */
export class HandshakeReader {
  private held: Uint8Array = new Uint8Array(0);

  /** Feeds a chunk; on 'done', `rest` holds the bytes after the handshake message (may be empty). */
  push(chunk: Uint8Array): { status: 'more' } | { status: 'error'; error: TransportError } | { status: 'done'; message: HandshakeMessage; rest: Uint8Array } {
    const room = HANDSHAKE_BYTES_MAX - this.held.length;
    // Only the first `room` bytes can belong to the handshake; anything after is handed back as `rest`.
    const joined = new Uint8Array(this.held.length + Math.min(room, chunk.length));
    joined.set(this.held, 0);
    joined.set(chunk.subarray(0, joined.length - this.held.length), this.held.length);
    const parsed = parseHandshake(joined);
    if (parsed.status === 'error') return parsed;
    if (parsed.status === 'more') {
      // parseHandshake caps the message at HANDSHAKE_BYTES_MAX, so 'more' implies room was left.
      this.held = joined;
      return parsed;
    }
    const usedFromChunk = parsed.consumed - this.held.length;
    this.held = new Uint8Array(0);
    return { status: 'done', message: parsed.message, rest: chunk.subarray(usedFromChunk) };
  }
}
