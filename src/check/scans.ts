// Scans in a linearizability check. A scan (keys with a prefix, in byte order, after a key, at most
// a limit; `more` when others follow) reads many keys at once. The per-key checker cannot hold a
// multi-key read, so each completed scan is projected into one read per key it covered, each
// placed anywhere in the scan's interval:
//   - a key it returned: a read of that value;
//   - a key of the history it skipped while covering it (with the prefix, after `after`, and
//     below the last key returned, or anywhere when `more` is false): a read of absence.
// Keys past the last one returned when `more` is true were not covered: no read. This is weaker
// than the scan's own promise (one point in time for every key), so it never reports a violation
// that is not one; it catches a scan that returns a stale or phantom value, or misses a key that
// was certainly present. A scan whose answer breaks its own shape (keys unsorted, repeated, outside
// the prefix or not after `after`, more than `limit`) is reported as such.
import type { OpRecord, ProcessId } from './history.js';

/** A scan that completed (ok): what it asked and what it heard. Failed or unknown scans read nothing. */
export interface ScanObservation {
  readonly process: ProcessId;
  readonly prefix: string;
  readonly after: string | null;
  readonly limit: number;
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly entries: ReadonlyArray<readonly [string, string]>;
  readonly more: boolean;
}

export interface ScanReads {
  /** One ok `get` record per key a scan covered, with ids from `firstId` on. */
  readonly reads: OpRecord[];
  /** For each read's id, the scan it came from (its index in the input), to explain a failure. */
  readonly scanOf: ReadonlyMap<number, number>;
  /** Scans whose answer breaks its own shape. */
  readonly malformed: string[];
}

const utf8 = new TextEncoder();

function compareBytes(x: Uint8Array, y: Uint8Array): number {
  for (let i = 0; i < x.length && i < y.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** Byte order of the keys as UTF-8 (what the store sorts by; for ASCII it is string order). */
function compareKeys(a: string, b: string): number {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

/** The reads `scans` made, over the keys of the history (`keys`: every key any op touched). */
export function readsOfScans(scans: readonly ScanObservation[], keys: Iterable<string>, firstId: number): ScanReads {
  const known = new Set(keys);
  // In byte order, the keys with a prefix are one run: each scan looks only at its prefix's run.
  const universe = [...known].map((key) => ({ key, bytes: utf8.encode(key) })).sort((x, y) => compareBytes(x.bytes, y.bytes));
  const firstAtOrAfter = (bytes: Uint8Array): number => {
    let lo = 0;
    let hi = universe.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(universe[mid]!.bytes, bytes) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const reads: OpRecord[] = [];
  const scanOf = new Map<number, number>();
  const malformed: string[] = [];
  let id = firstId;
  scans.forEach((scan, index) => {
    const what = `scan ${index} (prefix ${JSON.stringify(scan.prefix)}${scan.after === null ? '' : `, after ${JSON.stringify(scan.after)}`}, by ${scan.process})`;
    const returned = new Map<string, string>();
    let previous: string | null = null;
    for (const [key, value] of scan.entries) {
      if (!key.startsWith(scan.prefix)) malformed.push(`${what} returned ${JSON.stringify(key)}, outside its prefix`);
      if (scan.after !== null && compareKeys(key, scan.after) <= 0) malformed.push(`${what} returned ${JSON.stringify(key)}, not after ${JSON.stringify(scan.after)}`);
      if (previous !== null && compareKeys(key, previous) <= 0) malformed.push(`${what} returned ${JSON.stringify(key)} after ${JSON.stringify(previous)}: not in ascending order`);
      previous = key;
      returned.set(key, value);
    }
    if (scan.entries.length > scan.limit) malformed.push(`${what} returned ${scan.entries.length} entries, over its limit of ${scan.limit}`);
    const last = previous;
    // Of the keys under its prefix (the run below), those it covered.
    const covered = (key: string): boolean => {
      if (scan.after !== null && compareKeys(key, scan.after) <= 0) return false;
      return !scan.more || (last !== null && compareKeys(key, last) <= 0);
    };
    const read = (key: string, value: string | null) => {
      reads.push({ id, process: scan.process, op: { f: 'get', key }, invokeMs: scan.invokeMs, completeMs: scan.completeMs, outcome: 'ok', result: { value } });
      scanOf.set(id++, index);
    };
    for (let i = firstAtOrAfter(utf8.encode(scan.prefix)); i < universe.length && universe[i]!.key.startsWith(scan.prefix); i++) {
      const { key } = universe[i]!;
      if (covered(key)) read(key, returned.get(key) ?? null);
    }
    // A key no op of the history touched: the checker sees a read of a value never written.
    for (const [key, value] of returned) if (!known.has(key)) read(key, value);
  });
  return { reads, scanOf, malformed };
}
