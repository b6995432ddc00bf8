// Builders and generators for checker tests.

import type { KvOp, OpRecord, OpResult, Outcome, ProcessId } from '../../src/check/history.js';
import { Prng } from '../../src/sim/prng.js';

/** Builds a history by hand: ids 0, 1, 2, ... in call order. */
export class HistoryBuilder {
  readonly ops: OpRecord[] = [];

  private add(
    process: ProcessId,
    op: KvOp,
    invokeMs: number,
    completeMs: number | null,
    outcome: Outcome,
    result?: OpResult,
  ): this {
    const record: OpRecord = { id: this.ops.length, process, op, invokeMs, completeMs, outcome };
    this.ops.push(outcome === 'ok' && result !== undefined ? { ...record, result } : record);
    return this;
  }

  put(p: ProcessId, key: string, value: string, invokeMs: number, completeMs: number | null, outcome: Outcome = 'ok'): this {
    return this.add(p, { f: 'put', key, value }, invokeMs, completeMs, outcome);
  }

  /** `value` is what an ok get read (null = 404); ignored for fail/info. */
  get(p: ProcessId, key: string, value: string | null, invokeMs: number, completeMs: number | null, outcome: Outcome = 'ok'): this {
    return this.add(p, { f: 'get', key }, invokeMs, completeMs, outcome, { value });
  }

  del(p: ProcessId, key: string, invokeMs: number, completeMs: number | null, outcome: Outcome = 'ok', existed?: boolean): this {
    return this.add(p, { f: 'delete', key }, invokeMs, completeMs, outcome, existed === undefined ? undefined : { existed });
  }

  /** `outcome`: true = swapped (200), false = 409, or 'fail' / 'info'. `current`: the 409's value. */
  cas(
    p: ProcessId,
    key: string,
    expected: string | null,
    value: string,
    invokeMs: number,
    completeMs: number | null,
    outcome: boolean | 'fail' | 'info',
    current?: string | null,
  ): this {
    const op: KvOp = { f: 'cas', key, expected, value };
    if (typeof outcome !== 'boolean') return this.add(p, op, invokeMs, completeMs, outcome);
    const result = current === undefined ? { swapped: outcome } : { swapped: outcome, current };
    return this.add(p, op, invokeMs, completeMs, 'ok', result);
  }
}

/** The reference model: a plain map. Applies `op` and returns its ok result. */
export function applyOp(store: Map<string, string>, op: KvOp): OpResult | undefined {
  const current = store.get(op.key) ?? null;
  switch (op.f) {
    case 'put':
      store.set(op.key, op.value);
      return undefined;
    case 'get':
      return { value: current };
    case 'delete':
      store.delete(op.key);
      return { existed: current !== null };
    case 'cas':
      if (current !== op.expected) return { swapped: false, current };
      store.set(op.key, op.value);
      return { swapped: true };
  }
}

export interface ConcurrentOptions {
  readonly seed: number;
  readonly ops: number;
  readonly keys: number;
  readonly clients: number;
  /** Distinct values per key (small: more cas hits and more ambiguity for the search). */
  readonly values: number;
  readonly infoRate: number;
  readonly failRate: number;
}

/**
 * A linearizable history from a simulated concurrent run: each client issues one op at a time
 * with a random latency; each op takes effect at a random point inside its interval (info ops
 * sometimes never), and results come from the reference model applied in that order.
 */
export function concurrentHistory(o: ConcurrentOptions): OpRecord[] {
  const rng = new Prng(o.seed);
  interface Planned {
    process: number;
    op: KvOp;
    invokeMs: number;
    completeMs: number | null;
    effectMs: number;
    outcome: Outcome;
    applies: boolean;
  }
  const planned: Planned[] = [];
  const clock = new Array<number>(o.clients).fill(0);
  for (let k = 0; k < o.ops; k++) {
    const process = rng.int(0, o.clients - 1);
    const invokeMs = clock[process]! + rng.int(0, 3);
    const latency = rng.int(1, 20);
    const key = `k${rng.int(0, o.keys - 1)}`;
    const value = `v${rng.int(0, o.values - 1)}`;
    const roll = rng.next();
    const op: KvOp =
      roll < 0.4
        ? { f: 'get', key }
        : roll < 0.7
          ? { f: 'put', key, value }
          : roll < 0.8
            ? { f: 'delete', key }
            : { f: 'cas', key, expected: rng.chance(0.2) ? null : `v${rng.int(0, o.values - 1)}`, value };
    const outcomeRoll = rng.next();
    const outcome: Outcome = outcomeRoll < o.infoRate ? 'info' : outcomeRoll < o.infoRate + o.failRate ? 'fail' : 'ok';
    const completeMs = invokeMs + latency;
    // An info op may take effect long after the client gave up on it.
    const effectMs = outcome === 'info' ? invokeMs + rng.next() * latency * 3 : invokeMs + rng.next() * latency;
    planned.push({
      process,
      op,
      invokeMs,
      completeMs: outcome === 'info' && rng.chance(0.5) ? null : completeMs,
      effectMs,
      outcome,
      applies: outcome === 'ok' || (outcome === 'info' && rng.chance(0.5)),
    });
    clock[process] = completeMs;
  }
  const results = new Map<number, OpResult | undefined>();
  const store = new Map<string, string>();
  const order = planned.map((_, i) => i).sort((a, b) => planned[a]!.effectMs - planned[b]!.effectMs || a - b);
  for (const i of order) {
    const p = planned[i]!;
    if (p.applies) results.set(i, applyOp(store, p.op));
  }
  return planned
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.invokeMs - b.p.invokeMs || a.i - b.i)
    .map(({ p, i }, id) => {
      const base = { id, process: p.process, op: p.op, invokeMs: p.invokeMs, completeMs: p.completeMs, outcome: p.outcome };
      const result = results.get(i);
      return p.outcome === 'ok' && result !== undefined ? { ...base, result } : base;
    });
}

/**
 * A dumb reference checker for tiny histories: tries every order (no memo, no pruning beyond
 * real time). Info ops may be placed anywhere after their invocation, or never.
 */
export function bruteForceLinearizable(history: readonly OpRecord[]): boolean {
  const ops = history.filter((r) => r.outcome !== 'fail' && !(r.outcome === 'info' && r.op.f === 'get'));
  const keys = new Set(ops.map((r) => r.op.key));
  for (const key of keys) {
    const mine = ops.filter((r) => r.op.key === key);
    const used = new Array<boolean>(mine.length).fill(false);
    const search = (value: string | null): boolean => {
      let okLeft = false;
      let deadline = Infinity;
      mine.forEach((r, i) => {
        if (used[i] || r.outcome !== 'ok') return;
        okLeft = true;
        deadline = Math.min(deadline, r.completeMs!);
      });
      if (!okLeft) return true;
      for (let i = 0; i < mine.length; i++) {
        const r = mine[i]!;
        if (used[i] || r.invokeMs > deadline) continue;
        const after = stepReference(r, value);
        if (after === undefined) continue;
        used[i] = true;
        const found = search(after);
        used[i] = false;
        if (found) return true;
      }
      return false;
    };
    if (!search(null)) return false;
  }
  return true;
}

/** The value after `r`, or undefined if `r` cannot take effect on `value` as recorded. */
function stepReference(r: OpRecord, value: string | null): string | null | undefined {
  const op = r.op;
  const ok = r.outcome === 'ok';
  const result = r.result as { value?: string | null; swapped?: boolean; current?: string | null; existed?: boolean } | undefined;
  switch (op.f) {
    case 'put':
      return op.value;
    case 'get':
      return result!.value === value ? value : undefined;
    case 'delete':
      if (ok && result?.existed !== undefined && result.existed !== (value !== null)) return undefined;
      return null;
    case 'cas':
      if (!ok) return value === op.expected ? op.value : value;
      if (result!.swapped) return value === op.expected ? op.value : undefined;
      if (value === op.expected) return undefined;
      if (result!.current !== undefined && result!.current !== value) return undefined;
      return value;
  }
}
