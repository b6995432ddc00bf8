// Tests derived from the core's contracts (SAFETY.md and the ensures/invariant lines in
// replica.ts), one per postcondition or invariant, driving one Replica, or 2-3 by hand, with
// crafted messages and explicit times. Where a planted bug breaks a contract, the same input is
// shown to throw ContractViolation with contracts on, and not to throw with them off.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBallot } from '../../src/core/ballot.js';
import { CONTRACTS, ContractViolation, setContracts } from '../../src/core/contracts.js';
import { ConfigError, DEFAULT_CORE_OPTIONS, coreOptions, validateCoreOptions, type CoreOptions, type PlantedBug } from '../../src/core/options.js';
import { Replica } from '../../src/core/replica.js';
import type { AcceptMsg, Ballot, HeartbeatMsg, Message, PersistOp, PrepareMsg, ReplicaId, Slot, Value } from '../../src/core/types.js';
import { NOOP } from '../../src/core/values.js';
import { Cluster, Node, RANDOM, batch, cmd, ofType, options } from './harness.js';

setContracts(true);

const A: Value = batch(cmd(1, 1, 'A'));
const B: Value = batch(cmd(1, 1, 'B'));
const C: Value = batch(cmd(2, 1, 'C'));

function prepare(from: ReplicaId, to: ReplicaId, ballot: Ballot, opts: { fromSlot?: Slot; transfer?: boolean } = {}): PrepareMsg {
  return { type: 'prepare', from, to, ballot, fromSlot: opts.fromSlot ?? 1, transfer: opts.transfer ?? false };
}

function accept(from: ReplicaId, to: ReplicaId, ballot: Ballot, slot: Slot, value: Value, commitSlot: Slot = 0): AcceptMsg {
  return { type: 'accept', from, to, ballot, slot, value, commitSlot };
}

function heartbeat(from: ReplicaId, to: ReplicaId, ballot: Ballot, commitSlot: Slot, round = 1): HeartbeatMsg {
  return { type: 'heartbeat', from, to, ballot, commitSlot, round };
}

function types(msgs: readonly Message[]): string[] {
  return msgs.map((m) => m.type);
}

function entriesOf(ops: readonly PersistOp[]) {
  return ops.flatMap((op) => op.entries);
}

function assertViolation(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ContractViolation, `expected a ContractViolation, got ${String(e)}`);
    assert.equal(e.code, 'SYNOD_CONTRACT_VIOLATION');
    assert.match(e.message, pattern);
    return true;
  });
}

/** Runs `fn` with contracts off, then switches them back on whatever happens. */
function withContractsOff(fn: () => void): void {
  setContracts(false);
  try {
    fn();
  } finally {
    setContracts(true);
  }
}

// ================================================================ acceptor: never below the promise

test('accept: never accepted below the promised ballot (a reject, no write, no accepted reply)', () => {
  const high = makeBallot(5, 3);
  const low = makeBallot(1, 1);
  const n = new Node(options(2));
  const promised = n.receive(prepare(3, 2, high), 0);
  assert.deepEqual(promised.persist.map((op) => op.promised), [high]);
  const out = n.receive(accept(1, 2, low, 1, A), 1);
  assert.deepEqual(out.send, [{ type: 'reject', from: 2, to: 1, ballot: low, promised: high }]);
  assert.deepEqual(out.persist, [], 'nothing written for a refused accept');
  assert.equal(n.replica.entryAt(1), undefined);
  const later = n.persistAll(2);
  assert.deepEqual(types(later.send), ['promise'], 'the promise is released; no accepted reply ever appears');
  assert.equal(n.replica.status.promised, high);
});

test('accept: with plantedBug acceptor-ignores-promise and contracts on, an accept below the promise throws', () => {
  const high = makeBallot(5, 3);
  const low = makeBallot(1, 1);
  const n = new Node(options(2, { plantedBug: 'acceptor-ignores-promise' }));
  n.receive(prepare(3, 2, high), 0);
  assertViolation(() => n.receive(accept(1, 2, low, 1, A), 1), /accepted below the promised ballot/);
});

// ================================================================ acceptor: one value per (slot, ballot)

test('accept: a value accepted at a ballot is never changed at that ballot (second value not written, no reply)', () => {
  const b = makeBallot(1, 1);
  const n = new Node(options(2));
  const first = n.receive(accept(1, 2, b, 1, A), 0);
  assert.deepEqual(entriesOf(first.persist), [{ slot: 1, ballot: b, value: A }]);
  const second = n.receive(accept(1, 2, b, 1, B), 1);
  assert.deepEqual(second.persist, [], 'the second value is not written');
  assert.deepEqual(second.send, [], 'and gets no reply');
  assert.deepEqual(n.replica.entryAt(1)?.value, A);
  const durable = n.persistAll(2);
  assert.deepEqual(durable.send, [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: 1 }], 'one accepted, for the first value');
});

test('accept: with plantedBug acceptor-overwrites-same-ballot and contracts on, the same input throws', () => {
  const b = makeBallot(1, 1);
  const n = new Node(options(2, { plantedBug: 'acceptor-overwrites-same-ballot' }));
  n.receive(accept(1, 2, b, 1, A), 0);
  assertViolation(() => n.receive(accept(1, 2, b, 1, B), 1), /slot 1: changed the value accepted at ballot/);
});

test('accept: a retransmission of the same value is answered once durable, with no new write', () => {
  const b = makeBallot(1, 1);
  const n = new Node(options(2));
  n.receive(accept(1, 2, b, 1, A), 0);
  n.persistAll(1);
  const again = n.receive(accept(1, 2, b, 1, A), 2);
  assert.deepEqual(again.persist, []);
  assert.deepEqual(again.send, [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: 1 }], 'already durable: replied at once');
});

// ================================================================ persist before reply

test('persist before reply: an accepted (2b) leaves only after persisted(seq) of the op holding the accept', () => {
  const b = makeBallot(1, 1);
  const n = new Node(options(2));
  const out1 = n.receive(accept(1, 2, b, 1, A), 0);
  const out2 = n.receive(accept(1, 2, b, 2, B), 0);
  assert.deepEqual(ofType([...out1.send, ...out2.send], 'accepted'), [], 'no vote before durability');
  assert.deepEqual(out1.persist, [{ seq: 1, promised: b, entries: [{ slot: 1, ballot: b, value: A }], chosenPrefix: null }]);
  assert.deepEqual(out2.persist, [{ seq: 2, promised: null, entries: [{ slot: 2, ballot: b, value: B }], chosenPrefix: null }]);
  const after1 = n.persistNext(1);
  assert.deepEqual(after1.send, [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: 1 }], 'op 1 durable: slot 1 only');
  const after2 = n.persistNext(2);
  assert.deepEqual(after2.send, [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: 2 }]);
});

test('persist before reply: a promise (1b) leaves only after its promised ballot, and the accepts it reports, are durable', () => {
  const b1 = makeBallot(0, 1);
  const b3 = makeBallot(1, 3);
  const n = new Node(options(2));
  n.receive(accept(1, 2, b1, 1, A), 0); // op 1, not yet durable
  const prep = n.receive(prepare(3, 2, b3), 300); // after the lease: op 2 holds the promise
  assert.deepEqual(prep.send, [], 'no promise before the promise is durable');
  assert.deepEqual(prep.persist, [{ seq: 2, promised: b3, entries: [], chosenPrefix: null }]);
  const op1 = n.persistNext(301);
  assert.deepEqual(types(op1.send), ['accepted'], 'op 1 releases its accepted; the promise still waits for op 2');
  const op2 = n.persistNext(302);
  assert.deepEqual(op2.send, [
    {
      type: 'promise',
      from: 2,
      to: 3,
      ballot: b3,
      fromSlot: 1,
      entries: [{ slot: 1, ballot: b1, value: A }],
      chosenPrefix: 0,
      logStart: 1,
    },
  ]);
  // A repeated prepare at the same, durable, ballot is answered at once without a new write.
  const again = n.receive(prepare(3, 2, b3), 303);
  assert.deepEqual(again.persist, []);
  assert.deepEqual(types(again.send), ['promise']);
});

test('persist before reply: with plantedBug reply-before-persist and contracts on, an accept throws', () => {
  const n = new Node(options(2, { plantedBug: 'reply-before-persist' }));
  assertViolation(() => n.receive(accept(1, 2, makeBallot(1, 1), 1, A), 0), /accept reply emitted before the accept was durable/);
});

// ================================================================ the leader's own vote

/** Elects node 1 of a fresh 3-node cluster with node 2's promise; stops before slot 1 (its no-op) is voted on. */
function leaderWithPendingNoop(extra: Partial<CoreOptions> = {}): Cluster {
  const c = new Cluster([1, 2, 3], extra);
  c.step(1, (r, now) => r.campaign(now));
  c.persistAll(1);
  c.deliver((m) => m.type === 'prepare' && m.to === 2);
  c.persistAll(2);
  c.deliver((m) => m.type === 'promise');
  assert.equal(c.node(1).replica.status.role, 'leader');
  assert.equal(c.node(1).unpersisted.length, 1, "the leader's own accept of slot 1 is not durable yet");
  return c;
}

test("leader: its own vote counts only once its own write is durable (follower vote + own durable vote = quorum)", () => {
  const c = leaderWithPendingNoop();
  const b = c.node(1).replica.status.ballot;
  assert.deepEqual(
    ofType(c.net, 'accept').map((m) => [m.to, m.slot, m.ballot, m.value.kind]),
    [
      [2, 1, b, 'noop'],
      [3, 1, b, 'noop'],
    ],
    'the leader sends its 2a before its own write completes',
  );
  c.deliver((m) => m.type === 'accept' && m.to === 2);
  c.persistAll(2);
  c.deliver((m) => m.type === 'accepted');
  assert.deepEqual(c.committed.get(1), [], "one follower vote and the leader's non-durable write: no commit");
  assert.equal(c.node(1).replica.status.chosenPrefix, 0);
  const out = c.persistAll(1);
  assert.deepEqual(out.committed, [{ slot: 1, value: NOOP }], 'committed once its own write is durable');
});

test('leader: its own durable vote alone is not a quorum of 3', () => {
  const c = leaderWithPendingNoop();
  const out = c.persistAll(1);
  assert.deepEqual(out.committed, []);
  c.deliver((m) => m.type === 'accept' && m.to === 3);
  c.persistAll(3);
  c.deliver((m) => m.type === 'accepted');
  assert.deepEqual(c.committed.get(1), [{ slot: 1, value: NOOP }]);
});

// ================================================================ reads

test('reads: a new leader serves nothing until a slot of its own ballot is chosen', () => {
  const c = leaderWithPendingNoop();
  c.clear();
  c.step(1, (r, now) => r.read(7, 'linearizable', now));
  c.step(1, (r, now) => r.read(8, 'lease', now));
  // Every heartbeat round (the election's, then one for both reads: read rounds go one at a time,
  // so the reads wait for round 1 to be confirmed) is acknowledged by a quorum...
  c.deliver((m) => m.type === 'heartbeat' && m.to === 2);
  assert.deepEqual(
    ofType(c.out(2).send, 'heartbeatAck').map((m) => m.round),
    [1],
  );
  c.deliver((m) => m.type === 'heartbeatAck');
  c.deliver((m) => m.type === 'heartbeat' && m.to === 2 && m.round === 2);
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads, [], '...but slot 1 is not chosen: no read is granted, lease or not');
  // Slot 1 (the leader's no-op at its own ballot) commits.
  c.persistAll(1);
  c.deliver((m) => m.type === 'accept' && m.to === 2);
  c.persistAll(2);
  c.deliver((m) => m.type === 'accepted');
  assert.deepEqual(c.committed.get(1), [{ slot: 1, value: NOOP }]);
  assert.deepEqual(c.out(1).reads, [], 'chosen, but no quorum round since: still nothing');
  // The next heartbeat round, acknowledged by a quorum, releases both reads at the new commit point.
  c.nowMs = 50;
  c.tick(1);
  c.deliver((m) => m.type === 'heartbeat' && m.to === 2);
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads, [
    { readId: 7, slot: 1 },
    { readId: 8, slot: 1 },
  ]);
  assert.deepEqual(c.out(1).readRefusals, []);
});

test('reads: read-index waits for a quorum ack of a heartbeat round started after the read arrived', () => {
  const c = new Cluster();
  c.elect(1);
  c.clear();
  c.nowMs = 50;
  c.tick(1); // round 2 goes out before the read
  const round2 = c.take((m) => m.type === 'heartbeat');
  assert.deepEqual(round2.map((m) => (m as HeartbeatMsg).round), [2, 2]);
  c.nowMs = 60;
  c.step(1, (r, now) => r.read(1, 'linearizable', now));
  assert.deepEqual(c.out(1).reads, []);
  assert.deepEqual(ofType(c.net, 'heartbeat'), [], 'round 2 is outstanding: the read waits for the next round (read rounds go one at a time)');
  // Round 2 (sent before the read) gets a quorum: not enough.
  c.net.push(...round2);
  c.deliver((m) => m.type === 'heartbeat' && (m as HeartbeatMsg).round === 2);
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads, [], 'a round that started before the read does not confirm it');
  const round3 = ofType(c.net, 'heartbeat');
  assert.deepEqual(round3.map((m) => [m.to, m.round]), [[2, 3], [3, 3]], 'round 2 confirmed: the read round goes out now');
  // Round 3, acknowledged by one follower (with the leader, a quorum): granted at the commit point.
  c.deliver((m) => m.type === 'heartbeat' && m.to === 2);
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads, [{ readId: 1, slot: 1 }]);
});

test('reads: a lease read is granted at once while the lease holds (heartbeat send time + leaseMs - clockDriftMs), not after', () => {
  const leaseMs = 200;
  const clockDriftMs = 30;
  const c = new Cluster([1, 2, 3], { leaseMs, clockDriftMs, heartbeatIntervalMs: 50, electionTimeoutMinMs: 300 });
  c.elect(1); // round 1 sent at 0 and acknowledged: lease until 170
  c.clear();
  c.nowMs = leaseMs - clockDriftMs - 1;
  c.step(1, (r, now) => r.read(1, 'lease', now));
  assert.deepEqual(c.out(1).reads, [{ readId: 1, slot: 1 }]);
  assert.deepEqual(ofType(c.out(1).send, 'heartbeat'), [], 'no round needed under the lease');
  c.nowMs = leaseMs - clockDriftMs;
  c.step(1, (r, now) => r.read(2, 'lease', now));
  assert.deepEqual(c.out(1).reads, [{ readId: 1, slot: 1 }], 'lease expired: read 2 is not granted at once');
  assert.equal(ofType(c.out(1).send, 'heartbeat').length, 2, 'it falls back to a read-index round');
  c.deliver((m) => m.type === 'heartbeat');
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads.map((r) => r.readId), [1, 2], 'and is granted by that round');
  // The lease counts from when the acknowledged heartbeat was *sent*, not when the ack arrived.
  c.clear();
  c.nowMs = 220; // the next heartbeat is due (read 2's round went out at 170)
  c.tick(1);
  assert.deepEqual(ofType(c.out(1).send, 'heartbeat').map((m) => m.round), [3, 3], 'round 3 sent at 220');
  c.nowMs = 330; // acknowledged late
  c.deliver((m) => m.type === 'heartbeat');
  c.deliver((m) => m.type === 'heartbeatAck');
  c.nowMs = 220 + leaseMs - clockDriftMs - 1;
  c.step(1, (r, now) => r.read(3, 'lease', now));
  assert.deepEqual(c.out(1).reads, [{ readId: 3, slot: 1 }]);
  c.nowMs = 220 + leaseMs - clockDriftMs;
  c.step(1, (r, now) => r.read(4, 'lease', now));
  assert.deepEqual(c.out(1).reads, [{ readId: 3, slot: 1 }], 'not at send time + lease - drift, however late the ack');
});

test(
  'leases: an explicit campaign() does not promise its own ballot inside a lease it honours for others (no stale lease read)',
  () => {
    const c = new Cluster();
    c.elect(1); // t=0: nodes 2 and 3 heard from leader 1
    // t=260: node 1's heartbeat reaches node 3 only; node 3's ack gives node 1 a lease until 485.
    c.nowMs = 260;
    c.tick(1);
    c.take((m) => m.type === 'heartbeat' && m.to === 2);
    c.deliver((m) => m.type === 'heartbeat' && m.to === 3);
    c.deliver((m) => m.type === 'heartbeatAck');
    // t=270: node 3, which heard from the leader 10 ms ago, is told to campaign (RSL's attempt promotion).
    c.nowMs = 270;
    c.step(3, (r, now) => r.campaign(now));
    const toOthers = (m: Message) => m.to !== 1;
    for (let i = 0; i < 10; i++) {
      c.persistAll(2);
      c.persistAll(3);
      c.deliver(toOthers);
    }
    const x = cmd(42, 1, 'X');
    if (c.node(3).replica.status.role === 'leader') {
      c.nowMs = 275;
      c.step(3, (r, now) => r.propose([x], now));
      for (let i = 0; i < 10; i++) {
        c.persistAll(2);
        c.persistAll(3);
        c.deliver(toOthers);
      }
    }
    const xSlot = c.committed.get(3)!.find((e) => e.value.kind === 'batch' && e.value.commands[0]!.clientId === 42)?.slot;
    // t=280: a lease read at node 1 must not miss a write committed before it was asked.
    c.nowMs = 280;
    c.clear(1);
    c.step(1, (r, now) => r.read(99, 'lease', now));
    for (const grant of c.out(1).reads) {
      assert.ok(xSlot === undefined || grant.slot >= xSlot, `lease read granted at slot ${grant.slot}, but X was committed at slot ${xSlot} by node 3 (role ${c.node(3).replica.status.role})`);
    }
    assert.notEqual(c.node(3).replica.status.role, 'leader', 'node 3 promised itself inside the lease');
  },
);

// ================================================================ leases at acceptors

test('leases: a follower that heard from the leader within leaseMs does not promise a higher ballot', () => {
  const { leaseMs } = DEFAULT_CORE_OPTIONS;
  const leader = makeBallot(0, 1);
  const rival = makeBallot(1, 3);
  const n = new Node(options(2));
  n.receive(heartbeat(1, 2, leader, 0), 100);
  const inside = n.receive(prepare(3, 2, rival), 100 + leaseMs - 1);
  assert.deepEqual(inside.send, [], 'no promise (and no reject: silence)');
  assert.deepEqual(inside.persist, [], 'the promised ballot does not move');
  assert.equal(n.replica.status.promised, 0);
  const after = n.receive(prepare(3, 2, rival), 100 + leaseMs);
  assert.deepEqual(after.persist.map((op) => op.promised), [rival]);
  assert.deepEqual(types(n.persistAll().send), ['promise']);
});

test('leases: a transfer prepare is promised inside the lease', () => {
  const { leaseMs } = DEFAULT_CORE_OPTIONS;
  const n = new Node(options(2));
  n.receive(heartbeat(1, 2, makeBallot(0, 1), 0), 100);
  const out = n.receive(prepare(3, 2, makeBallot(1, 3), { transfer: true }), 100 + leaseMs - 1);
  assert.deepEqual(out.persist.map((op) => op.promised), [makeBallot(1, 3)]);
  const sent = n.persistAll().send;
  assert.deepEqual(types(sent), ['promise']);
  assert.equal(sent[0]!.to, 3);
});

test('leases: a replica constructed from durable state promises nothing for leaseMs, transfer or not', () => {
  const { leaseMs } = DEFAULT_CORE_OPTIONS;
  const start = 1000;
  const b = makeBallot(1, 3);
  // A fresh replica (no durable state) promises at once...
  const fresh = new Node(options(2), start);
  assert.deepEqual(fresh.receive(prepare(3, 2, b), start).persist.map((op) => op.promised), [b]);
  // ...a restarted one does not, for one lease.
  const restarted = new Node(options(2), start, []);
  for (const transfer of [false, true]) {
    const out = restarted.receive(prepare(3, 2, b, { transfer }), start + leaseMs - 1);
    assert.deepEqual(out.send, [], `transfer=${transfer}: silent`);
    assert.deepEqual(out.persist, []);
  }
  assert.equal(restarted.replica.status.promised, 0);
  const out = restarted.receive(prepare(3, 2, b), start + leaseMs);
  assert.deepEqual(out.persist.map((op) => op.promised), [b]);
});

// ================================================================ the pipeline window

test('window: an accept beyond chosenPrefix + pipelineWindowSlots is refused (no write, no reply) and triggers catch-up', () => {
  const W = 4;
  const b = makeBallot(0, 1);
  const n = new Node(options(2, { pipelineWindowSlots: W }));
  const beyond = n.receive(accept(1, 2, b, W + 1, A), 0);
  assert.deepEqual(entriesOf(beyond.persist), [], 'nothing written');
  assert.deepEqual(beyond.send, [{ type: 'catchupRequest', from: 2, to: 1, fromSlot: 1 }]);
  assert.deepEqual(ofType(n.persistAll(1).send, 'accepted'), [], 'and no accepted, even once durable');
  assert.equal(n.replica.entryAt(W + 1), undefined);
  const edge = n.receive(accept(1, 2, b, W, A), 2);
  assert.deepEqual(entriesOf(edge.persist), [{ slot: W, ballot: b, value: A }], 'the last slot inside the window is accepted');
  assert.deepEqual(n.persistAll(3).send, [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: W }]);
});

test('withdrawQueued: takes back only queued commands, keeps the rest in order, and stops scanning once it has atMost', () => {
  const W = 2;
  const c = leaderWithPendingNoop({ pipelineWindowSlots: W, batchCommandsMax: 1 });
  const leader = c.node(1).replica;
  const total = 200;
  for (let i = 1; i <= total; i++) c.step(1, (r, now) => r.propose([cmd(9, i)], now));
  const queued = leader.status.queuedCommands;
  assert.equal(queued, total - (W - 1), 'the window is full: the rest wait in the queue');
  const firstQueued = total - queued + 1;
  // The commands whose callers stopped waiting: 3 near the front of the queue (deadlines follow
  // arrival; one between them still waits) and one in a slot (seq 1), which must never be touched.
  const gone = new Set([1, firstQueued, firstQueued + 2, firstQueued + 3]);
  let looked = 0;
  const withdrawn = leader.withdrawQueued((command) => {
    looked++;
    return gone.has(command.seq);
  }, gone.size - 1);
  assert.deepEqual(withdrawn.map((w) => w.seq), [firstQueued, firstQueued + 2, firstQueued + 3]);
  assert.equal(looked, 4, 'the scan stopped once it had found as many as it could be looking for');
  assert.equal(leader.status.queuedCommands, queued - 3);
  // Unbounded, as before: a full scan, the order of the rest kept (they are proposed in order).
  looked = 0;
  const more = leader.withdrawQueued((command) => {
    looked++;
    return command.seq === total || command.seq === 1;
  });
  assert.deepEqual(more.map((w) => w.seq), [total]);
  assert.equal(looked, queued - 3);
  assert.equal(leader.status.queuedCommands, queued - 4);
  for (let i = 0; i < 100 && leader.status.queuedCommands + leader.status.inflightSlots > 0; i++) {
    c.stabilize(1000);
    c.nowMs += DEFAULT_CORE_OPTIONS.heartbeatIntervalMs;
    c.tick(1);
  }
  const proposed = c.committed.get(1)!.flatMap((e) => (e.value.kind === 'batch' ? e.value.commands.map((x) => x.seq) : []));
  const expected = Array.from({ length: total }, (_, i) => i + 1).filter((seq) => seq === 1 || !gone.has(seq)).filter((seq) => seq !== total);
  assert.deepEqual(proposed, expected, 'every command not withdrawn committed once, in arrival order');
});

test('window: a leader never has more than W slots beyond its chosen prefix in flight, however many commands', () => {
  const W = 4;
  const total = 12;
  const c = leaderWithPendingNoop({ pipelineWindowSlots: W, batchCommandsMax: 1 });
  const leader = c.node(1).replica;
  let maxSent = 0;
  let checks = 0;
  c.onOutput = (id, out) => {
    if (id !== 1) return;
    checks++;
    const status = leader.status;
    assert.ok(status.inflightSlots <= W, `${status.inflightSlots} slots in flight`);
    for (const m of ofType(out.send, 'accept')) {
      assert.ok(m.slot <= status.chosenPrefix + W, `accept for slot ${m.slot} with chosen prefix ${status.chosenPrefix}`);
      maxSent = Math.max(maxSent, m.slot);
    }
  };
  for (let i = 1; i <= total; i++) c.step(1, (r, now) => r.propose([cmd(9, i)], now));
  assert.deepEqual(
    [...new Set(ofType(c.net, 'accept').map((m) => m.slot))],
    [1, 2, 3, 4],
    'with nothing chosen: exactly slots 1..W',
  );
  assert.equal(leader.status.inflightSlots, W);
  assert.equal(leader.status.queuedCommands, total - (W - 1));
  // Drive to completion: deliver everything, and let the leader retransmit what was refused.
  for (let i = 0; i < 50 && c.committed.get(1)!.length < total + 1; i++) {
    c.stabilize();
    c.nowMs += DEFAULT_CORE_OPTIONS.heartbeatIntervalMs;
    c.tick(1);
  }
  assert.ok(checks > 10);
  assert.equal(maxSent, total + 1);
  assert.deepEqual(
    c.committed.get(1)!.map((e) => e.slot),
    Array.from({ length: total + 1 }, (_, i) => i + 1),
    'all commands committed in the end, W at a time',
  );
});

test(
  'window: an accept at the window edge is taken when the same message commits the slots that make room',
  () => {
    const W = 4;
    const b = makeBallot(0, 1);
    const n = new Node(options(2, { pipelineWindowSlots: W }));
    for (let slot = 1; slot <= W; slot++) n.receive(accept(1, 2, b, slot, batch(cmd(1, slot))), 0);
    n.persistAll(0);
    // The leader chose slot 1 and proposes slot W + 1, telling us so in the same message.
    const out = n.receive(accept(1, 2, b, W + 1, A, 1), 1);
    assert.deepEqual(out.committed.map((e) => e.slot), [1], 'the notice commits slot 1 (accepted at this ballot)');
    assert.deepEqual(entriesOf(out.persist), [{ slot: W + 1, ballot: b, value: A }], 'so slot W + 1 is inside the window');
    assert.deepEqual(ofType(out.send, 'catchupRequest'), []);
  },
);

// ================================================================ commit notices

test('commit notice: a slot is chosen only where the follower accepted at the notice ballot; otherwise it is fetched', () => {
  const b1 = makeBallot(0, 1);
  const b3 = makeBallot(1, 3);
  // Same ballot: the notice commits the accepted value.
  const same = new Node(options(2));
  same.receive(accept(1, 2, b1, 1, A), 0);
  same.persistAll(0);
  const sameOut = same.receive(heartbeat(1, 2, b1, 1), 1);
  assert.deepEqual(sameOut.committed, [{ slot: 1, value: A }]);
  assert.deepEqual(ofType(sameOut.send, 'catchupRequest'), []);
  // Older ballot: a notice from the leader of b3 must not commit the value accepted at b1.
  const n = new Node(options(2));
  n.receive(accept(1, 2, b1, 1, A), 0);
  n.persistAll(0);
  const out = n.receive(heartbeat(3, 2, b3, 1), 1);
  assert.deepEqual(out.committed, [], 'not applied');
  assert.equal(n.replica.status.chosenPrefix, 0);
  assert.deepEqual(ofType(out.send, 'catchupRequest'), [{ type: 'catchupRequest', from: 2, to: 3, fromSlot: 1 }]);
  // The chosen value, fetched, is what gets applied.
  const fetched = n.receive({ type: 'catchupReply', from: 3, to: 2, entries: [{ slot: 1, ballot: b3, value: B, chosen: true }], commitSlot: 1, snapshotSlot: 0 }, 2);
  assert.deepEqual(fetched.committed, [{ slot: 1, value: B }]);
  assert.deepEqual(entriesOf(fetched.persist), [{ slot: 1, ballot: b3, value: B, chosen: true }]);
});

// ================================================================ Phase 1 recovery

/**
 * Acceptor 2 accepted A at slot 1 and C at slot 3 under ballot (1.1); acceptor 3 accepted B at
 * slot 1 under the higher ballot (2.2). Node 1 campaigns, is rejected (and so learns the ballots),
 * campaigns again above them, and completes Phase 1 with both promises.
 */
function recoveryScenario(bug?: PlantedBug): { accepts: AcceptMsg[]; ballot: Ballot } {
  const b11 = makeBallot(1, 1);
  const b22 = makeBallot(2, 2);
  const c = new Cluster();
  if (bug) c.nodes.set(1, new Node(options(1, { plantedBug: bug }), 0));
  c.node(2).receive(accept(1, 2, b11, 1, A), 0);
  c.node(2).receive(accept(1, 2, b11, 3, C), 0);
  c.node(3).receive(accept(2, 3, b22, 1, B), 0);
  c.persistAll(2);
  c.persistAll(3);
  c.nowMs = 1000; // the acceptors' leases have lapsed
  c.step(1, (r, now) => r.campaign(now));
  c.deliver((m) => m.type === 'prepare');
  assert.deepEqual(ofType(c.net, 'reject').map((m) => m.promised), [b11, b22]);
  c.deliver();
  assert.equal(c.node(1).replica.status.role, 'follower', 'rejected: it stepped down');
  c.step(1, (r, now) => r.campaign(now));
  const ballot = c.node(1).replica.status.ballot;
  assert.equal(ballot, makeBallot(3, 1), 'the next ballot above every one it heard of');
  c.deliver((m) => m.type === 'prepare');
  c.persistAll(2);
  c.persistAll(3);
  c.deliver((m) => m.type === 'promise'); // both promises in; the candidate's own not durable yet
  assert.equal(c.node(1).replica.status.role, 'candidate');
  c.persistAll(1);
  assert.equal(c.node(1).replica.status.role, 'leader');
  return { accepts: ofType(c.net, 'accept').filter((m) => m.to === 2), ballot };
}

test('recovery: the new leader re-proposes the highest-ballot value reported for each slot and fills holes with no-ops', () => {
  const { accepts, ballot } = recoveryScenario();
  assert.deepEqual(
    accepts.map((m) => [m.slot, m.ballot, m.value]),
    [
      [1, ballot, B],
      [2, ballot, NOOP],
      [3, ballot, C],
    ],
  );
});

test('recovery: with plantedBug leader-skips-recovery the leader ignores what the promises reported', () => {
  const { accepts, ballot } = recoveryScenario('leader-skips-recovery');
  assert.deepEqual(
    accepts.map((m) => [m.slot, m.ballot, m.value]),
    [[1, ballot, NOOP]],
    'B at slot 1 (possibly chosen) is overwritten by a no-op, and slot 3 is forgotten',
  );
});

test('restart recovery: promised = max(durable promised, highest ballot among durable entries)', () => {
  const entryBallot = makeBallot(4, 2);
  const ops = (promised: Ballot): PersistOp[] => [
    { seq: 1, promised, entries: [], chosenPrefix: null },
    { seq: 2, promised: null, entries: [{ slot: 1, ballot: entryBallot, value: A }], chosenPrefix: null },
  ];
  // The log's ballot is higher than the metadata's (the metadata write was lost or older).
  const n = new Node(options(1), 0, ops(makeBallot(1, 1)));
  assert.equal(n.replica.status.promised, entryBallot);
  const lower = makeBallot(3, 3);
  const out = n.receive(prepare(3, 1, lower), 1000);
  assert.deepEqual(out.send, [{ type: 'reject', from: 1, to: 3, ballot: lower, promised: entryBallot }]);
  const acc = n.receive(accept(2, 1, makeBallot(3, 2), 2, B), 1001);
  assert.deepEqual(types(acc.send), ['reject']);
  assert.deepEqual(acc.persist, []);
  // The metadata's ballot is higher than the log's.
  const m = new Node(options(1), 0, ops(makeBallot(6, 3)));
  assert.equal(m.replica.status.promised, makeBallot(6, 3));
  // No metadata at all.
  const bare = new Node(options(1), 0, [ops(0)[1]!]);
  assert.equal(bare.replica.status.promised, entryBallot);
});

// ================================================================ refusals and options

test('proposals and reads at a non-leader are refused with NOT_LEADER and a leader hint', () => {
  const n = new Node(options(2));
  const c1 = cmd(5, 1);
  const unknown = n.step((r, now) => r.propose([c1], now), 0);
  assert.deepEqual(unknown.rejected, [{ commands: [c1], reason: 'NOT_LEADER', leaderHint: null }]);
  n.receive(heartbeat(3, 2, makeBallot(0, 3), 0), 1);
  const known = n.step((r, now) => r.propose([c1], now), 2);
  assert.deepEqual(known.rejected, [{ commands: [c1], reason: 'NOT_LEADER', leaderHint: 3 }]);
  assert.deepEqual(known.send, [], 'nothing proposed');
  const read = n.step((r, now) => r.read(4, 'linearizable', now), 3);
  assert.deepEqual(read.readRefusals, [{ readId: 4, reason: 'NOT_LEADER', leaderHint: 3 }]);
  // A candidate is not a leader either.
  const cand = new Node(options(1));
  cand.step((r, now) => r.campaign(now), 0);
  assert.deepEqual(cand.step((r, now) => r.propose([c1], now), 1).rejected, [{ commands: [c1], reason: 'NOT_LEADER', leaderHint: null }]);
});

test('validateCoreOptions rejects bad options with a ConfigError naming the option', () => {
  const base = { id: 1, members: [1, 2, 3] };
  const cases: Array<[Partial<CoreOptions>, string]> = [
    [{ id: 0 }, 'id'],
    [{ id: 1024 }, 'id'],
    [{ id: 1.5 }, 'id'],
    [{ members: [] }, 'members'],
    [{ members: [1, 0] }, 'member id'],
    [{ members: [1, 2, 2] }, 'members'],
    [{ pipelineWindowSlots: 0 }, 'pipelineWindowSlots'],
    [{ pipelineWindowSlots: 2.5 }, 'pipelineWindowSlots'],
    [{ batchCommandsMax: 0 }, 'batchCommandsMax'],
    [{ batchBytesMax: -1 }, 'batchBytesMax'],
    [{ heartbeatIntervalMs: 0 }, 'heartbeatIntervalMs'],
    [{ electionTimeoutMinMs: 0 }, 'electionTimeoutMinMs'],
    [{ leaseMs: 0 }, 'leaseMs'],
    [{ retransmitMs: 0 }, 'retransmitMs'],
    [{ catchupEntriesMax: 0 }, 'catchupEntriesMax'],
    [{ batchDelayMs: -1 }, 'batchDelayMs'],
    [{ batchDelayMs: Number.NaN }, 'batchDelayMs'],
    [{ clockDriftMs: -1 }, 'clockDriftMs'],
    [{ electionTimeoutMinMs: 500, electionTimeoutMaxMs: 400 }, 'electionTimeoutMaxMs'],
    [{ electionTimeoutMinMs: 200, electionTimeoutMaxMs: 400, leaseMs: 250 }, 'electionTimeoutMinMs'],
    [{ heartbeatIntervalMs: 126, leaseMs: 250 }, 'heartbeatIntervalMs'],
    [{ clockDriftMs: 250, leaseMs: 250 }, 'clockDriftMs'],
  ];
  for (const [bad, name] of cases) {
    const opts = { ...DEFAULT_CORE_OPTIONS, ...base, ...bad } as CoreOptions;
    assert.throws(
      () => validateCoreOptions(opts),
      (e: unknown) => e instanceof ConfigError && e.code === 'SYNOD_BAD_CONFIG' && e.message.includes(name),
      `${JSON.stringify(bad)} should be refused naming ${name}`,
    );
    assert.throws(() => coreOptions({ ...base, ...bad }), ConfigError);
    assert.throws(() => new Replica(opts, RANDOM, 0), ConfigError, 'the Replica validates its options too');
  }
  // The defaults, and the boundaries of each relation, are accepted.
  assert.doesNotThrow(() => coreOptions(base));
  assert.doesNotThrow(() => coreOptions({ ...base, heartbeatIntervalMs: 125, leaseMs: 250 }));
  assert.doesNotThrow(() => coreOptions({ ...base, electionTimeoutMinMs: 250, electionTimeoutMaxMs: 250, leaseMs: 250 }));
  assert.doesNotThrow(() => coreOptions({ ...base, clockDriftMs: 0, batchDelayMs: 0 }));
});

// ================================================================ the switch

test('contracts off: planted-bug inputs do not throw, and the bug is visible in the outputs', () => {
  assert.equal(CONTRACTS, true);
  withContractsOff(() => {
    assert.equal(CONTRACTS, false);
    const b = makeBallot(1, 1);
    // acceptor-overwrites-same-ballot: the second value replaces the first.
    const over = new Node(options(2, { plantedBug: 'acceptor-overwrites-same-ballot' }));
    over.receive(accept(1, 2, b, 1, A), 0);
    const second = over.receive(accept(1, 2, b, 1, B), 1);
    assert.deepEqual(entriesOf(second.persist), [{ slot: 1, ballot: b, value: B }]);
    assert.deepEqual(over.replica.entryAt(1)?.value, B);
    // reply-before-persist: the accepted leaves with its write still pending.
    const early = new Node(options(2, { plantedBug: 'reply-before-persist' }));
    const out = early.receive(accept(1, 2, b, 1, A), 0);
    assert.deepEqual(ofType(out.send, 'accepted'), [{ type: 'accepted', from: 2, to: 1, ballot: b, slot: 1 }]);
    assert.equal(out.persist.length, 1);
    assert.equal(early.unpersisted.length, 1, 'not durable yet');
    // acceptor-ignores-promise: a value below the promise is written and voted for.
    const ign = new Node(options(2, { plantedBug: 'acceptor-ignores-promise' }));
    ign.receive(prepare(3, 2, makeBallot(5, 3)), 0);
    const low = ign.receive(accept(1, 2, b, 1, A), 1);
    assert.deepEqual(entriesOf(low.persist), [{ slot: 1, ballot: b, value: A }]);
    assert.deepEqual(types(low.send), []);
  });
  assert.equal(CONTRACTS, true, 'switch restored');
});

test('reads: read-index rounds are batched: fifty reads during an outstanding round cost one more round, and all are granted by it', () => {
  const c = new Cluster();
  c.elect(1);
  c.clear();
  c.nowMs = 50;
  c.tick(1); // round 2 outstanding
  const round2 = c.take((m) => m.type === 'heartbeat');
  for (let i = 1; i <= 50; i++) c.step(1, (r, now) => r.read(i, 'linearizable', now));
  assert.equal(ofType(c.net, 'heartbeat').length, 0, 'no round per read');
  c.net.push(...round2);
  c.deliver((m) => m.type === 'heartbeat');
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads, []);
  const next = ofType(c.net, 'heartbeat');
  assert.deepEqual(next.map((m) => m.round), [3, 3], 'one round for all fifty');
  c.deliver((m) => m.type === 'heartbeat');
  c.deliver((m) => m.type === 'heartbeatAck');
  assert.deepEqual(c.out(1).reads.map((r) => r.readId), Array.from({ length: 50 }, (_, i) => i + 1));
});
