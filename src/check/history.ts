// The history model for the key-value linearizability checker.
//
// A history is the list of operations that clients invoked against the replicated KV store, as
// the clients saw them: what they asked, when they asked (invokeMs), when they heard back
// (completeMs) and what they heard (outcome + result). Keys are independent registers whose
// values are strings; `null` means "absent".
//
// Outcomes (SAFETY.md, "Checkers"):
//   ok    the operation completed and took effect exactly once, between invokeMs and
//         completeMs. A GET answered 404 is an ok read of absence; a CAS answered 409 is an ok
//         CAS that did not swap because it observed another value.
//   fail  certainly never applied (503, connection refused). The checker drops it.
//   info  indeterminate (504, timeout, dropped connection): it may have taken effect once, at
//         any time after invokeMs (even after completeMs: a proposal can commit late), or
//         never. The checker may place it anywhere after its invocation, or leave it out.
//
// This module holds the types, their validation, the HTTP/error outcome mapping and the JSON
// file format. It has no Node imports so a browser or a worker could use it too.

export type ProcessId = number | string;

export type KvOp =
  | { readonly f: 'put'; readonly key: string; readonly value: string }
  | { readonly f: 'get'; readonly key: string }
  | { readonly f: 'delete'; readonly key: string }
  /** Swap to `value` iff the current value equals `expected` (`null`: iff the key is absent). */
  | { readonly f: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

export type Outcome = 'ok' | 'fail' | 'info';

/** What an `ok` GET read: the value, or null for absent (HTTP 404). */
export interface GetResult {
  readonly value: string | null;
}

/**
 * What an `ok` CAS observed. `swapped: false` is HTTP 409; when the 409 names the value it found,
 * `current` carries it (null = absent) and the checker requires the model to hold exactly that.
 */
export interface CasResult {
  readonly swapped: boolean;
  readonly current?: string | null;
}

/** What an `ok` DELETE observed, when the server says whether the key existed (else omit it). */
export interface DeleteResult {
  readonly existed?: boolean;
}

export type OpResult = GetResult | CasResult | DeleteResult;

export interface OpRecord {
  /** Unique in the history; the recorder assigns 0, 1, 2, ... in invocation order. */
  readonly id: number;
  readonly process: ProcessId;
  readonly op: KvOp;
  /** Any clock, as long as all clients of one history share it (monotonic milliseconds). */
  readonly invokeMs: number;
  /** When the client heard the outcome; null if it never did (then the outcome is `info`). */
  readonly completeMs: number | null;
  readonly outcome: Outcome;
  /** Present for `ok` GET (required) and `ok` CAS (required); optional for `ok` DELETE. */
  readonly result?: OpResult;
}

export type History = readonly OpRecord[];

export type HistoryErrorCode =
  /** A record is malformed: wrong field type, unknown op or outcome, bad result shape. */
  | 'SYNOD_HISTORY_BAD_RECORD'
  /** A record's times are not finite numbers, or it completes before it was invoked. */
  | 'SYNOD_HISTORY_BAD_TIME'
  /** Two records share an id. */
  | 'SYNOD_HISTORY_DUPLICATE_ID'
  /** A recorder handle was settled twice. */
  | 'SYNOD_HISTORY_ALREADY_SETTLED'
  /** A JSON history file has the wrong format tag or an unknown version. */
  | 'SYNOD_HISTORY_BAD_FORMAT';

export class HistoryError extends Error {
  constructor(
    readonly code: HistoryErrorCode,
    message: string,
    /** The id of the offending record, or -1 when the problem is not one record's. */
    readonly opId: number,
  ) {
    super(opId >= 0 ? `${message} (op ${opId})` : message);
    this.name = 'HistoryError';
  }
}

// ---------------------------------------------------------------- validation

function bad(opId: number, message: string): never {
  throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', message, opId);
}

function isNullableString(x: unknown): x is string | null {
  return x === null || typeof x === 'string';
}

function validateOp(id: number, op: unknown): void {
  if (typeof op !== 'object' || op === null) bad(id, 'op is not an object');
  const o = op as Record<string, unknown>;
  if (typeof o.key !== 'string') bad(id, 'op.key is not a string');
  switch (o.f) {
    case 'put':
      if (typeof o.value !== 'string') bad(id, 'put value is not a string');
      return;
    case 'get':
    case 'delete':
      return;
    case 'cas':
      if (!isNullableString(o.expected)) bad(id, 'cas expected is not a string or null');
      if (typeof o.value !== 'string') bad(id, 'cas value is not a string');
      return;
    default:
      bad(id, `unknown op ${JSON.stringify(o.f)}`);
  }
}

function validateResult(record: OpRecord): void {
  const id = record.id;
  const result = record.result as Record<string, unknown> | undefined;
  if (record.outcome !== 'ok') {
    // A failed or indeterminate op has no result: nothing it says can be trusted.
    if (result !== undefined) bad(id, `a ${record.outcome} op carries a result`);
    return;
  }
  if (result !== undefined && (typeof result !== 'object' || result === null)) bad(id, 'result is not an object');
  switch (record.op.f) {
    case 'get':
      if (result === undefined || !('value' in result)) bad(id, 'ok get has no result.value');
      if (!isNullableString(result.value)) bad(id, 'get result.value is not a string or null');
      return;
    case 'cas':
      if (result === undefined || typeof result.swapped !== 'boolean') bad(id, 'ok cas has no boolean result.swapped');
      if ('current' in result && result.current !== undefined) {
        if (!isNullableString(result.current)) bad(id, 'cas result.current is not a string or null');
        if (result.swapped) bad(id, 'a swapped cas carries result.current');
      }
      return;
    case 'delete':
      if (result !== undefined && result.existed !== undefined && typeof result.existed !== 'boolean') {
        bad(id, 'delete result.existed is not a boolean');
      }
      return;
    case 'put':
      return;
  }
}

/** Checks one record's shape and times; throws HistoryError. */
export function validateRecord(record: OpRecord): void {
  if (typeof record !== 'object' || record === null) bad(-1, 'record is not an object');
  const id = record.id;
  if (!Number.isSafeInteger(id) || id < 0) bad(-1, `record id ${String(id)} is not a non-negative integer`);
  if (typeof record.process !== 'number' && typeof record.process !== 'string') bad(id, 'process is not a number or string');
  validateOp(id, record.op);
  if (record.outcome !== 'ok' && record.outcome !== 'fail' && record.outcome !== 'info') {
    bad(id, `unknown outcome ${JSON.stringify(record.outcome)}`);
  }
  if (!Number.isFinite(record.invokeMs)) {
    throw new HistoryError('SYNOD_HISTORY_BAD_TIME', 'invokeMs is not a finite number', id);
  }
  if (record.completeMs === null) {
    // Only an indeterminate op can lack a completion; an ok or fail op was heard back from.
    if (record.outcome !== 'info') {
      throw new HistoryError('SYNOD_HISTORY_BAD_TIME', `a ${record.outcome} op has no completeMs`, id);
    }
  } else {
    if (!Number.isFinite(record.completeMs)) {
      throw new HistoryError('SYNOD_HISTORY_BAD_TIME', 'completeMs is not a finite number', id);
    }
    if (record.completeMs < record.invokeMs) {
      throw new HistoryError('SYNOD_HISTORY_BAD_TIME', 'completeMs is before invokeMs', id);
    }
  }
  validateResult(record);
}

/** Checks every record and that ids are unique; throws HistoryError. */
export function validateHistory(history: History): void {
  if (!Array.isArray(history)) bad(-1, 'history is not an array');
  const ids = new Set<number>();
  for (const record of history) {
    validateRecord(record);
    if (ids.has(record.id)) throw new HistoryError('SYNOD_HISTORY_DUPLICATE_ID', 'duplicate op id', record.id);
    ids.add(record.id);
  }
}

// ---------------------------------------------------------------- outcome mapping

/** What a response means for the history: the outcome, and the result when it is `ok`. */
export interface Classified {
  readonly outcome: Outcome;
  readonly result?: OpResult;
}

/** The body fields the mapping reads, when the server sends them. */
export interface HttpBody {
  /** GET 200: the value read. CAS 409: the value found instead of `expected` (optional). */
  readonly value?: string | null;
  /** CAS 409: the value found (preferred spelling; `value` is accepted too). */
  readonly current?: string | null;
  /** DELETE 2xx: whether the key existed (src/kv/http.ts answers `{ ok, existed }`). */
  readonly existed?: boolean;
}

/**
 * Maps an HTTP status to an outcome (docs/checker.md, "Outcomes"):
 *   2xx          ok (GET reads body.value; CAS swapped; DELETE reports body.existed if sent)
 *   404          GET: ok, read of absence. Others: info (src/kv/http.ts never answers a DELETE
 *                with 404; a 404 there means something else, so it proves nothing).
 *   409          CAS: ok, did not swap; body.current (or body.value) is the value it saw, if sent.
 *   503          fail: never proposed.
 *   anything else (504, 500, 502, 4xx we do not expect): info. Only 503 and a refused connection
 *                are certain failures; calling an unknown status "info" can hide nothing that
 *                happened, calling it "fail" could.
 */
export function classifyHttp(op: KvOp, status: number, body: HttpBody = {}): Classified {
  if (status >= 200 && status < 300) {
    switch (op.f) {
      case 'get': {
        const value = body.value;
        if (!isNullableString(value)) {
          throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', 'GET 2xx without a string body.value', -1);
        }
        return { outcome: 'ok', result: { value } };
      }
      case 'cas':
        return { outcome: 'ok', result: { swapped: true } };
      case 'delete':
        if (body.existed !== undefined && typeof body.existed !== 'boolean') {
          throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', 'DELETE 2xx with a non-boolean body.existed', -1);
        }
        return body.existed === undefined ? { outcome: 'ok' } : { outcome: 'ok', result: { existed: body.existed } };
      case 'put':
        return { outcome: 'ok' };
    }
  }
  if (status === 404 && op.f === 'get') return { outcome: 'ok', result: { value: null } };
  if (status === 409 && op.f === 'cas') {
    const current = body.current !== undefined ? body.current : body.value;
    if (current !== undefined && !isNullableString(current)) {
      throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', 'CAS 409 with a non-string current value', -1);
    }
    return { outcome: 'ok', result: current === undefined ? { swapped: false } : { swapped: false, current } };
  }
  if (status === 503) return { outcome: 'fail' };
  return { outcome: 'info' };
}

/**
 * Maps a transport error to an outcome: a refused connection never reached the server (fail);
 * anything else (timeout, reset, socket hang up) may have reached it (info).
 */
export function classifyError(error: unknown): Classified {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'ECONNREFUSED') return { outcome: 'fail' };
  return { outcome: 'info' };
}

// ---------------------------------------------------------------- JSON files

export const HISTORY_FORMAT = 'synod-kv-history';
export const HISTORY_FORMAT_VERSION = 1;

interface HistoryFile {
  format: string;
  version: number;
  ops: OpRecord[];
}

/** One JSON document: `{ format, version, ops }`, one op per line so diffs and greps stay usable. */
export function historyToJSON(history: History): string {
  validateHistory(history);
  const lines = history.map((record) => JSON.stringify(record));
  return `{"format":"${HISTORY_FORMAT}","version":${HISTORY_FORMAT_VERSION},"ops":[\n${lines.join(',\n')}\n]}\n`;
}

/** Parses and validates a history written by historyToJSON. Throws HistoryError (or SyntaxError). */
export function historyFromJSON(text: string): OpRecord[] {
  const parsed = JSON.parse(text) as Partial<HistoryFile> | null;
  if (typeof parsed !== 'object' || parsed === null || parsed.format !== HISTORY_FORMAT) {
    throw new HistoryError('SYNOD_HISTORY_BAD_FORMAT', `not a ${HISTORY_FORMAT} document`, -1);
  }
  if (parsed.version !== HISTORY_FORMAT_VERSION) {
    throw new HistoryError('SYNOD_HISTORY_BAD_FORMAT', `unknown history version ${String(parsed.version)}`, -1);
  }
  if (!Array.isArray(parsed.ops)) throw new HistoryError('SYNOD_HISTORY_BAD_FORMAT', 'ops is not an array', -1);
  validateHistory(parsed.ops);
  return parsed.ops;
}

// ---------------------------------------------------------------- display

function quote(value: string | null): string {
  return value === null ? 'absent' : JSON.stringify(value);
}

/** `put("k", "v")`, `cas("k", absent -> "v")`: for explanations and test messages. */
export function formatOp(op: KvOp): string {
  switch (op.f) {
    case 'put':
      return `put(${JSON.stringify(op.key)}, ${quote(op.value)})`;
    case 'get':
      return `get(${JSON.stringify(op.key)})`;
    case 'delete':
      return `delete(${JSON.stringify(op.key)})`;
    case 'cas':
      return `cas(${JSON.stringify(op.key)}, ${quote(op.expected)} -> ${quote(op.value)})`;
  }
}

/** One line: `#12 p3 get("k") ok -> "v" [100..120]`. */
export function formatRecord(record: OpRecord): string {
  let what = record.outcome as string;
  if (record.outcome === 'ok' && record.result !== undefined) {
    const r = record.result as Partial<GetResult & CasResult & DeleteResult>;
    if (record.op.f === 'get') what += ` -> ${quote(r.value ?? null)}`;
    else if (record.op.f === 'cas') {
      what += r.swapped ? ' swapped' : ` not swapped${r.current !== undefined ? ` (saw ${quote(r.current)})` : ''}`;
    } else if (record.op.f === 'delete' && r.existed !== undefined) what += r.existed ? ' (existed)' : ' (was absent)';
  }
  const complete = record.completeMs === null ? '?' : String(record.completeMs);
  return `#${record.id} p${String(record.process)} ${formatOp(record.op)} ${what} [${record.invokeMs}..${complete}]`;
}

export function formatValue(value: string | null): string {
  return quote(value);
}
