import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionTable, type SessionOutcome } from '../../src/core/sessions.js';
import type { Command } from '../../src/core/types.js';

const SEED = 0x5e55;

function command(clientId: number, seq: number, floor: number): Command {
  return { clientId, seq, floor, payload: new Uint8Array([clientId, seq & 0xff]) };
}

const key = (c: Command) => `${c.clientId}:${c.seq}`;

/**
 * Applies committed commands, in log order, the way a state machine does: check, then execute and
 * record only on 'execute'. The result of an execution is unique (its position in the log), so a
 * duplicate answered with another execution's result would show.
 */
class Applier {
  table = new SessionTable<string>();
  executions = new Map<string, number>();
  firstResult = new Map<string, string>();
  outcomes: Array<SessionOutcome<string>> = [];
  private position = 0;

  apply(c: Command): SessionOutcome<string> {
    const outcome = this.table.check(c);
    this.position++;
    if (outcome.kind === 'execute') {
      const result = `r${this.position}`;
      this.executions.set(key(c), (this.executions.get(key(c)) ?? 0) + 1);
      if (!this.firstResult.has(key(c))) this.firstResult.set(key(c), result);
      this.table.record(c, result);
    }
    this.outcomes.push(outcome);
    return outcome;
  }
}

/** A dumb reference: remembers everything, forgets nothing, and derives what the table must say. */
class Reference {
  floors = new Map<number, number>();
  results = new Map<string, string>();

  expect(c: Command): { kind: 'execute' } | { kind: 'duplicate'; result: string } | { kind: 'stale' } {
    if (c.seq < (this.floors.get(c.clientId) ?? 0)) return { kind: 'stale' };
    const r = this.results.get(key(c));
    return r === undefined ? { kind: 'execute' } : { kind: 'duplicate', result: r };
  }

  executed(c: Command, result: string): void {
    this.results.set(key(c), result);
    this.floors.set(c.clientId, Math.max(this.floors.get(c.clientId) ?? 0, c.floor));
  }
}

/**
 * Client behaviour as a log sees it: each client numbers commands 1, 2, 3...; a new command
 * carries the client's floor (its lowest unanswered seq); a retry resends an earlier command with
 * a refreshed floor; a duplicate is an earlier message delivered again verbatim (its old floor).
 */
type Step = { client: number; kind: 'new' | 'retry' | 'dup'; pick: number };
const stepArb: fc.Arbitrary<Step> = fc.record({
  client: fc.integer({ min: 1, max: 3 }),
  kind: fc.constantFrom<Step['kind']>('new', 'new', 'retry', 'dup'),
  pick: fc.nat(),
});

function buildLog(steps: Step[]): Command[] {
  const next = new Map<number, number>();
  const answered = new Map<number, Set<number>>();
  const sent = new Map<number, Command[]>();
  const log: Command[] = [];
  const floorOf = (client: number) => {
    const done = answered.get(client) ?? new Set<number>();
    let f = 1;
    while (done.has(f)) f++;
    return f;
  };
  for (const s of steps) {
    const mine = sent.get(s.client) ?? [];
    let c: Command;
    if (s.kind === 'new' || mine.length === 0) {
      const seq = next.get(s.client) ?? 1;
      next.set(s.client, seq + 1);
      c = command(s.client, seq, floorOf(s.client));
    } else if (s.kind === 'retry') {
      const old = mine[s.pick % mine.length]!;
      c = command(s.client, old.seq, Math.min(old.seq, floorOf(s.client)));
    } else {
      c = mine[s.pick % mine.length]!;
    }
    mine.push(c);
    sent.set(s.client, mine);
    log.push(c);
    // The client hears an answer for what reached the log (in this model, at once).
    const done = answered.get(s.client) ?? new Set<number>();
    done.add(c.seq);
    answered.set(s.client, done);
  }
  return log;
}

function checkAgainstReference(log: Command[]): Applier {
  const applier = new Applier();
  const ref = new Reference();
  for (const c of log) {
    const expected = ref.expect(c);
    const got = applier.apply(c);
    assert.deepEqual(got, expected, `command ${key(c)} floor ${c.floor}`);
    if (got.kind === 'execute') ref.executed(c, applier.firstResult.get(key(c))!);
  }
  for (const [k, n] of applier.executions) assert.equal(n, 1, `${k} executed ${n} times`);
  return applier;
}

test('at-most-once over client-like logs with retries and duplicates', () => {
  let duplicates = 0;
  let stales = 0;
  fc.assert(
    fc.property(fc.array(stepArb, { maxLength: 80 }), (steps) => {
      const log = buildLog(steps);
      const applier = checkAgainstReference(log);
      // Every distinct (clientId, seq) in the log executed exactly once: retries of a command
      // still above the floor are answered from the table, never executed again.
      const distinct = new Set(log.map(key));
      for (const k of distinct) assert.ok((applier.executions.get(k) ?? 0) <= 1);
      for (const o of applier.outcomes) {
        if (o.kind === 'duplicate') duplicates++;
        if (o.kind === 'stale') stales++;
      }
    }),
    { seed: SEED, numRuns: 500 },
  );
  assert.ok(duplicates > 100, `the generator produced duplicates (${duplicates})`);
  assert.ok(stales > 10, `the generator produced stale retries (${stales})`);
});

test('at-most-once over arbitrary (clientId, seq, floor) logs, against the reference', () => {
  const cmdArb = fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 12 }))
    .map(([c, s, f]) => command(c, s, f));
  fc.assert(
    fc.property(fc.array(cmdArb, { maxLength: 60 }), (log) => {
      checkAgainstReference(log);
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('a duplicate above the floor returns the original result; below the floor it is stale', () => {
  const a = new Applier();
  assert.deepEqual(a.apply(command(7, 1, 1)), { kind: 'execute' });
  assert.deepEqual(a.apply(command(7, 2, 1)), { kind: 'execute' });
  assert.deepEqual(a.apply(command(7, 3, 1)), { kind: 'execute' });
  // Retries of 1..3 while all are in flight: the original answers.
  assert.deepEqual(a.apply(command(7, 2, 1)), { kind: 'duplicate', result: 'r2' });
  assert.deepEqual(a.apply(command(7, 1, 1)), { kind: 'duplicate', result: 'r1' });
  // The client acknowledges everything below 3.
  assert.deepEqual(a.apply(command(7, 4, 3)), { kind: 'execute' });
  assert.deepEqual(a.apply(command(7, 1, 1)), { kind: 'stale' });
  assert.deepEqual(a.apply(command(7, 2, 1)), { kind: 'stale' });
  assert.deepEqual(a.apply(command(7, 3, 1)), { kind: 'duplicate', result: 'r3' });
  // Another client is unaffected by client 7's floor.
  assert.deepEqual(a.apply(command(8, 1, 1)), { kind: 'execute' });
  assert.equal(a.table.size, 2);
  assert.deepEqual(a.table.toJSON().sessions, [
    [7, 3, [[3, 'r3'], [4, 'r6']], 0],
    [8, 1, [[1, 'r10']], 0],
  ]);
});

test('toJSON/fromJSON round trip preserves every later decision', () => {
  fc.assert(
    fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), fc.nat(), (steps, cutRaw) => {
      const log = buildLog(steps);
      const cut = cutRaw % (log.length + 1);
      const original = new SessionTable<string>();
      const exec = (t: SessionTable<string>, c: Command, i: number) => {
        const o = t.check(c);
        if (o.kind === 'execute') t.record(c, `r${i}`);
        return o;
      };
      log.slice(0, cut).forEach((c, i) => exec(original, c, i));
      const json = JSON.parse(JSON.stringify(original.toJSON())) as ReturnType<SessionTable<string>['toJSON']>;
      const copy = SessionTable.fromJSON<string>(json);
      assert.equal(copy.size, original.size);
      assert.deepEqual(copy.toJSON(), original.toJSON());
      log.slice(cut).forEach((c, j) => {
        const i = cut + j;
        assert.deepEqual(exec(copy, c, i), exec(original, c, i), `decision for ${key(c)} after restore`);
      });
      assert.deepEqual(copy.toJSON(), original.toJSON());
    }),
    { seed: SEED, numRuns: 500 },
  );
});

// ---------------------------------------------------------------- registration, bound, expiry

const limits = (sessionsMax: number, sessionExpiryMs: number) => ({ sessionsMax, sessionExpiryMs });

test('registered ids come from the table (the same on every replica); unknown sessions are refused in stamped batches', () => {
  const a = new SessionTable<string>(limits(10, 1000));
  const b = new SessionTable<string>(limits(10, 1000));
  for (const t of [a, b]) t.advance(100);
  assert.deepEqual([a.register(), a.register()], [1, 2]);
  assert.deepEqual([b.register(), b.register()], [1, 2]);
  assert.deepEqual(a.check(command(1, 1, 1)), { kind: 'execute' });
  assert.deepEqual(a.check(command(99, 1, 1)), { kind: 'expired' }); // never registered
  // A legacy batch (no stamp) keeps the old rule: the first command creates its session.
  a.advance(undefined);
  assert.deepEqual(a.check(command(99, 1, 1)), { kind: 'execute' });
  a.record(command(99, 1, 1), 'r');
  assert.ok(a.has(99));
  a.advance(200);
  assert.deepEqual(a.check(command(98, 1, 1)), { kind: 'expired' });
});

test('a session idle for longer than sessionExpiryMs of stamped time expires when a later stamp passes it', () => {
  const t = new SessionTable<string>(limits(10, 1000));
  t.advance(10_000);
  const idle = t.register();
  const busy = t.register();
  t.advance(10_900);
  t.record(command(busy, 1, 1), 'b1'); // busy is active at 10,900
  assert.equal(t.advance(11_000), 11_000); // idle for exactly 1000: kept
  assert.ok(t.has(idle));
  t.advance(11_001); // idle for 1001: gone
  assert.equal(t.has(idle), false);
  assert.ok(t.has(busy));
  assert.deepEqual(t.check(command(idle, 1, 1)), { kind: 'expired' });
  // Time never goes back: an older stamp (a leader with a slow clock) changes nothing.
  assert.equal(t.advance(5_000), 11_001);
  assert.equal(t.timeMs, 11_001);
  t.advance(11_901);
  assert.equal(t.has(busy), false);
  assert.equal(t.size, 0);
});

test('beyond sessionsMax a registration evicts the least recently active session', () => {
  const t = new SessionTable<string>(limits(3, 1_000_000));
  t.advance(1);
  const [s1, s2, s3] = [t.register(), t.register(), t.register()];
  t.advance(2);
  t.record(command(s1, 1, 1), 'x'); // s1 is now the most recent; s2 the least
  assert.deepEqual(t.ids(), [s2, s3, s1]);
  const s4 = t.register();
  assert.deepEqual(t.ids(), [s3, s1, s4]);
  assert.deepEqual(t.check(command(s2, 1, 1)), { kind: 'expired' });
  t.advance(3);
  t.record(command(s3, 1, 1), 'y');
  const s5 = t.register();
  assert.deepEqual(t.ids(), [s4, s3, s5]); // s1 (active at 2) went; s4 registered at 2 stays before s3
  assert.equal(t.size, 3);
  assert.equal(new Set([s1, s2, s3, s4, s5]).size, 5); // ids are never reused
});

test('a lowered sessionsMax holds from the next registration: it evicts the least recently active down to the bound', () => {
  const t = new SessionTable<string>(limits(6, 1_000_000));
  t.advance(1);
  const ids = Array.from({ length: 6 }, () => t.register());
  t.setLimits(limits(2, 1_000_000));
  assert.equal(t.size, 6, 'nothing evicted before a registration');
  const next = t.register();
  assert.deepEqual(t.ids(), [ids[5], next], 'the table is at the new bound, the most recent kept');
  assert.deepEqual(t.check(command(ids[0]!, 1, 1)), { kind: 'expired' });
});

test('a retried command of an expired session is never executed a second time', () => {
  const t = new SessionTable<string>(limits(100, 500));
  let executions = 0;
  const apply = (stampMs: number, c: Command): SessionOutcome<string> => {
    t.advance(stampMs);
    const o = t.check(c);
    if (o.kind === 'execute') {
      executions++;
      t.record(c, `r${executions}`);
    }
    return o;
  };
  t.advance(1_000);
  const s = t.register();
  assert.equal(apply(1_100, command(s, 1, 1)).kind, 'execute');
  // The answer was lost; the client retries: while the session lives, the original answer.
  assert.deepEqual(apply(1_200, command(s, 1, 1)), { kind: 'duplicate', result: 'r1' });
  // Silence for longer than the expiry (other clients' batches move the stamped clock on)...
  apply(1_700, command(s + 1, 1, 1)); // an unknown session: refused, and it does not revive anything
  // ...then the retry again, and again: SESSION_EXPIRED each time, never a second execution.
  assert.deepEqual(apply(1_701, command(s, 1, 1)), { kind: 'expired' });
  assert.deepEqual(apply(9_999, command(s, 1, 1)), { kind: 'expired' });
  assert.deepEqual(apply(9_999, command(s, 2, 1)), { kind: 'expired' });
  assert.equal(executions, 1);
});

test('snapshot round trip keeps the clock, the id counter, the settings, activity order and expiry', () => {
  const t = new SessionTable<string>(limits(4, 1000));
  t.advance(50_000);
  const a = t.register();
  const b = t.register();
  t.advance(50_400);
  t.record(command(a, 1, 1), 'ra');
  const json = JSON.parse(JSON.stringify(t.toJSON())) as ReturnType<typeof t.toJSON>;
  const u = SessionTable.fromJSON<string>(json);
  assert.deepEqual(u.toJSON(), t.toJSON());
  assert.deepEqual(u.settings, { sessionsMax: 4, sessionExpiryMs: 1000 });
  assert.equal(u.timeMs, 50_400);
  assert.deepEqual(u.ids(), [b, a]);
  // Both tables make the same decisions from here on.
  for (const table of [t, u]) {
    table.advance(51_001); // b (active at 50,000) expires, a (50,400) stays
    assert.deepEqual(table.ids(), [a]);
    assert.equal(table.register(), b + 1);
    assert.deepEqual(table.check(command(a, 1, 1)), { kind: 'duplicate', result: 'ra' });
  }
  // The replica's own settings may replace the recorded ones.
  const v = SessionTable.fromJSON<string>(json, limits(1, 10));
  assert.deepEqual(v.settings, { sessionsMax: 1, sessionExpiryMs: 10 });
});

test('a snapshot from before registration (a bare array) loads: its sessions start their idle time at the first stamp', () => {
  const old = [[12345, 2, [[2, 'r2']]], [777, 0, []]] as Array<[number, number, Array<[number, string]>]>;
  const t = SessionTable.fromJSON<string>(old, limits(10, 1000));
  assert.equal(t.size, 2);
  t.advance(1_700_000_000_000); // the first stamp: nobody expires for having been idle "since 1970"
  assert.equal(t.size, 2);
  assert.deepEqual(t.check(command(12345, 2, 2)), { kind: 'duplicate', result: 'r2' });
  t.advance(1_700_000_001_001);
  assert.equal(t.size, 0);
});

test('settings are validated', () => {
  assert.throws(() => new SessionTable(limits(0, 1)), RangeError);
  assert.throws(() => new SessionTable(limits(1, 0)), RangeError);
  assert.throws(() => new SessionTable(limits(1.5, 10)), RangeError);
});
