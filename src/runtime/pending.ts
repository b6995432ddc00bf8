// Proposals waiting for their result, keyed by (client id, seq) without building string keys,
// and their deadlines, expired from the replica's tick rather than by one timer per proposal.
//
// Why: at tens of thousands of proposals per second a `${clientId}:${seq}` key built three
// times per command was a visible share of the leader's CPU (docs/performance.md). Deadlines live
// in a DeadlineWheel (no timer per proposal); settling an entry removes it from the wheel at once,
// so no answered proposal stays reachable until its deadline. A client's proposals sit in a
// SeqMap (a ring by seq), not a Map: a Map churned by one insert and one delete per proposal
// promoted what it held to V8's old generation (src/core/seq-map.ts).

import { SeqMap } from '../core/seq-map.js';
import type { SeqWindow } from '../core/seq-window.js';
import { DeadlineWheel, type WheelItem } from './deadlines.js';

/**
 * How a proposal's outcome is delivered: exactly one of error and result is non-null. `cookie` is
 * what the proposer passed with it (RSL's cookie): a server can hand every request the same
 * callback and tell them apart by the cookie, instead of making a closure per request.
 */
export type ProposalCallback<C = unknown> = (error: Error | null, result: Uint8Array | null, cookie: C) => void;

/**
 * One proposal waiting for its result. A class with the outcome delivered to a callback, not a
 * promise and two closures per proposal: the binary server proposes with a callback directly
 * (SynodReplica.proposeWith), and propose() wraps one in a promise.
 */
export class PendingEntry implements WheelItem<PendingEntry> {
  bucket = -1;
  wheelPrev: PendingEntry | null = null;
  wheelNext: PendingEntry | null = null;
  settled = false;
  /** Past its deadline and being ended (SynodReplica.expireProposals): its queued command, if any, is taken back. */
  expiring = false;
  /** performance.now() after which it ends in OutcomeUnknownError (NaN until dated). */
  deadlineMs = NaN;
  /** Callers of the same (clientId, seq) retried here while it was pending, with their cookies: one answer for all. */
  private also: Array<[ProposalCallback, unknown]> | null = null;

  constructor(
    private readonly table: PendingTable,
    readonly clientId: number,
    readonly seq: number,
    /** How long it may wait for its result; its deadline counts from when the table dates it (see PendingTable.date). */
    readonly timeoutMs: number,
    /** The drain generation this proposal rides in: handed to the core once the replica's generation passes it. */
    readonly generation: number,
    /** Proposed through the replica's own session (propose() without a clientId): its seq is settled there when this is. */
    private readonly ownSeqs: SeqWindow | null,
    private readonly done: ProposalCallback,
    private readonly cookie: unknown,
  ) {}

  get own(): boolean {
    return this.ownSeqs !== null;
  }

  /** Another caller of the same request: answered with it. */
  join(done: ProposalCallback, cookie: unknown): void {
    (this.also ??= []).push([done, cookie]);
  }

  resolve(result: Uint8Array): void {
    if (this.settle()) this.deliver(null, result);
  }

  reject(error: Error): void {
    if (this.settle()) this.deliver(error, null);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.table.delete(this);
    this.ownSeqs?.delete(this.seq);
    return true;
  }

  private deliver(error: Error | null, result: Uint8Array | null): void {
    call(this.done, error, result, this.cookie);
    if (this.also !== null) for (const [done, cookie] of this.also) call(done, error, result, cookie);
  }
}

/**
 * Runs a caller's callback. It runs inside the apply loop, which a throw must not break (the
 * replica would stop): the error is rethrown on its own tick instead, as an uncaught exception of
 * the caller's code.
 */
function call(done: ProposalCallback, error: Error | null, result: Uint8Array | null, cookie: unknown): void {
  try {
    done(error, result, cookie);
  } catch (e) {
    process.nextTick(() => {
      throw e;
    });
  }
}

/** How often clients with nothing pending lose their SeqMap (PendingTable.expired). */
const EMPTY_SWEEP_MS = 1000;

export class PendingTable {
  private readonly byClient = new Map<number, SeqMap<PendingEntry>>();
  private readonly deadlines = new DeadlineWheel<PendingEntry>();
  private count = 0;
  private sweptAtMs = -Infinity;

  get size(): number {
    return this.count;
  }

  /** Clients with a SeqMap, some perhaps with nothing pending until the next sweep (the tick sweeps while any). */
  get clients(): number {
    return this.byClient.size;
  }

  get(clientId: number, seq: number): PendingEntry | undefined {
    return this.byClient.get(clientId)?.get(seq);
  }

  add(entry: PendingEntry): void {
    let seqs = this.byClient.get(entry.clientId);
    if (seqs === undefined) {
      seqs = new SeqMap();
      this.byClient.set(entry.clientId, seqs);
    }
    seqs.set(entry.seq, entry);
    this.count++;
  }

  /**
   * Starts the timeouts of entries added in this event-loop turn, at `nowMs`: one clock reading
   * per turn rather than per proposal (performance.now() was ~3% of the engine's CPU). The
   * replica dates a turn's entries before the next turn (setImmediate), so a deadline counts from
   * at most one turn after the proposal; an entry settled meanwhile is skipped. The first `count`
   * of `entries` are dated (the replica reuses the array).
   */
  date(entries: ReadonlyArray<PendingEntry | null>, count: number, nowMs: number): void {
    for (let i = 0; i < count; i++) {
      const entry = entries[i]!;
      if (entry.settled) continue;
      entry.deadlineMs = nowMs + entry.timeoutMs;
      this.deadlines.add(entry, entry.deadlineMs);
    }
  }

  /**
   * A client whose requests have all settled keeps its SeqMap, with its ring, until the next sweep
   * (expired()): a binary client's requests come in bursts, all answered when their slot applies,
   * and dropping the map at each burst's end meant a new map and its ring grown again (8, 16,
   * 32...) for the next: ~40 bytes per write on the leader.
   */
  delete(entry: PendingEntry): void {
    const seqs = this.byClient.get(entry.clientId);
    if (seqs?.get(entry.seq) !== entry) return;
    seqs.delete(entry.seq);
    this.count--;
    this.deadlines.remove(entry);
  }

  /**
   * Every entry past its deadline (still in the table: settling it removes it). At most once every
   * EMPTY_SWEEP_MS it also drops the SeqMaps of clients with nothing pending, so that clients come
   * and gone do not accumulate.
   */
  expired(nowMs: number): PendingEntry[] {
    if (nowMs - this.sweptAtMs >= EMPTY_SWEEP_MS) {
      this.sweptAtMs = nowMs;
      for (const [clientId, seqs] of this.byClient) if (seqs.size === 0) this.byClient.delete(clientId);
    }
    return this.deadlines.takeExpired(nowMs);
  }

  values(): PendingEntry[] {
    const out: PendingEntry[] = [];
    for (const seqs of this.byClient.values()) for (const e of seqs.values()) out.push(e);
    return out;
  }
}
