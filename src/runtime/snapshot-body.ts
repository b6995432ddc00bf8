// The replicated state a snapshot carries: the slot it covers, the configurations, the session
// table (part of the replicated state: exactly-once must survive a snapshot) and the
// application's own bytes. Layout: magic "SNB1" | u32 header length | header JSON | app bytes.
// The session table's clock, id counter and settings ride in `sessionClock`, each session's
// last-active stamp as a 4th element of its tuple; snapshots from before both still load (every
// session then counts as active at the first stamp applied after the restore). The endpoint book
// (replicas' client addresses, `endpoints`) is written only when it has entries, so that a body
// without them is byte for byte what earlier versions wrote (state digests hash this head), and
// it is absent in older snapshots; earlier versions ignore it.

import type { ConfigEpoch } from '../core/types.js';
import { SessionTable, type SessionTableData } from '../core/sessions.js';
import { ENDPOINTS_PER_REPLICA_MAX, isIncarnation, validEndpoint } from './internal-commands.js';

const MAGIC = 0x31424e53; // "SNB1" little-endian

interface Header {
  slot: number;
  configs: ConfigEpoch[];
  addresses?: Array<[number, string, number]>;
  /** The incarnation book (absent in older snapshots). */
  incarnations?: Array<[number, string]>;
  sessions: Array<[number, number, Array<[number, string]>, number?]>;
  /** The stamped clock, the next session id and the session settings (absent in older snapshots). */
  sessionClock?: { timeMs: number; nextId: number; sessionsMax: number; sessionExpiryMs: number };
  /** The slot of a chosen last request at or below `slot` (absent: none). */
  stoppedAt?: number;
  /** Sessions the replicas opened for their own proposals, which clients may not name (absent in older snapshots). */
  ownSessions?: number[];
  /** The endpoint book: [replica id, name, host, port] (absent in older snapshots and when empty). */
  endpoints?: Array<[number, string, string, number]>;
}

export type SnapshotBodyParts = Omit<SnapshotBody, 'app'>;

export interface SnapshotBody {
  slot: number;
  configs: ConfigEpoch[];
  /** The replicated address book: every member's peer address. */
  addresses: Array<[number, string, number]>;
  /** The replicated incarnation book: each bound replica id's incarnation id. */
  incarnations: Array<[number, string]>;
  sessions: SessionTable<Uint8Array>;
  app: Uint8Array;
  /** The slot of a chosen last request at or below `slot` (0: none; the replica set stopped there). */
  stoppedAt?: number;
  /** Session ids the replicas opened for their own proposals (internal-commands.ts, `ownSession`). */
  ownSessions?: number[];
  /** The replicated endpoint book: [replica id, endpoint name, host, port] (internal-commands.ts, `endpoints`). */
  endpoints?: Array<[number, string, string, number]>;
}

export function encodeSnapshotBody(body: SnapshotBody): Uint8Array {
  return Buffer.concat([encodeSnapshotBodyHead(body), body.app]);
}

/** Magic, length and header: the app's bytes follow (encodeSnapshotBody is the two together). */
export function encodeSnapshotBodyHead(body: SnapshotBodyParts): Uint8Array {
  const header: Header = {
    slot: body.slot,
    configs: body.configs,
    addresses: body.addresses,
    incarnations: body.incarnations,
    ...(body.stoppedAt ? { stoppedAt: body.stoppedAt } : {}),
    ...(body.ownSessions !== undefined && body.ownSessions.length > 0 ? { ownSessions: body.ownSessions } : {}),
    ...(body.endpoints !== undefined && body.endpoints.length > 0 ? { endpoints: body.endpoints } : {}),
    ...sessionHeader(body.sessions.toJSON()),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const head = new Uint8Array(8 + json.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  head.set(json, 8);
  return head;
}

function sessionHeader(data: SessionTableData<Uint8Array>): Pick<Header, 'sessions' | 'sessionClock'> {
  const { timeMs, nextId, sessionsMax, sessionExpiryMs } = data;
  return {
    sessionClock: { timeMs, nextId, sessionsMax, sessionExpiryMs },
    sessions: data.sessions.map(([id, floor, results, activeMs]) => [id, floor, results.map(([seq, r]) => [seq, Buffer.from(r).toString('base64')]), activeMs]),
  };
}

/**
 * The leading bytes of a body received in `chunks` that hold its whole head (magic, u32 head
 * length, head): the first chunk if they are all there, else as many chunks as it takes, joined
 * (decodeSnapshotBody of it reads the head; its `app` is then only the part that came along).
 * Lets a body be checked without joining megabytes of chunks into one buffer.
 */
export function snapshotBodyHeadOf(chunks: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let n = 0;
  let need = 8; // the magic and the head's length first, then the whole head
  for (const c of chunks) {
    if (n >= need) break;
    parts.push(c);
    n += c.length;
    if (need === 8 && n >= 8) {
      const lead = parts.length === 1 ? c : Buffer.concat(parts, 8);
      need = 8 + new DataView(lead.buffer, lead.byteOffset, 8).getUint32(4, true);
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export function decodeSnapshotBody(bytes: Uint8Array): SnapshotBody {
  if (bytes.length < 8) throw new Error('snapshot body truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new Error('snapshot body: bad magic');
  const headerBytes = view.getUint32(4, true);
  if (8 + headerBytes > bytes.length) throw new Error('snapshot body: header runs past the end');
  let header: Header;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerBytes)).toString('utf8')) as Header;
  } catch (e) {
    throw new Error(`snapshot body: the header is not JSON (${(e as Error).message})`);
  }
  if (!validHeader(header)) throw new Error('snapshot body: malformed header');
  const tuples = header.sessions.map(
    ([id, floor, results, activeMs]) => [id, floor, results.map(([seq, r]) => [seq, new Uint8Array(Buffer.from(r, 'base64'))]), activeMs] as [number, number, Array<[number, Uint8Array]>, number?],
  );
  const sessions = SessionTable.fromJSON<Uint8Array>(header.sessionClock ? { ...header.sessionClock, sessions: tuples } : tuples);
  return { slot: header.slot, configs: header.configs, addresses: header.addresses ?? [], incarnations: header.incarnations ?? [], sessions, app: bytes.subarray(8 + headerBytes), stoppedAt: header.stoppedAt ?? 0, ownSessions: header.ownSessions ?? [], endpoints: header.endpoints ?? [] };
}

const isId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1023;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Every field a restore relies on, checked before it is used (a snapshot may come from a peer). */
function validHeader(h: unknown): h is Header {
  if (typeof h !== 'object' || h === null) return false;
  const { slot, configs, addresses, incarnations, sessions, stoppedAt, sessionClock, ownSessions, endpoints } = h as Partial<Header>;
  if (ownSessions !== undefined && (!Array.isArray(ownSessions) || !ownSessions.every((id) => isCount(id) && id >= 1))) return false;
  if (!isCount(slot) || !Array.isArray(configs) || !Array.isArray(sessions)) return false;
  if (sessionClock !== undefined) {
    if (typeof sessionClock !== 'object' || sessionClock === null) return false;
    const { timeMs, nextId, sessionsMax, sessionExpiryMs } = sessionClock;
    if (!isCount(timeMs) || !isCount(nextId) || nextId < 1 || !isCount(sessionsMax) || sessionsMax < 1 || !isCount(sessionExpiryMs) || sessionExpiryMs < 1) return false;
  }
  if (stoppedAt !== undefined && (!isCount(stoppedAt) || stoppedAt > slot)) return false;
  for (const c of configs) {
    if (typeof c !== 'object' || c === null || !isCount(c.fromSlot) || !Array.isArray(c.members) || !c.members.every(isId)) return false;
  }
  if (addresses !== undefined) {
    if (!Array.isArray(addresses)) return false;
    for (const a of addresses) {
      if (!Array.isArray(a) || a.length !== 3 || !isId(a[0]) || typeof a[1] !== 'string' || !Number.isInteger(a[2])) return false;
    }
  }
  if (endpoints !== undefined) {
    if (!Array.isArray(endpoints) || endpoints.length > 1024 * ENDPOINTS_PER_REPLICA_MAX) return false;
    for (const e of endpoints) if (!Array.isArray(e) || e.length !== 4 || !isId(e[0]) || !validEndpoint(e[1], e[2], e[3])) return false;
  }
  if (incarnations !== undefined) {
    if (!Array.isArray(incarnations)) return false;
    for (const b of incarnations) if (!Array.isArray(b) || b.length !== 2 || !isId(b[0]) || !isIncarnation(b[1])) return false;
  }
  for (const sess of sessions) {
    if (!Array.isArray(sess) || (sess.length !== 3 && sess.length !== 4) || !isCount(sess[0]) || !isCount(sess[1]) || !Array.isArray(sess[2])) return false;
    if (sess.length === 4 && sess[3] !== null && !isCount(sess[3])) return false;
    for (const r of sess[2]) if (!Array.isArray(r) || r.length !== 2 || !isCount(r[0]) || typeof r[1] !== 'string') return false;
  }
  return true;
}
