import { SeqMap } from './seq-map.js';
import type { Command } from './types.js';

/**
 * Client sessions: at-most-once execution of (clientId, seq). Part of the replicated state (and of
 * snapshots): every replica applies the same commands in the same order, so every replica's table
 * is the same. A client numbers its commands 1, 2, 3...; `floor` tells us every seq below it has
 * been answered, so results below it may be forgotten. Results at or above the floor are kept,
 * so a retry with several requests in flight gets the original answers.
 *
 * Sessions are registered through the log (register(), when a register command applies: the id
 * comes from a counter in this replicated table, so every replica hands out the same id), bounded
 * in count (sessionsMax: a registration beyond it evicts the least recently active session) and
 * expire by leader-stamped time (advance(), at the start of each applied batch, with the batch's
 * stamp: a session idle for longer than sessionExpiryMs of stamped time is dropped). A command of
 * a session that is not in the table (never registered, expired, evicted) is not executed:
 * check() says 'expired' and the proposer gets SESSION_EXPIRED (SAFETY.md). The only exception is
 * a batch written before values carried stamps (a legacy value: advance(undefined)): its commands
 * keep the old rule (a session is created by its first command), so old logs replay as they ran.
 * Appliers call advance() at the start of every batch; it sets the clock and which rule holds.
 *
 * Order: `sessions` is a Map kept in order of last activity (oldest first; a session moves to the
 * end when a command of it executes at a newer stamp), so expiry and eviction look at its head
 * only: O(1) per expired or evicted session, nothing per command beyond one lookup.
 */
export type SessionOutcome<R> =
  | { kind: 'execute' }
  | { kind: 'duplicate'; result: R }
  | { kind: 'stale' } // below the floor: answered long ago, the result is gone
  | { kind: 'expired' }; // no such session (never registered, expired or evicted): not executed

/**
 * The register command: client id 0 (the runtime's internal client, never an application's
 * session) with this one-byte payload. Applying it runs register(); other client-0 payloads are
 * the runtime's own (JSON) commands.
 */
export const REGISTER_CLIENT_ID = 0;
export const REGISTER_PAYLOAD: Uint8Array = new Uint8Array([0]);

export function isRegisterCommand(cmd: Command): boolean {
  return cmd.clientId === REGISTER_CLIENT_ID && cmd.payload.length === 1 && cmd.payload[0] === 0;
}

/** A session id as a register command's result bytes (8 bytes, float64 little-endian). */
export function encodeSessionId(id: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, id, true);
  return out;
}

export function decodeSessionId(bytes: Uint8Array): number {
  if (bytes.length !== 8) throw new RangeError(`a session id is 8 bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, true);
}

const EXECUTE = Object.freeze({ kind: 'execute' as const });
const STALE = Object.freeze({ kind: 'stale' as const });
const EXPIRED = Object.freeze({ kind: 'expired' as const });

/** Settings of the replicated session table: they must be equal on every replica (like valueBytesMax). */
export interface SessionLimits {
  /** Most sessions kept; a registration beyond it evicts the least recently active one. */
  sessionsMax: number;
  /** A session with no executed command for longer than this (stamped time, ms) expires. */
  sessionExpiryMs: number;
}

export const DEFAULT_SESSION_LIMITS: Readonly<SessionLimits> = Object.freeze({ sessionsMax: 100_000, sessionExpiryMs: 60 * 60 * 1000 });

/** Checks the settings; throws RangeError naming the first bad one. */
export function validateSessionLimits(limits: SessionLimits): SessionLimits {
  if (!Number.isSafeInteger(limits.sessionsMax) || limits.sessionsMax < 1) throw new RangeError(`sessionsMax must be a positive integer, got ${limits.sessionsMax}`);
  if (!Number.isSafeInteger(limits.sessionExpiryMs) || limits.sessionExpiryMs < 1) {
    throw new RangeError(`sessionExpiryMs must be a positive integer, got ${limits.sessionExpiryMs}`);
  }
  return limits;
}

interface Session<R> {
  floor: number;
  /** Results of seqs at or above the floor (a ring, not a Map: see seq-map.ts). */
  results: SeqMap<R>;
  /** The stamped time of the session's last executed command (or of its registration). */
  activeMs: number;
}

/** One session as plain data: [id, floor, results, activeMs] (activeMs absent in old snapshots). */
export type SessionData<R> = [number, number, Array<[number, R]>, number?];

/** The table as plain data (snapshots). An array alone is the format before registration and expiry. */
export interface SessionTableData<R> {
  timeMs: number;
  nextId: number;
  sessionsMax: number;
  sessionExpiryMs: number;
  sessions: Array<SessionData<R>>;
}

export class SessionTable<R> {
  private readonly sessions = new Map<number, Session<R>>();
  private limits: SessionLimits;
  /** The stamped clock: the highest stamp of the batches applied so far (non-decreasing). */
  private clockMs = 0;
  /** The next id register() hands out (ids are never reused). */
  private nextId = 1;
  /** The current batch carries a stamp (set by advance()): unknown sessions are refused, not created. */
  private stamped = false;
  /** lookup()'s cache; any deletion or creation of a session resets it. */
  private cachedId = -1;
  private cached: Session<R> | undefined = undefined;

  constructor(limits: SessionLimits = DEFAULT_SESSION_LIMITS) {
    this.limits = validateSessionLimits({ sessionsMax: limits.sessionsMax, sessionExpiryMs: limits.sessionExpiryMs });
  }

  /** The stamped time as of the last applied batch (what ApplyContext.timeMs reports). */
  get timeMs(): number {
    return this.clockMs;
  }

  get settings(): SessionLimits {
    return this.limits;
  }

  /**
   * The replica's own settings replace those a snapshot was taken with (they must be equal on
   * every replica; the caller warns when they differ). A smaller bound applies from the next
   * registration, a shorter expiry from the next stamp.
   */
  setLimits(limits: SessionLimits): void {
    this.limits = validateSessionLimits({ sessionsMax: limits.sessionsMax, sessionExpiryMs: limits.sessionExpiryMs });
  }

  /**
   * The start of an applied batch: moves the stamped clock to `stampMs` (never back; undefined: a
   * legacy value without a stamp) and expires the sessions idle for longer than sessionExpiryMs.
   * Returns the stamped clock.
   */
  advance(stampMs: number | undefined): number {
    this.stamped = stampMs !== undefined;
    if (stampMs === undefined || stampMs <= this.clockMs) return this.clockMs;
    if (this.clockMs === 0) {
      // The first stamp this table sees (a fresh table, or sessions from before stamps): their
      // idle time counts from here, not from the epoch.
      for (const s of this.sessions.values()) s.activeMs = stampMs;
    }
    this.clockMs = stampMs;
    const oldestKeptMs = stampMs - this.limits.sessionExpiryMs;
    for (const [id, s] of this.sessions) {
      if (s.activeMs >= oldestKeptMs) break; // in order of activity: the rest are newer
      this.sessions.delete(id);
      this.cachedId = -1;
    }
    return this.clockMs;
  }

  /** A register command applied: a new session, evicting the least recently active one at the bound. */
  register(): number {
    let id = this.nextId;
    while (this.sessions.has(id)) id++; // a legacy session may hold a small id: never share one
    this.nextId = id + 1;
    this.create(id);
    return id;
  }

  private create(id: number): Session<R> {
    // While, not if: after sessionsMax was lowered (setLimits) the table may hold more than the
    // new bound, and evicting one per registration kept it there for good.
    while (this.sessions.size >= this.limits.sessionsMax) {
      const oldest = this.sessions.keys().next();
      if (oldest.done) break;
      this.sessions.delete(oldest.value);
    }
    this.cachedId = -1;
    const s: Session<R> = { floor: 0, results: new SeqMap(), activeMs: this.clockMs };
    this.sessions.set(id, s);
    return s;
  }

  has(clientId: number): boolean {
    return this.sessions.has(clientId);
  }

  /**
   * Decide what to do with a committed command (call before executing it). Changes nothing, so a
   * replica may also ask outside apply (e.g. to answer a retry from its cache). An unknown session
   * is 'expired', except in a legacy batch (advance(undefined), also before any advance()): there
   * it executes, as it did before sessions were registered.
   */
  check(cmd: Command): SessionOutcome<R> {
    const s = this.lookup(cmd.clientId);
    if (!s) return this.stamped ? EXPIRED : EXECUTE;
    if (cmd.seq < s.floor) return STALE;
    // Results are never undefined (record() refuses it), so get() alone tells.
    const result = s.results.get(cmd.seq);
    return result !== undefined ? { kind: 'duplicate', result } : EXECUTE;
  }

  /**
   * The session of `clientId`, through a one-entry cache: the commands of a batch come in runs
   * from the same client (one connection's requests), and check() and record() both look it up.
   */
  private lookup(clientId: number): Session<R> | undefined {
    if (clientId === this.cachedId) return this.cached;
    const s = this.sessions.get(clientId);
    this.cachedId = clientId;
    this.cached = s;
    return s;
  }

  /**
   * Record the result of an executed command, mark its session active at the stamped clock and
   * forget results below the client's floor. A missing session is created (legacy values only).
   */
  record(cmd: Command, result: R): void {
    if (result === undefined) throw new TypeError('SessionTable.record: a result may not be undefined');
    let s = this.lookup(cmd.clientId);
    if (!s) s = this.create(cmd.clientId);
    else if (s.activeMs !== this.clockMs) {
      // Move it to the end: the Map stays in order of activity (every other session is at most as recent).
      s.activeMs = this.clockMs;
      this.sessions.delete(cmd.clientId);
      this.sessions.set(cmd.clientId, s);
    }
    s.results.set(cmd.seq, result);
    if (cmd.floor > s.floor) {
      // Only [old floor, new floor) can go (record follows an 'execute', which needs seq >= floor):
      // O(advance), not a scan of the client's results per command.
      s.floor = cmd.floor;
      s.results.deleteBelow(s.floor);
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Session ids, least recently active first (tests, diagnostics). */
  ids(): number[] {
    return [...this.sessions.keys()];
  }

  /** Plain data for snapshots (sessions in order of activity). */
  toJSON(): SessionTableData<R> {
    return {
      timeMs: this.clockMs,
      nextId: this.nextId,
      sessionsMax: this.limits.sessionsMax,
      sessionExpiryMs: this.limits.sessionExpiryMs,
      sessions: [...this.sessions].map(([id, s]) => [id, s.floor, s.results.entries(), s.activeMs]),
    };
  }

  /**
   * From toJSON's data, or from the array of an older snapshot (no clock, no activity: the first
   * stamp applied starts every session's idle time). `limits` overrides the recorded settings.
   */
  static fromJSON<R>(data: SessionTableData<R> | Array<SessionData<R>>, limits?: SessionLimits): SessionTable<R> {
    const legacy = Array.isArray(data);
    const recorded = legacy ? DEFAULT_SESSION_LIMITS : { sessionsMax: data.sessionsMax, sessionExpiryMs: data.sessionExpiryMs };
    const t = new SessionTable<R>(limits ?? recorded);
    const sessions = legacy ? data : data.sessions;
    if (!legacy) {
      t.clockMs = data.timeMs;
      t.nextId = data.nextId;
    }
    // Sorted by activity on the way in, whatever the source: expiry relies on the order.
    const sorted = [...sessions].sort((a, b) => (a[3] ?? 0) - (b[3] ?? 0));
    for (const [id, floor, results, activeMs] of sorted) t.sessions.set(id, { floor, results: SeqMap.from(results), activeMs: activeMs ?? 0 });
    return t;
  }
}
