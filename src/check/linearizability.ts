// Linearizability checker for key-value histories.
//
// Design note
// -----------
// Keys are independent registers, and linearizability is compositional (Herlihy & Wing's
// locality, "P-compositionality" in Porcupine): a history is linearizable iff each key's
// sub-history is. So each key is checked on its own, with a small integer state (0 = absent,
// k = the k-th distinct value seen for that key).
//
// Per key, the search is Wing & Gong's, with Lowe's memoization, as in Knossos's and
// Porcupine's `linear` checkers:
//
//   * Completed (ok) ops become a call event and a return event, in one doubly linked list
//     sorted by time (ties: calls first, so touching intervals count as concurrent — the
//     permissive reading of a coarse clock). A call that comes before the first return in the
//     list is "minimal": it may be linearized next. Linearizing it lifts its call and return
//     out of the list (dancing links); backtracking puts them back.
//   * Indeterminate (info) ops have no return event: they may take effect at any time after
//     their invocation, or never. They sit in a second list ordered by invocation; one is a
//     candidate when it was invoked no later than the first pending return. The search tries
//     them after the ok candidates, and succeeds as soon as every ok op is placed: the info ops
//     left over are the ones that never took effect. An info op whose effect would leave the
//     state unchanged (a CAS that would not swap, a repeated put) is never placed: leaving it
//     pending dominates placing it. Info GETs constrain nothing and are dropped up front, as
//     are `fail` ops.
//   * Memoization: a cache of configurations (set of placed ops, state, restriction — below).
//     Reaching one already explored means its whole subtree failed before (or is being
//     explored above us), so it is pruned. Beyond Lowe's equality test, a configuration is
//     also pruned when a cached one *dominates* it: same ok ops, same state, a subset of its
//     info ops, and a restriction no tighter. Having more info ops still available can only
//     help: any continuation of the new one works from the cached one.
//   * Info ops are placed lazily. Placing info op i (state p -> s) and then op X is useless
//     when X could have run at p to the same end: if X at p gives what X gives at s, drop i;
//     if X is an ok op and X then i from p gives the same state, i could come after X. So
//     after an info op the next op must *observe* it (a read of its value, a CAS that swaps
//     from it, ...); a blind write right after it is never tried. The configuration carries
//     this restriction (i's class, p), and it is part of the dominance test. And info ops with
//     identical effects (same op, same values) are interchangeable once both are invoked, so
//     only the earliest-invoked unplaced one of each class is ever placed.
//     Without these, k pending info writes can be placed in 2^k combinations before anything
//     prunes them, and a violation after a few dozen timeouts would never be reported.
//   * Why pruning loses nothing. (1) Every successful linearization can be rewritten into one
//     that obeys the rules: drop an info op followed by an op it does not influence, move it
//     after an ok op that commutes with it (each rewrite drops an info op or moves one to the
//     right, so rewriting ends), and use the earliest identical info op. (2) Among cached
//     configurations from which the rules allow success, take one with the shortest way to
//     success: its first move leads to a configuration that was either cached (shorter: a
//     contradiction) or pruned by a cached one that dominates it (no longer: a contradiction).
//     So if the search fails, no cached configuration, nor the empty one, can succeed.
//   * Representation: the set is a bitset over ok ops (numbered by invocation) plus one over
//     info ops; a cache entry stores the ok part compactly as (L, H, the words covering
//     [L, H)): every ok op below L is placed and none at or above H is, so the words in
//     between say the rest. The ok set's hash is an XOR of per-op random words, updated in
//     O(1) per step; info ops stay out of the hash since the cache compares them by inclusion.
//   * Budget: steps (candidate evaluations), wall time and cache bytes per key. Running out
//     yields `unknown`, which is a failure, never a pass (SAFETY.md, "Checkers").
//   * Counterexample: whenever the search exhausts a level, if it holds more placed ops than
//     ever before (not counting info ops placed last, which led nowhere), it remembers that
//     linearization (the longest prefix found) and the op whose return event stopped it (the
//     op that could not be placed).

import {
  type CasResult,
  type DeleteResult,
  type GetResult,
  type History,
  HistoryError,
  type OpRecord,
  validateHistory,
} from './history.js';

export type Verdict = 'linearizable' | 'not-linearizable' | 'unknown';

/** Which budget ran out when the verdict is `unknown`. */
export type UnknownReason = 'steps' | 'time' | 'memory';

export interface CheckOptions {
  /** Wall-clock budget for one key's search, in ms. Default 10 000. */
  readonly budgetMsPerKey?: number;
  /** Candidate evaluations allowed for one key. Default 200 000 000. */
  readonly budgetStepsPerKey?: number;
  /** Bytes the memo cache of one key may use. Default 512 MiB. */
  readonly cacheBytesMaxPerKey?: number;
  /** Values present before the history starts; keys not listed start absent. */
  readonly initial?: Readonly<Record<string, string>>;
  /** Clock used for the time budget and the reported durations. Default performance.now. */
  readonly nowMs?: () => number;
}

export interface LinearizedStep {
  readonly op: OpRecord;
  /** The register's value after this op, in the linearization found. */
  readonly stateAfter: string | null;
}

export interface Counterexample {
  readonly key: string;
  /** The longest linearizable prefix the search found, in linearization order. */
  readonly prefix: readonly LinearizedStep[];
  /** The register's value at the end of that prefix. */
  readonly stateAfterPrefix: string | null;
  /** The op that could not be placed after the prefix (its response came first). */
  readonly blocked: OpRecord;
  /** Ops not in the prefix that were invoked before `blocked` completed: the candidates. */
  readonly pending: readonly OpRecord[];
  /** The ops to look at: the prefix's last few, the pending ones and `blocked`, by invocation. */
  readonly ops: readonly OpRecord[];
}

export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  /** Records of this key in the history. */
  readonly records: number;
  /** Completed ops the search had to place. */
  readonly okOps: number;
  /** Indeterminate ops the search could place or leave out. */
  readonly infoOps: number;
  /** Ops dropped before the search: `fail` ops and indeterminate GETs. */
  readonly droppedOps: number;
  /** Configurations (placed set, state) cached, i.e. explored. */
  readonly exploredStates: number;
  readonly steps: number;
  readonly ms: number;
  readonly unknownReason?: UnknownReason;
  readonly counterexample?: Counterexample;
}

export interface CheckResult {
  /** True only for `linearizable`: `unknown` is a failure. */
  readonly ok: boolean;
  readonly verdict: Verdict;
  readonly perKey: readonly KeyResult[];
  /** The first non-linearizable key's counterexample. */
  readonly counterexample?: Counterexample;
  readonly stats: {
    readonly ops: number;
    readonly keys: number;
    readonly exploredStates: number;
    readonly steps: number;
    readonly ms: number;
  };
}

const BUDGET_MS_PER_KEY_DEFAULT = 10_000;
const BUDGET_STEPS_PER_KEY_DEFAULT = 200_000_000;
const CACHE_BYTES_MAX_PER_KEY_DEFAULT = 512 * 1024 * 1024;
/** Loop iterations between two clock reads (a clock read costs far more than a step). */
const CLOCK_CHECK_INTERVAL = 1024;
/** Prefix ops shown in a counterexample's `ops`. */
const COUNTEREXAMPLE_PREFIX_TAIL = 8;

/**
 * Checks a history. Throws HistoryError on a malformed history; never throws for a history that
 * is merely not linearizable.
 */
export function checkHistory(history: History, options: CheckOptions = {}): CheckResult {
  const nowMs = options.nowMs ?? (() => performance.now());
  const started = nowMs();
  validateHistory(history);
  const byKey = new Map<string, OpRecord[]>();
  for (const record of history) {
    let list = byKey.get(record.op.key);
    if (list === undefined) byKey.set(record.op.key, (list = []));
    list.push(record);
  }
  const budget: KeyBudget = {
    ms: options.budgetMsPerKey ?? BUDGET_MS_PER_KEY_DEFAULT,
    steps: options.budgetStepsPerKey ?? BUDGET_STEPS_PER_KEY_DEFAULT,
    cacheBytes: options.cacheBytesMaxPerKey ?? CACHE_BYTES_MAX_PER_KEY_DEFAULT,
    nowMs,
  };
  const perKey: KeyResult[] = [];
  for (const [key, records] of byKey) {
    const initial = options.initial !== undefined && Object.hasOwn(options.initial, key) ? options.initial[key]! : null;
    perKey.push(searchKey(key, records, initial, budget));
  }
  const failed = perKey.find((r) => r.verdict === 'not-linearizable');
  const unknown = perKey.some((r) => r.verdict === 'unknown');
  // A definite violation outranks an unknown key: it is the stronger, actionable statement.
  const verdict: Verdict = failed !== undefined ? 'not-linearizable' : unknown ? 'unknown' : 'linearizable';
  const result: CheckResult = {
    ok: verdict === 'linearizable',
    verdict,
    perKey,
    stats: {
      ops: history.length,
      keys: perKey.length,
      exploredStates: perKey.reduce((sum, r) => sum + r.exploredStates, 0),
      steps: perKey.reduce((sum, r) => sum + r.steps, 0),
      ms: nowMs() - started,
    },
  };
  return failed?.counterexample !== undefined ? { ...result, counterexample: failed.counterexample } : result;
}

// ---------------------------------------------------------------- one key

/** The limits of one key's search (checkHistory builds it from CheckOptions). */
export interface KeyBudget {
  readonly ms: number;
  readonly steps: number;
  readonly cacheBytes: number;
  readonly nowMs: () => number;
}

// Op kinds after outcome mapping. a/b are interned value ids (0 = absent).
const K_PUT = 0; //             state := a
const K_DELETE = 1; //          state := absent
const K_DELETE_EXISTED = 2; //  requires present; state := absent
const K_DELETE_ABSENT = 3; //   requires absent
const K_GET = 4; //             requires state == a
const K_CAS_SWAP = 5; //        requires state == a; state := b
const K_CAS_NOSWAP = 6; //      requires state != a
const K_CAS_SAW = 7; //         requires state != a and state == b
const K_CAS_MAYBE = 8; //       info: state == a ? b : unchanged

/** The next state, or -1 if the op cannot take effect in `state` with the outcome recorded. */
function step(kind: number, a: number, b: number, state: number): number {
  switch (kind) {
    case K_PUT:
      return a;
    case K_DELETE:
      return 0;
    case K_DELETE_EXISTED:
      return state !== 0 ? 0 : -1;
    case K_DELETE_ABSENT:
      return state === 0 ? 0 : -1;
    case K_GET:
      return state === a ? state : -1;
    case K_CAS_SWAP:
      return state === a ? b : -1;
    case K_CAS_NOSWAP:
      return state !== a ? state : -1;
    case K_CAS_SAW:
      return state !== a && state === b ? state : -1;
    case K_CAS_MAYBE:
      return state === a ? b : state;
    default:
      throw new Error(`unknown op kind ${kind}`);
  }
}

class ValueTable {
  private readonly ids = new Map<string, number>();
  readonly values: (string | null)[] = [null];

  intern(value: string | null): number {
    if (value === null) return 0;
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
}

/** Encodes one record as (kind, a, b), or returns false if the search can ignore it. */
function encode(record: OpRecord, values: ValueTable, out: Int32Array, at: number): boolean {
  const op = record.op;
  const info = record.outcome === 'info';
  if (record.outcome === 'fail') return false;
  let kind: number;
  let a = 0;
  let b = 0;
  switch (op.f) {
    case 'put':
      kind = K_PUT;
      a = values.intern(op.value);
      break;
    case 'get':
      if (info) return false; // a read that may or may not have happened changes nothing
      kind = K_GET;
      a = values.intern((record.result as GetResult).value);
      break;
    case 'delete': {
      const existed = info ? undefined : (record.result as DeleteResult | undefined)?.existed;
      kind = existed === undefined ? K_DELETE : existed ? K_DELETE_EXISTED : K_DELETE_ABSENT;
      break;
    }
    case 'cas': {
      a = values.intern(op.expected);
      if (info) {
        kind = K_CAS_MAYBE;
        b = values.intern(op.value);
        break;
      }
      const result = record.result as CasResult;
      if (result.swapped) {
        kind = K_CAS_SWAP;
        b = values.intern(op.value);
      } else if (result.current !== undefined) {
        kind = K_CAS_SAW;
        b = values.intern(result.current);
      } else {
        kind = K_CAS_NOSWAP;
      }
      break;
    }
  }
  out[at * 3] = kind;
  out[at * 3 + 1] = a;
  out[at * 3 + 2] = b;
  return true;
}

function byInvoke(x: OpRecord, y: OpRecord): number {
  return x.invokeMs - y.invokeMs || x.id - y.id;
}

/** Index of the lowest zero bit at or above `from` (or `limit` if none below it). */
function lowestClear(bits: Uint32Array, from: number, limit: number): number {
  let w = from >>> 5;
  if (w >= bits.length) return limit;
  let word = ~bits[w]! & (0xffffffff << (from & 31));
  while (word === 0) {
    w++;
    if (w >= bits.length) return limit;
    word = ~bits[w]!;
  }
  const index = (w << 5) + (31 - Math.clz32(word & -word));
  return index < limit ? index : limit;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The memo: a set of (placed ops, state), chained hash table over typed arrays. The ok-op part
 * of a set is stored as (L, H, words (L>>5) .. ((H-1)>>5)); the info part as all its words.
 */
class StateCache {
  count = 0;
  private buckets: Int32Array;
  private entryNext: Int32Array;
  private entryHash: Uint32Array;
  private entryState: Int32Array;
  private entryRestrictClass: Int32Array;
  private entryRestrictState: Int32Array;
  private entryLow: Int32Array;
  private entryHigh: Int32Array;
  private entryOffset: Int32Array;
  private pool: Uint32Array;
  private poolUsed = 0;

  constructor(private readonly infoWords: number) {
    const capacity = 1024;
    this.buckets = new Int32Array(capacity).fill(-1);
    this.entryNext = new Int32Array(capacity);
    this.entryHash = new Uint32Array(capacity);
    this.entryState = new Int32Array(capacity);
    this.entryRestrictClass = new Int32Array(capacity);
    this.entryRestrictState = new Int32Array(capacity);
    this.entryLow = new Int32Array(capacity);
    this.entryHigh = new Int32Array(capacity);
    this.entryOffset = new Int32Array(capacity);
    this.pool = new Uint32Array(capacity * (2 + infoWords));
  }

  bytes(): number {
    return this.buckets.byteLength + this.entryNext.byteLength * 8 + this.pool.byteLength;
  }

  /**
   * Adds the configuration, unless one that dominates it is there already (explored, or being
   * explored above us): same ok ops and state, a subset of its info ops, and no restriction or
   * the same one. Then returns false. `restrictClass` is -1 for an unrestricted configuration.
   */
  add(
    hash: number,
    state: number,
    restrictClass: number,
    restrictState: number,
    low: number,
    high: number,
    okBits: Uint32Array,
    infoBits: Uint32Array,
  ): boolean {
    const h = fmix32((hash ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0);
    const w0 = low >>> 5;
    const windowWords = high > low ? ((high - 1) >>> 5) - w0 + 1 : 0;
    for (let e = this.buckets[h & (this.buckets.length - 1)]!; e >= 0; e = this.entryNext[e]!) {
      if (this.entryHash[e] !== h || this.entryState[e] !== state) continue;
      if (this.entryLow[e] !== low || this.entryHigh[e] !== high) continue;
      const rc = this.entryRestrictClass[e]!;
      if (rc !== -1 && (rc !== restrictClass || this.entryRestrictState[e] !== restrictState)) continue;
      if (this.dominates(this.entryOffset[e]!, okBits, w0, windowWords, infoBits)) return false;
    }
    this.insert(h, state, restrictClass, restrictState, low, high, okBits, w0, windowWords, infoBits);
    return true;
  }

  /** Same ok ops, and the stored info ops are a subset of `infoBits`. */
  private dominates(offset: number, okBits: Uint32Array, w0: number, windowWords: number, infoBits: Uint32Array): boolean {
    const pool = this.pool;
    for (let i = 0; i < windowWords; i++) if (pool[offset + i] !== okBits[w0 + i]) return false;
    const base = offset + windowWords;
    for (let i = 0; i < this.infoWords; i++) if ((pool[base + i]! & ~infoBits[i]!) !== 0) return false;
    return true;
  }

  private insert(
    h: number,
    state: number,
    restrictClass: number,
    restrictState: number,
    low: number,
    high: number,
    okBits: Uint32Array,
    w0: number,
    windowWords: number,
    infoBits: Uint32Array,
  ): void {
    if (this.count === this.entryNext.length) this.growEntries();
    const need = windowWords + this.infoWords;
    if (this.poolUsed + need > this.pool.length) {
      const pool = new Uint32Array(Math.max(this.pool.length * 2, this.poolUsed + need));
      pool.set(this.pool.subarray(0, this.poolUsed));
      this.pool = pool;
    }
    const offset = this.poolUsed;
    this.pool.set(okBits.subarray(w0, w0 + windowWords), offset);
    this.pool.set(infoBits, offset + windowWords);
    this.poolUsed += need;
    const e = this.count++;
    this.entryHash[e] = h;
    this.entryState[e] = state;
    this.entryRestrictClass[e] = restrictClass;
    this.entryRestrictState[e] = restrictState;
    this.entryLow[e] = low;
    this.entryHigh[e] = high;
    this.entryOffset[e] = offset;
    const b = h & (this.buckets.length - 1);
    this.entryNext[e] = this.buckets[b]!;
    this.buckets[b] = e;
  }

  private growEntries(): void {
    const capacity = this.entryNext.length * 2;
    const grow = <T extends Int32Array | Uint32Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.entryNext = grow(this.entryNext, (n) => new Int32Array(n));
    this.entryHash = grow(this.entryHash, (n) => new Uint32Array(n));
    this.entryState = grow(this.entryState, (n) => new Int32Array(n));
    this.entryRestrictClass = grow(this.entryRestrictClass, (n) => new Int32Array(n));
    this.entryRestrictState = grow(this.entryRestrictState, (n) => new Int32Array(n));
    this.entryLow = grow(this.entryLow, (n) => new Int32Array(n));
    this.entryHigh = grow(this.entryHigh, (n) => new Int32Array(n));
    this.entryOffset = grow(this.entryOffset, (n) => new Int32Array(n));
    // Keep the load factor at most 1: rehash every entry into twice the buckets.
    this.buckets = new Int32Array(capacity).fill(-1);
    const mask = capacity - 1;
    for (let e = 0; e < this.count; e++) {
      const b = this.entryHash[e]! & mask;
      this.entryNext[e] = this.buckets[b]!;
      this.buckets[b] = e;
    }
  }
}

/**
 * Checks one key's sub-history. Exported for tests and for callers that shard by key. Throws
 * HistoryError on a malformed record or one of another key: the search would take two keys for one
 * register (a write to y "explaining" a read of x) or fail on a missing result with a TypeError.
 */
export function checkKey(key: string, records: readonly OpRecord[], initial: string | null, budget: KeyBudget): KeyResult {
  validateHistory(records);
  for (const record of records) {
    if (record.op.key !== key) {
      throw new HistoryError('SYNOD_HISTORY_BAD_RECORD', `a record of key ${JSON.stringify(record.op.key)} passed to checkKey(${JSON.stringify(key)})`, record.id);
    }
  }
  return searchKey(key, records, initial, budget);
}

/** checkKey without the checks: checkHistory validated the history and grouped it by key. */
function searchKey(key: string, records: readonly OpRecord[], initial: string | null, budget: KeyBudget): KeyResult {
  const started = budget.nowMs();
  const values = new ValueTable();
  const initialState = values.intern(initial);

  // Partition: ok ops must be placed, info ops may be, the rest are dropped.
  const okRecords: OpRecord[] = [];
  const infoRecords: OpRecord[] = [];
  const scratch = new Int32Array(3);
  for (const record of records) {
    if (!encode(record, values, scratch, 0)) continue;
    (record.outcome === 'ok' ? okRecords : infoRecords).push(record);
  }
  okRecords.sort(byInvoke);
  infoRecords.sort(byInvoke);
  const nOk = okRecords.length;
  const nInfo = infoRecords.length;
  const n = nOk + nInfo;
  // Unified op index u: ok ops 0..nOk-1 (by invocation), then info ops nOk..n-1.
  const ops: OpRecord[] = okRecords.concat(infoRecords);
  const code = new Int32Array(n * 3);
  ops.forEach((record, u) => encode(record, values, code, u));

  const base = {
    key,
    records: records.length,
    okOps: nOk,
    infoOps: nInfo,
    droppedOps: records.length - n,
  };
  if (nOk === 0) {
    return { ...base, verdict: 'linearizable', exploredStates: 0, steps: 0, ms: budget.nowMs() - started };
  }

  // Main list of ok call/return events: entries 1..2nOk, head 0, tail 2nOk+1.
  const HEAD = 0;
  const TAIL = 2 * nOk + 1;
  const events = new Int32Array(2 * nOk);
  for (let i = 0; i < 2 * nOk; i++) events[i] = i;
  const eventTime = (ev: number): number => {
    const record = okRecords[ev >>> 1]!;
    return (ev & 1) === 0 ? record.invokeMs : record.completeMs!;
  };
  // Ties: calls before returns (touching intervals overlap), then by op.
  events.sort((x, y) => eventTime(x) - eventTime(y) || (x & 1) - (y & 1) || x - y);
  const next = new Int32Array(TAIL + 1);
  const prev = new Int32Array(TAIL + 1);
  const entryOp = new Int32Array(TAIL + 1);
  const entryIsCall = new Uint8Array(TAIL + 1); // 0 for returns, HEAD and TAIL
  const entryTime = new Float64Array(TAIL + 1);
  const callEntry = new Int32Array(nOk);
  const returnEntry = new Int32Array(nOk);
  for (let p = 0; p < 2 * nOk; p++) {
    const entry = p + 1;
    const ev = events[p]!;
    const i = ev >>> 1;
    entryOp[entry] = i;
    entryTime[entry] = eventTime(ev);
    if ((ev & 1) === 0) {
      entryIsCall[entry] = 1;
      callEntry[i] = entry;
    } else returnEntry[i] = entry;
  }
  for (let entry = 0; entry <= TAIL; entry++) {
    next[entry] = entry + 1;
    prev[entry] = entry - 1;
  }
  entryOp[HEAD] = -1;
  entryOp[TAIL] = -1;

  // Info list: nodes 1..nInfo in invocation order, head 0, tail nInfo+1.
  const INFO_HEAD = 0;
  const INFO_TAIL = nInfo + 1;
  const infoNext = new Int32Array(INFO_TAIL + 1);
  const infoPrev = new Int32Array(INFO_TAIL + 1);
  const infoTime = new Float64Array(INFO_TAIL + 1);
  for (let node = 0; node <= INFO_TAIL; node++) {
    infoNext[node] = node + 1;
    infoPrev[node] = node - 1;
  }
  for (let j = 0; j < nInfo; j++) infoTime[j + 1] = infoRecords[j]!.invokeMs;

  // Info ops with identical effects form a class; only the earliest-invoked unplaced member of
  // a class may be placed, so the placed members are always a prefix of the class.
  const infoClass = new Int32Array(nInfo);
  const infoPrevSame = new Int32Array(nInfo).fill(-1);
  {
    const lastOfClass = new Map<string, number>();
    for (let j = 0; j < nInfo; j++) {
      const i = nOk + j;
      const effect = `${code[i * 3]!},${code[i * 3 + 1]!},${code[i * 3 + 2]!}`;
      const last = lastOfClass.get(effect);
      infoClass[j] = last === undefined ? j : infoClass[last]!;
      infoPrevSame[j] = last ?? -1;
      lastOfClass.set(effect, j);
    }
  }

  // Per-op random words: the placed ok set's hash is their XOR (info ops are left out of it:
  // the cache compares them by inclusion). Seeded, so runs are repeatable.
  const opHash = new Uint32Array(nOk);
  let seed = 0x2545f491;
  for (let u = 0; u < nOk; u++) {
    seed = (seed + 0x9e3779b9) >>> 0;
    opHash[u] = fmix32(seed);
  }

  const okBits = new Uint32Array((nOk + 31) >>> 5);
  const infoBits = new Uint32Array((nInfo + 31) >>> 5);
  const cache = new StateCache(infoBits.length);

  // The stack of placed ops, with what to restore when popping each.
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n); // state before the op
  const stackLow = new Int32Array(n);
  const stackHigh = new Int32Array(n);
  const stackHash = new Uint32Array(n);
  const stackRestrictOp = new Int32Array(n);
  const stackRestrictState = new Int32Array(n);
  let depth = 0;

  let state = initialState;
  let low = 0; // every ok op below is placed
  let high = 0; // no ok op at or above is placed
  let hash = 0;
  // The restriction: when the last op placed was info op `restrictOp` (else -1), taking the
  // state from `restrictState` to `state`, the next op must observe it (see the design note).
  let restrictOp = -1;
  let restrictState = 0;
  let steps = 0;
  let iterations = 0;

  // The longest prefix found, for the counterexample.
  let bestDepth = -1;
  let bestOps = new Int32Array(0);
  let bestStates = new Int32Array(0);
  let bestBlocked = -1;

  // Enumeration cursor of the current level: ok calls first (`entry`), then info ops (`node`)
  // invoked no later than `bound`, the time of the first return event (`boundEntry`).
  let inMain = true;
  let entry = next[HEAD]!;
  let node = INFO_HEAD;
  let bound = 0;
  let boundEntry = -1;

  let verdict: Verdict;
  let unknownReason: UnknownReason | undefined;
  for (;;) {
    if (steps > budget.steps) {
      verdict = 'unknown';
      unknownReason = 'steps';
      break;
    }
    if (++iterations % CLOCK_CHECK_INTERVAL === 0) {
      unknownReason = budget.nowMs() - started > budget.ms ? 'time' : cache.bytes() > budget.cacheBytes ? 'memory' : undefined;
      if (unknownReason !== undefined) {
        verdict = 'unknown';
        break;
      }
    }
    const restricted = restrictOp >= 0;
    const rKind = restricted ? code[restrictOp * 3]! : 0;
    const rA = restricted ? code[restrictOp * 3 + 1]! : 0;
    const rB = restricted ? code[restrictOp * 3 + 2]! : 0;

    // Find the next candidate at this level that leads to a configuration not dominated.
    let u = -1;
    let nextState = -1;
    if (inMain) {
      while (entryIsCall[entry] === 1) {
        const i = entryOp[entry]!;
        const kind = code[i * 3]!;
        const a = code[i * 3 + 1]!;
        const b = code[i * 3 + 2]!;
        steps++;
        let s = step(kind, a, b, state);
        if (s >= 0 && restricted) {
          // Could this op have run before the info op, to the same end? Then skip it here.
          const before = step(kind, a, b, restrictState);
          if (before >= 0 && (before === s || step(rKind, rA, rB, before) === s)) s = -1;
        }
        if (s >= 0) {
          okBits[i >>> 5]! |= 1 << (i & 31);
          const newLow = i === low ? lowestClear(okBits, low, nOk) : low;
          const newHigh = i + 1 > high ? i + 1 : high;
          if (cache.add((hash ^ opHash[i]!) >>> 0, s, -1, 0, newLow, newHigh, okBits, infoBits)) {
            u = i;
            nextState = s;
            stackLow[depth] = low;
            stackHigh[depth] = high;
            low = newLow;
            high = newHigh;
            break;
          }
          okBits[i >>> 5]! &= ~(1 << (i & 31));
        }
        entry = next[entry]!;
      }
      if (u < 0) {
        // `entry` is the first return event: nothing may be placed after its op's response
        // until that op is. Info ops invoked up to then are the remaining candidates.
        inMain = false;
        boundEntry = entry;
        bound = entryTime[entry]!;
        node = infoNext[INFO_HEAD]!;
      }
    }
    if (u < 0) {
      while (node !== INFO_TAIL && infoTime[node]! <= bound) {
        const j = node - 1;
        node = infoNext[node]!;
        const same = infoPrevSame[j]!;
        if (same >= 0 && (infoBits[same >>> 5]! & (1 << (same & 31))) === 0) continue; // not its turn
        const i = nOk + j;
        const kind = code[i * 3]!;
        const a = code[i * 3 + 1]!;
        const b = code[i * 3 + 2]!;
        steps++;
        const s = step(kind, a, b, state);
        // An info op that would not change the state is never worth placing.
        if (s < 0 || s === state) continue;
        if (restricted && step(kind, a, b, restrictState) === s) continue; // the previous info op was useless
        infoBits[j >>> 5]! |= 1 << (j & 31);
        if (cache.add(hash, s, infoClass[j]!, state, low, high, okBits, infoBits)) {
          u = i;
          nextState = s;
          stackLow[depth] = low;
          stackHigh[depth] = high;
          break;
        }
        infoBits[j >>> 5]! &= ~(1 << (j & 31));
      }
    }

    if (u >= 0) {
      // Place u: push, lift it out of its list, and start the next level.
      stackOp[depth] = u;
      stackState[depth] = state;
      stackHash[depth] = hash;
      stackRestrictOp[depth] = restrictOp;
      stackRestrictState[depth] = restrictState;
      depth++;
      if (u < nOk) {
        restrictOp = -1;
        state = nextState;
        hash = (hash ^ opHash[u]!) >>> 0;
        const c = callEntry[u]!;
        const r = returnEntry[u]!;
        next[prev[c]!] = next[c]!;
        prev[next[c]!] = prev[c]!;
        next[prev[r]!] = next[r]!;
        prev[next[r]!] = prev[r]!;
        if (next[HEAD] === TAIL) {
          verdict = 'linearizable';
          break;
        }
      } else {
        restrictOp = u;
        restrictState = state;
        state = nextState;
        const v = u - nOk + 1;
        infoNext[infoPrev[v]!] = infoNext[v]!;
        infoPrev[infoNext[v]!] = infoPrev[v]!;
      }
      inMain = true;
      entry = next[HEAD]!;
      continue;
    }

    // This level is exhausted: remember the deepest dead end, then backtrack. Info ops at the
    // top of the stack were speculative (nothing after them was placed): leave them out.
    let kept = depth;
    while (kept > 0 && stackOp[kept - 1]! >= nOk) kept--;
    if (kept > bestDepth) {
      bestDepth = kept;
      bestOps = stackOp.slice(0, kept);
      bestStates = new Int32Array(kept);
      for (let k = 0; k < kept; k++) bestStates[k] = k + 1 < depth ? stackState[k + 1]! : state;
      bestBlocked = entryOp[boundEntry]!;
    }
    if (depth === 0) {
      verdict = 'not-linearizable';
      break;
    }
    depth--;
    u = stackOp[depth]!;
    state = stackState[depth]!;
    hash = stackHash[depth]!;
    restrictOp = stackRestrictOp[depth]!;
    restrictState = stackRestrictState[depth]!;
    low = stackLow[depth]!;
    high = stackHigh[depth]!;
    if (u < nOk) {
      // Put the return back, then the call (reverse order of lifting), and resume after it.
      okBits[u >>> 5]! &= ~(1 << (u & 31));
      const c = callEntry[u]!;
      const r = returnEntry[u]!;
      next[prev[r]!] = r;
      prev[next[r]!] = r;
      next[prev[c]!] = c;
      prev[next[c]!] = c;
      inMain = true;
      entry = next[c]!;
    } else {
      const j = u - nOk;
      infoBits[j >>> 5]! &= ~(1 << (j & 31));
      const v = j + 1;
      infoNext[infoPrev[v]!] = v;
      infoPrev[infoNext[v]!] = v;
      inMain = false;
      node = infoNext[v]!;
      // The bound of this level: the first return event in the restored main list.
      let e = next[HEAD]!;
      while (entryIsCall[e] === 1) e = next[e]!;
      boundEntry = e;
      bound = entryTime[e]!;
    }
  }

  const result = { ...base, verdict, exploredStates: cache.count, steps, ms: budget.nowMs() - started };
  if (verdict === 'unknown') return { ...result, unknownReason: unknownReason! };
  if (verdict === 'linearizable') return result;
  return { ...result, counterexample: buildCounterexample(key, ops, values.values, initial, bestOps, bestStates, bestBlocked) };
}

function buildCounterexample(
  key: string,
  ops: readonly OpRecord[],
  values: readonly (string | null)[],
  initial: string | null,
  bestOps: Int32Array,
  bestStates: Int32Array,
  bestBlocked: number,
): Counterexample {
  const prefix: LinearizedStep[] = [];
  const placed = new Set<number>();
  for (let k = 0; k < bestOps.length; k++) {
    placed.add(bestOps[k]!);
    prefix.push({ op: ops[bestOps[k]!]!, stateAfter: values[bestStates[k]!]! });
  }
  const blocked = ops[bestBlocked]!;
  const deadline = blocked.completeMs!;
  const pending = ops.filter((op, u) => !placed.has(u) && u !== bestBlocked && op.invokeMs <= deadline).sort(byInvoke);
  const shown = new Set<OpRecord>([...prefix.slice(-COUNTEREXAMPLE_PREFIX_TAIL).map((s) => s.op), ...pending, blocked]);
  return {
    key,
    prefix,
    stateAfterPrefix: prefix.length > 0 ? prefix[prefix.length - 1]!.stateAfter : initial,
    blocked,
    pending,
    ops: [...shown].sort(byInvoke),
  };
}
