// Test helpers for the transport tests: bounded waiting, a collecting logger, handle counting.
import type { LogLevel, TransportLogger } from '../../src/transport/index.js';

/** Polls `condition` every few ms until true; fails after `timeoutMs` (bounded: never hangs). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface LogRecord {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps records (tests assert on reasons) and prints nothing. */
export function collectingLogger(): { logger: TransportLogger; records: LogRecord[]; codes: () => string[] } {
  const records: LogRecord[] = [];
  return {
    logger: (level, msg, fields) => {
      if (records.length < 10_000) records.push({ level, msg, fields: fields ?? {} });
    },
    records,
    codes: () => records.map((r) => r.fields['code']).filter((c): c is string => typeof c === 'string'),
  };
}

/** Handles that a transport could leave behind, by type. */
export function liveHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) {
    if (type === 'TCPSocketWrap' || type === 'TCPServerWrap' || type === 'Timeout' || type === 'Immediate') {
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
  }
  return counts;
}

/** A small seeded PRNG (mulberry32) for jitter and test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A frame that says who sent it and its sequence number, padded to `bytes` (>= 8) with a pattern. */
export function numberedFrame(sender: number, seq: number, bytes = 8): Uint8Array {
  const frame = new Uint8Array(Math.max(8, bytes));
  const view = new DataView(frame.buffer);
  view.setUint32(0, sender);
  view.setUint32(4, seq);
  for (let i = 8; i < frame.length; i++) frame[i] = (seq + i) & 0xff;
  return frame;
}

export function readNumbered(frame: Uint8Array): { sender: number; seq: number; intact: boolean } {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const seq = view.getUint32(4);
  let intact = true;
  for (let i = 8; i < frame.length; i++) {
    if (frame[i] !== ((seq + i) & 0xff)) {
      intact = false;
      break;
    }
  }
  return { sender: view.getUint32(0), seq, intact };
}
