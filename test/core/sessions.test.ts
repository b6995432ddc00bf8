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
  assert.deepEqual(a.table.toJSON(), [
    [7, 3, [[3, 'r3'], [4, 'r6']]],
    [8, 1, [[1, 'r10']]],
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
