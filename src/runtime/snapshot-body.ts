// The replicated state a snapshot carries: the slot it covers, the configurations, the session
// table (part of the replicated state: exactly-once must survive a snapshot) and the
// application's own bytes. Layout: magic "SNB1" | u32 header length | header JSON | app bytes.

import type { ConfigEpoch } from '../core/types.js';
import { SessionTable } from '../core/sessions.js';

const MAGIC = 0x31424e53; // "SNB1" little-endian

interface Header {
  slot: number;
  configs: ConfigEpoch[];
  addresses?: Array<[number, string, number]>;
  sessions: Array<[number, number, Array<[number, string]>]>;
}

export interface SnapshotBody {
  slot: number;
  configs: ConfigEpoch[];
  /** The replicated address book: every member's peer address. */
  addresses: Array<[number, string, number]>;
  sessions: SessionTable<Uint8Array>;
  app: Uint8Array;
}

export function encodeSnapshotBody(body: SnapshotBody): Uint8Array {
  const header: Header = {
    slot: body.slot,
    configs: body.configs,
    addresses: body.addresses,
    sessions: body.sessions.toJSON().map(([id, floor, results]) => [id, floor, results.map(([seq, r]) => [seq, Buffer.from(r).toString('base64')])]),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + json.length + body.app.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  out.set(body.app, 8 + json.length);
  return out;
}

export function decodeSnapshotBody(bytes: Uint8Array): SnapshotBody {
  if (bytes.length < 8) throw new Error('snapshot body truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new Error('snapshot body: bad magic');
  const headerBytes = view.getUint32(4, true);
  if (8 + headerBytes > bytes.length) throw new Error('snapshot body: header runs past the end');
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerBytes)).toString('utf8')) as Header;
  if (!Number.isSafeInteger(header.slot) || !Array.isArray(header.configs) || !Array.isArray(header.sessions)) {
    throw new Error('snapshot body: malformed header');
  }
  const sessions = SessionTable.fromJSON<Uint8Array>(
    header.sessions.map(([id, floor, results]) => [id, floor, results.map(([seq, r]) => [seq, new Uint8Array(Buffer.from(r, 'base64'))])]),
  );
  return { slot: header.slot, configs: header.configs, addresses: header.addresses ?? [], sessions, app: bytes.subarray(8 + headerBytes) };
}
