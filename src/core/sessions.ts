import type { Command } from './types.js';

/**
 * Client sessions: at-most-once execution of (clientId, seq). Part of the replicated state (and of
 * snapshots): every replica applies the same commands in the same order, so every replica's table
 * is the same. A client numbers its commands 1, 2, 3...; `floor` tells us every seq below it has
 * been answered, so results below it may be forgotten. Results at or above the floor are kept,
 * so a retry with several requests in flight gets the original answers.
 */
export type SessionOutcome<R> =
  | { kind: 'execute' }
  | { kind: 'duplicate'; result: R }
  | { kind: 'stale' }; // below the floor: answered long ago, the result is gone

const EXECUTE = Object.freeze({ kind: 'execute' as const });
const STALE = Object.freeze({ kind: 'stale' as const });

interface Session<R> {
  floor: number;
  results: Map<number, R>;
}

export class SessionTable<R> {
  private readonly sessions = new Map<number, Session<R>>();

  /** Decide what to do with a committed command (call before executing it). */
  check(cmd: Command): SessionOutcome<R> {
    const s = this.sessions.get(cmd.clientId);
    if (!s) return EXECUTE;
    if (cmd.seq < s.floor) return STALE;
    const result = s.results.get(cmd.seq);
    if (result !== undefined || s.results.has(cmd.seq)) return { kind: 'duplicate', result: result as R };
    return EXECUTE;
  }

  /** Record the result of an executed command and forget results below the client's floor. */
  record(cmd: Command, result: R): void {
    let s = this.sessions.get(cmd.clientId);
    if (!s) {
      s = { floor: 0, results: new Map() };
      this.sessions.set(cmd.clientId, s);
    }
    s.results.set(cmd.seq, result);
    if (cmd.floor > s.floor) {
      // Every kept seq is >= the old floor (record follows an 'execute', which needs seq >= floor),
      // so only [old floor, new floor) can go: O(advance) rather than a scan of the client's
      // results per command. A big jump scans the (smaller) map instead.
      const from = s.floor;
      s.floor = cmd.floor;
      if (s.floor - from <= s.results.size) {
        for (let seq = from; seq < s.floor; seq++) s.results.delete(seq);
      } else {
        for (const seq of s.results.keys()) if (seq < s.floor) s.results.delete(seq);
      }
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Plain data for snapshots. */
  toJSON(): Array<[number, number, Array<[number, R]>]> {
    return [...this.sessions].map(([id, s]) => [id, s.floor, [...s.results]]);
  }

  static fromJSON<R>(data: Array<[number, number, Array<[number, R]>]>): SessionTable<R> {
    const t = new SessionTable<R>();
    for (const [id, floor, results] of data) t.sessions.set(id, { floor, results: new Map(results) });
    return t;
  }
}
