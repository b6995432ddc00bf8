// The binary client protocol: length-prefixed frames over TCP (the frame format of
// src/transport/frame.ts: u32 BE length, then the payload). Many requests are in flight on one
// connection; answers carry the request id and may come back in any order.
//
//   request   kind u8 | requestId u32 | body
//     WRITE  (1)  clientId f64 | seq f64 | floor f64 | timeoutMs u32 | command   (codec.ts)
//     READ   (2)  consistency u8 (0 linearizable, 1 lease, 2 local) | maxWaitMs u32 | query
//                 maxWaitMs: how long a linearizable or lease read may wait to be confirmed (then
//                 UNAVAILABLE); 0 is the server's default, its propose timeout (5 s). KvClient
//                 sends its attempt's time, so that the server gives up when the client would.
//     STATUS (3)  (empty)
//     AUTH   (4)  token, UTF-8 (first frame of a connection; see "Authentication" below)
//     REGISTER (5) timeoutMs u32                     open a session through the log (leader only)
//   response  status u8 | requestId u32 | body
//     OK              (0)  WRITE/READ: a result (codec.ts); STATUS: UTF-8 JSON; REGISTER: session id f64
//     NOT_LEADER      (1)  leaderId u32 (0: none known) | the leader's binary address, UTF-8 ("" if unknown)
//     UNAVAILABLE     (2)  UTF-8 message   certain failure: not proposed (shutting down, stopped)
//     OUTCOME_UNKNOWN (3)  UTF-8 message   proposed, no result in time: retry with the same seq
//     BAD_REQUEST     (4)  UTF-8 message
//     SESSION_EXPIRED (5)  UTF-8 message   the session forgot this seq's result; never re-executed
//     UNAUTHORIZED    (6)  UTF-8 message   no or wrong token; the server closes the connection
//
// Authentication: a server started with tokens (--client-token-file) needs an AUTH frame as the
// first frame of every connection, within binaryAuthTimeoutMs. It answers OK (empty body) or
// UNAUTHORIZED and closes; any other first frame gets UNAUTHORIZED and a close. A client may
// send requests right behind its AUTH frame. A server without tokens answers AUTH with OK.
// Connection-level refusals and closes (too many connections, a frame not completed in time, an
// idle connection) are one UNAVAILABLE frame with requestId 0, which no request uses, then a close.
//
// Sessions: a client registers a session (REGISTER: the id comes from the log, the same on every
// replica), uses it as clientId and numbers its writes 1, 2, 3...; floor is the lowest seq it
// still waits for (at most seq: a higher floor is BAD_REQUEST). A retry of (clientId, seq), to
// any replica, is applied at most once and answered with the original result (the replicated
// session table, SAFETY.md). A session idle for longer than the cluster's sessionExpiryMs (or
// evicted beyond sessionsMax), or one that was never registered, is gone: its writes get
// SESSION_EXPIRED and are not executed; register anew.

import { Buffer } from 'node:buffer';
import type { Consistency } from '../runtime/api.js';
import { u32be } from './codec.js';

export const KIND_WRITE = 1;
export const KIND_READ = 2;
export const KIND_STATUS = 3;
export const KIND_AUTH = 4;
export const KIND_REGISTER = 5;

export const ST_OK = 0;
export const ST_NOT_LEADER = 1;
export const ST_UNAVAILABLE = 2;
export const ST_OUTCOME_UNKNOWN = 3;
export const ST_BAD_REQUEST = 4;
export const ST_SESSION_EXPIRED = 5;
export const ST_UNAUTHORIZED = 6;
/**
 * An UNAVAILABLE answer whose message starts with this: the leader refused the write at admission
 * (SYNOD_OVERLOADED: too much waits to be proposed there, or it found no slot in time). Certainly
 * not applied, as every UNAVAILABLE; a client should retry after a pause on the same connection,
 * not move to another replica (the leader is where writes go) nor drop the connection (its other
 * requests in flight would become unknown outcomes).
 */
export const OVERLOADED_PREFIX = 'SYNOD_OVERLOADED: ';
const OVERLOADED_PREFIX_BYTES = new TextEncoder().encode(OVERLOADED_PREFIX);

/** Whether an UNAVAILABLE answer's body is an admission refusal (OVERLOADED_PREFIX). */
export function isOverloadedBody(body: Uint8Array): boolean {
  if (body.length < OVERLOADED_PREFIX_BYTES.length) return false;
  for (let i = 0; i < OVERLOADED_PREFIX_BYTES.length; i++) if (body[i] !== OVERLOADED_PREFIX_BYTES[i]) return false;
  return true;
}

/** The request id of connection-level answers (refusals); clients number requests from 1. */
export const CONNECTION_REQUEST_ID = 0;

/** Bytes of a frame beyond its command or query (headers, sizes): the frame limit's margin. */
export const FRAME_OVERHEAD_BYTES_MAX = 64 * 1024;

const CONSISTENCIES: Consistency[] = ['linearizable', 'lease', 'local'];

export type Request =
  | { kind: typeof KIND_WRITE; requestId: number; clientId: number; seq: number; floor: number; timeoutMs: number; command: Uint8Array }
  | { kind: typeof KIND_READ; requestId: number; consistency: Consistency; maxWaitMs: number; query: Uint8Array }
  | { kind: typeof KIND_STATUS; requestId: number }
  | { kind: typeof KIND_REGISTER; requestId: number; timeoutMs: number };

export interface Response {
  status: number;
  requestId: number;
  body: Uint8Array;
}

export class ProtocolError extends Error {
  readonly code = 'SYNOD_KV_PROTOCOL';
}

// Encoders use Buffer.allocUnsafe (small ones come from Node's pool, and every byte is written)
// and Buffer's own number writers: one request or answer per client operation is the hot path.
export function encodeRequest(r: Request): Uint8Array {
  const body = r.kind === KIND_WRITE ? 28 + r.command.length : r.kind === KIND_READ ? 5 + r.query.length : r.kind === KIND_REGISTER ? 4 : 0;
  const out = Buffer.allocUnsafe(4 + 5 + body);
  out.writeUInt32BE(5 + body, 0);
  out[4] = r.kind;
  out.writeUInt32BE(r.requestId, 5);
  if (r.kind === KIND_WRITE) {
    out.writeDoubleBE(r.clientId, 9);
    out.writeDoubleBE(r.seq, 17);
    out.writeDoubleBE(r.floor, 25);
    out.writeUInt32BE(r.timeoutMs, 33);
    out.set(r.command, 37);
  } else if (r.kind === KIND_READ) {
    out[9] = CONSISTENCIES.indexOf(r.consistency);
    out.writeUInt32BE(r.maxWaitMs, 10);
    out.set(r.query, 14);
  } else if (r.kind === KIND_REGISTER) {
    out.writeUInt32BE(r.timeoutMs, 9);
  }
  return out;
}

function checkSessionNumber(name: string, x: number): void {
  if (!Number.isSafeInteger(x) || x < 0) throw new ProtocolError(`${name} must be a non-negative integer, got ${x}`);
}

/**
 * The big-endian f64 at `at` (the caller has checked that 8 bytes are there): Node's own reader,
 * which works on any Uint8Array (it only indexes `this`), without a Buffer or DataView per request.
 */
const readDoubleBE = Buffer.prototype.readDoubleBE;
const f64be = (b: Uint8Array, at: number): number => readDoubleBE.call(b as Buffer, at);

/**
 * A session number read as an f64, as a small integer when it is one. V8 keeps a number read from
 * an f64 as a boxed double even when it is integral, and every field it is stored in (the write's
 * pending entry, its queued command) then boxes it again: 16 bytes each, ~80 per write on the
 * leader. `x | 0` gives the same value as a small integer; larger ones are left as they are.
 */
const small = (x: number): number => {
  const i = x | 0;
  return i === x ? i : x;
};

/** A WRITE request's fields besides its command: decodeWriteInto() fills one the caller keeps. */
export interface WriteHeader {
  requestId: number;
  clientId: number;
  seq: number;
  floor: number;
  timeoutMs: number;
}

/**
 * Decodes a WRITE request (bytes [start, end) of `p`, kind byte included) into `into`, and returns
 * its command, a view of `p`. The server's hot path: no request object per write, only the view.
 * Throws ProtocolError as decodeRequest does.
 */
export function decodeWriteInto(p: Uint8Array, start: number, end: number, into: WriteHeader): Uint8Array {
  const length = end - start;
  if (length < 33) throw new ProtocolError('truncated WRITE header');
  const clientId = f64be(p, start + 5);
  const seq = f64be(p, start + 13);
  const floor = f64be(p, start + 21);
  checkSessionNumber('clientId', clientId);
  checkSessionNumber('seq', seq);
  checkSessionNumber('floor', floor);
  if (clientId < 1 || seq < 1) throw new ProtocolError('clientId and seq start at 1');
  // As HTTP's Synod-Floor: a floor above the seq would make the session forget this very write's
  // result (and those of writes still in flight below it), so a retry could not be answered.
  if (floor > seq) throw new ProtocolError(`floor (${floor}) may not exceed seq (${seq}): the floor is the lowest seq not yet answered`);
  into.requestId = u32be(p, start + 1);
  into.clientId = small(clientId);
  into.seq = small(seq);
  into.floor = small(floor);
  into.timeoutMs = u32be(p, start + 29);
  // A plain view (not Buffer.subarray(): no species lookup, ~2x faster per request).
  return new Uint8Array(p.buffer, p.byteOffset + start + 33, length - 33);
}

/**
 * Decodes a request payload (without the frame header): bytes [start, end) of `p`, so that a
 * server reads each frame where it lies in the socket's chunk. Throws ProtocolError. The command
 * or query is a view of `p`.
 */
export function decodeRequest(p: Uint8Array, start = 0, end = p.length): Request {
  const length = end - start;
  if (length < 5) throw new ProtocolError(`request of ${length} bytes is shorter than its header`);
  const kind = p[start]!;
  const requestId = u32be(p, start + 1);
  if (kind === KIND_WRITE) {
    const h: WriteHeader = { requestId: 0, clientId: 0, seq: 0, floor: 0, timeoutMs: 0 };
    const command = decodeWriteInto(p, start, end, h);
    return { kind, requestId, clientId: h.clientId, seq: h.seq, floor: h.floor, timeoutMs: h.timeoutMs, command };
  }
  if (kind === KIND_READ) {
    if (length < 10) throw new ProtocolError('truncated READ header');
    const consistency = CONSISTENCIES[p[start + 5]!];
    if (!consistency) throw new ProtocolError(`unknown consistency ${p[start + 5]}`);
    return { kind, requestId, consistency, maxWaitMs: u32be(p, start + 6), query: p.subarray(start + 10, end) };
  }
  if (kind === KIND_STATUS) return { kind, requestId };
  if (kind === KIND_REGISTER) {
    if (length !== 9) throw new ProtocolError('a REGISTER body is timeoutMs u32 alone');
    return { kind, requestId, timeoutMs: u32be(p, start + 5) };
  }
  throw new ProtocolError(`unknown request kind ${kind}`);
}

export function encodeResponse(status: number, requestId: number, body: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(4 + 5 + body.length);
  out.writeUInt32BE(5 + body.length, 0);
  out[4] = status;
  out.writeUInt32BE(requestId, 5);
  out.set(body, 9);
  return out;
}

export function decodeResponse(p: Uint8Array): Response {
  if (p.length < 5) throw new ProtocolError(`response of ${p.length} bytes is shorter than its header`);
  return { status: p[0]!, requestId: u32be(p, 1), body: p.subarray(5) };
}

/** A REGISTER answer's body: the session id, f64 big-endian. */
export function encodeSessionIdBody(id: number): Uint8Array {
  const out = Buffer.allocUnsafe(8);
  out.writeDoubleBE(id, 0);
  return out;
}

export function decodeSessionIdBody(body: Uint8Array): number {
  if (body.length !== 8) throw new ProtocolError(`a session id is 8 bytes, got ${body.length}`);
  const id = new DataView(body.buffer, body.byteOffset, 8).getFloat64(0);
  if (!Number.isSafeInteger(id) || id < 1) throw new ProtocolError(`bad session id ${id}`);
  return id;
}

export function encodeNotLeader(leader: number | null, address: string): Uint8Array {
  const a = new TextEncoder().encode(address);
  const out = new Uint8Array(4 + a.length);
  new DataView(out.buffer).setUint32(0, leader ?? 0);
  out.set(a, 4);
  return out;
}

export function decodeNotLeader(body: Uint8Array): { leader: number | null; address: string } {
  if (body.length < 4) return { leader: null, address: '' };
  const id = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  return { leader: id === 0 ? null : id, address: new TextDecoder().decode(body.subarray(4)) };
}

/** A whole AUTH frame (header included): kind 4 | requestId u32 | token bytes. */
export function encodeAuth(requestId: number, token: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 5 + token.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 5 + token.length);
  out[4] = KIND_AUTH;
  v.setUint32(5, requestId);
  out.set(token, 9);
  return out;
}

/** An AUTH payload (without the frame header), or null when the payload is not an AUTH frame. */
export function decodeAuth(p: Uint8Array): { requestId: number; token: Uint8Array } | null {
  if (p.length < 5 || p[0] !== KIND_AUTH) return null;
  return { requestId: new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(1), token: p.subarray(5) };
}
