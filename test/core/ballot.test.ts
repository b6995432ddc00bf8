import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BALLOT_ID_SPAN,
  MAX_REPLICA_ID,
  MAX_ROUND,
  ballotReplica,
  ballotRound,
  formatBallot,
  makeBallot,
  nextBallot,
} from '../../src/core/ballot.js';

const SEED = 0xba110;
const RUNS = 2000;

const round = fc.oneof(fc.integer({ min: 0, max: MAX_ROUND }), fc.constantFrom(0, 1, MAX_ROUND - 1, MAX_ROUND));
const smallRound = fc.integer({ min: 0, max: 50 });
const id = fc.oneof(fc.integer({ min: 1, max: MAX_REPLICA_ID }), fc.constantFrom(1, 2, MAX_REPLICA_ID));
/** Any valid ballot, including 0 ("no ballot"), which is below every real one. */
const anyBallot = fc.oneof(
  fc.constant(0),
  fc.tuple(round, id).map(([r, i]) => makeBallot(r, i)),
);

function lexLess(a: [number, number], b: [number, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

test('makeBallot is strictly increasing in (round, replicaId) lexicographic order', () => {
  fc.assert(
    fc.property(fc.tuple(round, id), fc.tuple(round, id), (a, b) => {
      const ba = makeBallot(a[0], a[1]);
      const bb = makeBallot(b[0], b[1]);
      assert.equal(ba < bb, lexLess(a, b));
      assert.equal(ba === bb, a[0] === b[0] && a[1] === b[1]);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  // The same on small, dense rounds, where collisions of the pair order and the number order would show.
  fc.assert(
    fc.property(fc.tuple(smallRound, id), fc.tuple(smallRound, id), (a, b) => {
      assert.equal(makeBallot(a[0], a[1]) < makeBallot(b[0], b[1]), lexLess(a, b));
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('every ballot is a safe integer above 0 (0 means "no ballot")', () => {
  fc.assert(
    fc.property(round, id, (r, i) => {
      const b = makeBallot(r, i);
      assert.ok(Number.isSafeInteger(b));
      assert.ok(b > 0);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  assert.ok(Number.isSafeInteger(makeBallot(MAX_ROUND, MAX_REPLICA_ID)));
});

test('ballotRound and ballotReplica invert makeBallot', () => {
  fc.assert(
    fc.property(round, id, (r, i) => {
      const b = makeBallot(r, i);
      assert.equal(ballotRound(b), r);
      assert.equal(ballotReplica(b), i);
      assert.equal(makeBallot(ballotRound(b), ballotReplica(b)), b);
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('nextBallot(above, id) is above, owned by id, and the smallest such ballot', () => {
  fc.assert(
    fc.property(anyBallot, id, (above, owner) => {
      if (ballotRound(above) === MAX_ROUND && owner <= ballotReplica(above)) {
        // Nothing owned by `owner` is above `above` within the safe range: refused, never wrapped.
        assert.throws(() => nextBallot(above, owner), RangeError);
        return;
      }
      const next = nextBallot(above, owner);
      assert.ok(next > above, `${formatBallot(next)} > ${formatBallot(above)}`);
      assert.equal(ballotReplica(next), owner);
      // Smallest: the previous ballot owned by `owner` is not above `above`.
      const r = ballotRound(next);
      if (r > 0) assert.ok(makeBallot(r - 1, owner) <= above);
      // And nothing owned by `owner` lies strictly between.
      assert.ok(r - ballotRound(above) <= 1);
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('nextBallot agrees with a brute-force search on small ballots', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 8 * BALLOT_ID_SPAN }), fc.integer({ min: 1, max: 6 }), (raw, owner) => {
      // Any integer works as `above`: 0, real ballots, and ballots of other owners alike.
      const above = raw;
      let expected = -1;
      for (let r = 0; r <= 10 && expected < 0; r++) {
        const b = makeBallot(r, owner);
        if (b > above) expected = b;
      }
      assert.equal(nextBallot(above, owner), expected);
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('concrete ballots: packing, order and formatting', () => {
  assert.equal(makeBallot(0, 1), 1);
  assert.equal(makeBallot(1, 1), BALLOT_ID_SPAN + 1);
  assert.equal(makeBallot(2, 3), 2 * BALLOT_ID_SPAN + 3);
  assert.ok(makeBallot(1, 1) > makeBallot(0, MAX_REPLICA_ID));
  assert.equal(nextBallot(0, 3), makeBallot(0, 3));
  assert.equal(nextBallot(makeBallot(0, 3), 3), makeBallot(1, 3));
  assert.equal(nextBallot(makeBallot(0, 3), 5), makeBallot(0, 5));
  assert.equal(nextBallot(makeBallot(0, 5), 3), makeBallot(1, 3));
  assert.equal(formatBallot(0), '(0)');
  assert.equal(formatBallot(makeBallot(7, 2)), '(7.2)');
});

test('out-of-range inputs throw RangeError', () => {
  const badRounds = [-1, MAX_ROUND + 1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER];
  for (const r of badRounds) assert.throws(() => makeBallot(r, 1), RangeError, `round ${r}`);
  const badIds = [0, -1, MAX_REPLICA_ID + 1, BALLOT_ID_SPAN, 1.5, Number.NaN];
  for (const i of badIds) assert.throws(() => makeBallot(0, i), RangeError, `id ${i}`);
  for (const i of badIds) assert.throws(() => nextBallot(0, i), RangeError, `nextBallot id ${i}`);
  // No ballot above the last round's last owner exists for a lower id.
  assert.throws(() => nextBallot(makeBallot(MAX_ROUND, MAX_REPLICA_ID), 1), RangeError);
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: MAX_ROUND + 1, max: Number.MAX_SAFE_INTEGER })),
      id,
      (r, i) => {
        assert.throws(() => makeBallot(r, i), RangeError);
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
  fc.assert(
    fc.property(round, fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: MAX_REPLICA_ID + 1 })), (r, i) => {
      assert.throws(() => makeBallot(r, i), RangeError);
    }),
    { seed: SEED, numRuns: 500 },
  );
});
