// Catch-up pacing: a follower asks again at once only when a reply taught it something (its chosen
// prefix advanced). A stale reply (a duplicate, or the answer to an older request that a newer one
// already covered) waits for the retry interval. Before, every non-empty reply started one more
// request, so request/reply chains only ever multiplied: sim seed 55228 ran away at ~10^6
// catch-up messages per 10 ms of simulated time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBallot } from '../../src/core/ballot.js';
import type { CatchupReplyMsg, Entry, Slot } from '../../src/core/types.js';
import { DEFAULT_CORE_OPTIONS } from '../../src/core/options.js';
import { setContracts } from '../../src/core/contracts.js';
import { Node, batch, cmd, ofType, options } from './harness.js';

setContracts(true);

const b = makeBallot(0, 1);

function reply(from: Slot, count: number, commitSlot: Slot): CatchupReplyMsg {
  const entries: Entry[] = [];
  for (let s = from; s < from + count; s++) entries.push({ slot: s, ballot: b, value: batch(cmd(1, s)), chosen: true });
  return { type: 'catchupReply', from: 1, to: 2, entries, commitSlot, snapshotSlot: 0 };
}

test('catch-up: a reply that advances the chosen prefix asks for more at once; a stale or duplicate one does not', () => {
  const n = new Node(options(2));
  // The leader says 12 slots are chosen; we hold none of them: ask from slot 1.
  const hb = n.receive({ type: 'heartbeat', from: 1, to: 2, ballot: b, commitSlot: 12, round: 1 }, 0);
  assert.deepEqual(ofType(hb.send, 'catchupRequest'), [{ type: 'catchupRequest', from: 2, to: 1, fromSlot: 1 }]);

  const first = n.receive(reply(1, 4, 12), 1);
  assert.equal(n.replica.status.chosenPrefix, 4);
  assert.deepEqual(ofType(first.send, 'catchupRequest'), [{ type: 'catchupRequest', from: 2, to: 1, fromSlot: 5 }], 'progress: ask again at once');

  // The same reply again (the network duplicated it, or a second request in flight was answered).
  const dup = n.receive(reply(1, 4, 12), 2);
  assert.deepEqual(ofType(dup.send, 'catchupRequest'), [], 'a duplicate reply starts no new request');
  // A reply to an older request, partly covering what we hold and nothing beyond it.
  const stale = n.receive(reply(3, 2, 12), 3);
  assert.deepEqual(ofType(stale.send, 'catchupRequest'), [], 'a stale reply starts no new request');

  // The pending request's answer still drives progress at once.
  const next = n.receive(reply(5, 4, 12), 4);
  assert.equal(n.replica.status.chosenPrefix, 8);
  assert.deepEqual(ofType(next.send, 'catchupRequest'), [{ type: 'catchupRequest', from: 2, to: 1, fromSlot: 9 }]);

  // If that request is lost, the retry interval brings another one (liveness is not left to replies).
  const quiet = n.tick(4 + DEFAULT_CORE_OPTIONS.retransmitMs - 1);
  assert.deepEqual(ofType(quiet.send, 'catchupRequest'), [], 'not before the retry interval');
  const retry = n.tick(4 + DEFAULT_CORE_OPTIONS.retransmitMs);
  assert.deepEqual(ofType(retry.send, 'catchupRequest'), [{ type: 'catchupRequest', from: 2, to: 1, fromSlot: 9 }]);
});

test('catch-up: duplicated replies never multiply the requests in flight', () => {
  // Every reply delivered twice (10% of messages are duplicated in the simulator; here all of
  // them): the number of requests sent stays one per reply that made progress.
  const n = new Node(options(2));
  let requests = ofType(n.receive({ type: 'heartbeat', from: 1, to: 2, ballot: b, commitSlot: 400, round: 1 }, 0).send, 'catchupRequest');
  let sent = requests.length;
  let now = 1;
  for (let round = 0; round < 200 && requests.length > 0; round++) {
    const next: typeof requests = [];
    for (const r of requests) {
      const count = Math.min(4, 400 - r.fromSlot + 1);
      for (let copy = 0; copy < 2; copy++) next.push(...ofType(n.receive(reply(r.fromSlot, count, 400), now++).send, 'catchupRequest'));
    }
    sent += next.length;
    requests = next;
    assert.ok(requests.length <= 1, `round ${round}: ${requests.length} requests in flight`);
  }
  assert.equal(n.replica.status.chosenPrefix, 400);
  assert.equal(sent, 100, 'one request per 4-slot reply');
});

// Sim seed 247275 (contracts on): an acceptor accepted slot 1 at ballot b1 and again, with the same
// value, at b2 > b1, both writes pending; catch-up then taught it the slot was chosen at b1, and it
// rewrote the cell at b1 in a third write. When the first write became durable its b1 vote left,
// rightly, but the invariant saw the cell at b1 held by the third, pending, write: "accepted(1)
// leaves before its write is durable". Holding the chosen value at any ballot, it now flags the cell
// chosen without a new write (as it already did at the same ballot).
test('catch-up of a value already held at another ballot: flagged chosen without a write; each vote leaves once its own write is durable', () => {
  const n = new Node(options(2));
  const b1 = makeBallot(1, 1);
  const b2 = makeBallot(2, 3);
  const value = batch(cmd(7, 1));
  n.receive({ type: 'accept', from: 1, to: 2, ballot: b1, slot: 1, value, commitSlot: 0 }, 0);
  n.receive({ type: 'accept', from: 3, to: 2, ballot: b2, slot: 1, value, commitSlot: 0 }, 1);
  const pendingBefore = n.unpersisted.length;
  const learned = n.receive({ type: 'catchupReply', from: 1, to: 2, entries: [{ slot: 1, ballot: b1, value, chosen: true }], commitSlot: 1, snapshotSlot: 0 }, 2);
  assert.equal(n.replica.status.chosenPrefix, 1);
  const votes: number[] = [];
  while (n.unpersisted.length > 0) votes.push(...ofType(n.persistNext(3).send, 'accepted').map((m) => m.ballot)); // contracts on
  assert.deepEqual(votes, [b1, b2], 'both votes leave, each once its write is durable');
  assert.equal(learned.persist.flatMap((op) => op.entries).length, 0, 'no rewrite of a value already held');
  assert.equal(n.durable.length, pendingBefore, 'the catch-up issued no persist op');
});
