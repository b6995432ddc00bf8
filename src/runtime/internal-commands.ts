// The runtime's own commands in the log (client id 0, never the application's): JSON bodies
// with an `op`. Replay (replay.ts) and the live replica (replica.ts) decode them with the same
// functions, so that both apply them alike.
//
//   { op: 'address', id, host, port }                    the replicated address book
//   { op: 'incarnation', id, incarnation }               binds replica id to its incarnation id
//                                                         (32 hex digits); the first binding stands
//   { op: 'sessionLimits', sessionsMax, sessionExpiryMs } the session table's settings from this
//                                                         slot on (proposed by a new primary whose
//                                                         own settings differ from the table's)
//   { op: 'ownSession', id }                             session `id` is a replica's own (the one its
//                                                         session-less proposals use): no client may
//                                                         name it, or it could mark the replica's
//                                                         next seqs as done (answered, never applied).
//                                                         Enforced where proposals are submitted, so
//                                                         a replica that predates the op (it ignores
//                                                         it) applies the same commands as the rest
//   { op: 'endpoints', id, endpoints: { name: [host, port], ... } }
//                                                         replica `id`'s client-facing addresses
//                                                         (the KV server's `http`, `binary`), the
//                                                         whole set (replaces the previous one). A
//                                                         primary announces its own (announceEndpoints
//                                                         in replica.ts); addMember may carry the
//                                                         operator's. Not replicated state of the
//                                                         application: a replica that predates the op
//                                                         ignores it and applies the same commands
//
// Why session settings go through the log: a replica that replays entries after a restart must
// decide expiry and eviction as they were decided live; settings taken from its command line would
// make a replica run with other settings diverge (SAFETY.md: determinism of the replicated state).

import { validateSessionLimits, type SessionLimits } from '../core/sessions.js';
import type { PeerAddress } from './api.js';

/** Most named endpoints one replica may announce, and the longest name and host (bounds on what the log carries). */
export const ENDPOINTS_PER_REPLICA_MAX = 8;
export const ENDPOINT_NAME_CHARS_MAX = 32;
export const ENDPOINT_HOST_CHARS_MAX = 255;

export type InternalCommand =
  | { op: 'address'; id: number; host: string; port: number }
  | { op: 'incarnation'; id: number; incarnation: string }
  | { op: 'sessionLimits'; limits: SessionLimits }
  | { op: 'ownSession'; id: number }
  | { op: 'endpoints'; id: number; endpoints: Array<[string, PeerAddress]> }
  | { op: 'unknown' };

export function encodeInternal(body: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(body));
}

export function encodeSessionLimitsCommand(limits: SessionLimits): Uint8Array {
  return encodeInternal({ op: 'sessionLimits', sessionsMax: limits.sessionsMax, sessionExpiryMs: limits.sessionExpiryMs });
}

export function encodeOwnSessionCommand(id: number): Uint8Array {
  return encodeInternal({ op: 'ownSession', id });
}

/** Replica `id`'s named client endpoints, sorted by name (one encoding for equal sets). */
export function encodeEndpointsCommand(id: number, endpoints: ReadonlyArray<readonly [string, PeerAddress]>): Uint8Array {
  const body: Record<string, [string, number]> = {};
  for (const [name, a] of [...endpoints].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) body[name] = [a.host, a.port];
  return encodeInternal({ op: 'endpoints', id, endpoints: body });
}

/** Whether `name` and `address` may be in the endpoint book (the same check on the way in and on decoding). */
export function validEndpoint(name: unknown, host: unknown, port: unknown): boolean {
  return (
    typeof name === 'string' &&
    /^[a-z][a-z0-9-]*$/.test(name) &&
    name.length <= ENDPOINT_NAME_CHARS_MAX &&
    typeof host === 'string' &&
    host.length >= 1 &&
    host.length <= ENDPOINT_HOST_CHARS_MAX &&
    Number.isInteger(port) &&
    (port as number) >= 1 &&
    (port as number) <= 65535
  );
}

function decodeEndpoints(v: unknown): Array<[string, PeerAddress]> | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > ENDPOINTS_PER_REPLICA_MAX) return null;
  const out: Array<[string, PeerAddress]> = [];
  for (const [name, a] of entries) {
    if (!Array.isArray(a) || a.length !== 2 || !validEndpoint(name, a[0], a[1])) return null;
    out.push([name, { host: a[0] as string, port: a[1] as number }]);
  }
  return out;
}

/** Decodes an internal command; anything malformed or unknown is { op: 'unknown' } (ignored alike everywhere). */
export function decodeInternal(payload: Uint8Array): InternalCommand {
  let body: { op?: unknown; id?: unknown; host?: unknown; port?: unknown; incarnation?: unknown; sessionsMax?: unknown; sessionExpiryMs?: unknown; endpoints?: unknown };
  try {
    body = JSON.parse(new TextDecoder().decode(payload)) as typeof body;
  } catch {
    return { op: 'unknown' };
  }
  if (body === null || typeof body !== 'object') return { op: 'unknown' };
  if (body.op === 'address' && typeof body.id === 'number' && typeof body.host === 'string' && typeof body.port === 'number') {
    return { op: 'address', id: body.id, host: body.host, port: body.port };
  }
  if (body.op === 'incarnation' && Number.isInteger(body.id) && isIncarnation(body.incarnation)) {
    return { op: 'incarnation', id: body.id as number, incarnation: body.incarnation };
  }
  if (body.op === 'endpoints' && Number.isInteger(body.id) && (body.id as number) >= 1) {
    const endpoints = decodeEndpoints(body.endpoints);
    if (endpoints !== null) return { op: 'endpoints', id: body.id as number, endpoints };
  }
  if (body.op === 'ownSession' && Number.isSafeInteger(body.id) && (body.id as number) >= 1) return { op: 'ownSession', id: body.id as number };
  if (body.op === 'sessionLimits' && typeof body.sessionsMax === 'number' && typeof body.sessionExpiryMs === 'number') {
    try {
      return { op: 'sessionLimits', limits: validateSessionLimits({ sessionsMax: body.sessionsMax, sessionExpiryMs: body.sessionExpiryMs }) };
    } catch {
      return { op: 'unknown' };
    }
  }
  return { op: 'unknown' };
}

export function isIncarnation(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{32}$/.test(v);
}
