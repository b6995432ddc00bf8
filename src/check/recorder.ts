// Recorder: what a test client calls around each request to build a history.
//
//   const recorder = new Recorder();                 // clock: performance.now()
//   const handle = recorder.invoke('c1', { f: 'get', key: 'x' });
//   const response = await fetch(...);
//   handle.http(response.status, await response.json());   // or .ok(...) / .fail() / .info()
//   ...
//   writeFileSync('history.json', recorder.toJSON());
//
// The time of invocation is taken before the request is sent and the time of completion after
// the response is read, so each op's recorded interval contains its real effect. An op that is
// never settled (the client crashed, the test stopped) is recorded as `info` with no completion.

import {
  type CasResult,
  type Classified,
  type DeleteResult,
  type GetResult,
  type History,
  HistoryError,
  type HttpBody,
  type KvOp,
  type OpRecord,
  type OpResult,
  type Outcome,
  type ProcessId,
  classifyError,
  classifyHttp,
  historyToJSON,
  validateRecord,
} from './history.js';

export interface RecorderOptions {
  /** The clock, in milliseconds; every client of one history must share it. */
  readonly nowMs?: () => number;
  /** Most ops one recorder holds; a run that exceeds it has a bug (put a limit on everything). */
  readonly opsMax?: number;
}

/**
 * The result an `ok` may carry: a GET's value (string or null), a CAS's `swapped` flag, or the
 * stored shapes themselves ({ value }, { swapped, current? }, { existed? }).
 */
export type OkInput = string | null | boolean | OpResult | undefined;

export interface OpHandle {
  readonly id: number;
  readonly op: KvOp;
  /** Completed. GET: the value read (null = 404). CAS: true if swapped, or { swapped, current }. */
  ok(result?: OkInput): void;
  /** Certainly never applied (503, connection refused). */
  fail(): void;
  /** Indeterminate (504, timeout, dropped connection). */
  info(): void;
  /** Settles from an HTTP status (and body) with classifyHttp. */
  http(status: number, body?: HttpBody): void;
  /** Settles from a transport error with classifyError. */
  error(error: unknown): void;
}

const OPS_MAX_DEFAULT = 10_000_000;

interface Slot {
  process: ProcessId;
  op: KvOp;
  invokeMs: number;
  completeMs: number | null;
  outcome: Outcome | null;
  result: OpResult | undefined;
}

function normalizeOk(op: KvOp, input: OkInput): OpResult | undefined {
  switch (op.f) {
    case 'get':
      if (input === null || typeof input === 'string') return { value: input } satisfies GetResult;
      return input as GetResult | undefined;
    case 'cas':
      if (typeof input === 'boolean') return { swapped: input } satisfies CasResult;
      return input as CasResult | undefined;
    case 'delete':
      if (typeof input === 'boolean') return { existed: input } satisfies DeleteResult;
      return input as DeleteResult | undefined;
    case 'put':
      return undefined;
  }
}

export class Recorder {
  private readonly slots: Slot[] = [];
  private readonly nowMs: () => number;
  private readonly opsMax: number;

  constructor(options: RecorderOptions = {}) {
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.opsMax = options.opsMax ?? OPS_MAX_DEFAULT;
  }

  get size(): number {
    return this.slots.length;
  }

  invoke(process: ProcessId, op: KvOp): OpHandle {
    if (this.slots.length >= this.opsMax) {
      throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', `recorder is full (opsMax ${this.opsMax})`, -1);
    }
    const id = this.slots.length;
    const slot: Slot = { process, op, invokeMs: this.nowMs(), completeMs: null, outcome: null, result: undefined };
    this.slots.push(slot);
    const settle = (classified: Classified): void => {
      if (slot.outcome !== null) {
        throw new HistoryError('SYNOD_HISTORY_ALREADY_SETTLED', `already settled as ${slot.outcome}`, id);
      }
      const settled: Slot = {
        ...slot,
        completeMs: this.nowMs(),
        outcome: classified.outcome,
        result: classified.outcome === 'ok' ? classified.result : undefined,
      };
      // Check the record now, where the caller's stack points at the mistake, not at check
      // time; a rejected settlement leaves the op pending (it will read as info).
      validateRecord(this.record(id, settled));
      Object.assign(slot, settled);
    };
    return {
      id,
      op,
      ok: (result) => settle({ outcome: 'ok', result: normalizeOk(op, result) }),
      fail: () => settle({ outcome: 'fail' }),
      info: () => settle({ outcome: 'info' }),
      http: (status, body) => settle(classifyHttp(op, status, body)),
      error: (error) => settle(classifyError(error)),
    };
  }

  /** A snapshot of the history; ops not settled yet appear as `info` with no completion. */
  history(): OpRecord[] {
    return this.slots.map((slot, id) => this.record(id, slot));
  }

  toJSON(): string {
    return historyToJSON(this.history());
  }

  /** Ids of the ops not settled yet. */
  pending(): number[] {
    const ids: number[] = [];
    this.slots.forEach((slot, id) => {
      if (slot.outcome === null) ids.push(id);
    });
    return ids;
  }

  private record(id: number, slot: Slot): OpRecord {
    const outcome = slot.outcome ?? 'info';
    const base = { id, process: slot.process, op: slot.op, invokeMs: slot.invokeMs };
    if (slot.outcome === null) return { ...base, completeMs: null, outcome };
    if (slot.result === undefined) return { ...base, completeMs: slot.completeMs, outcome };
    return { ...base, completeMs: slot.completeMs, outcome, result: slot.result };
  }
}

export type { History };
