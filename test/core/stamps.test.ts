// Leader-stamped time: every batch the leader creates carries the injected wall clock, never below
// a stamp the replica has seen, so stamps are non-decreasing across leaders (docs/protocol.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CommittedEntry } from '../../src/core/types.js';
import { Cluster, cmd } from './harness.js';

const stampsOf = (entries: CommittedEntry[]) => entries.flatMap((e) => (e.value.kind === 'batch' ? [e.value.timeMs] : []));

test('batches carry the leader wall clock, made non-decreasing across leaders', () => {
  const c = new Cluster();
  c.elect(1);
  c.step(1, (r, now) => r.propose([cmd(7, 1)], now, 1_000_000.7));
  c.stabilize();
  assert.deepEqual(stampsOf(c.committed.get(1)!), [1_000_000], 'whole ms of the wall clock');
  // Replica 2 takes over with a clock 999 s behind: its stamps do not go back.
  c.nowMs += 5_000;
  c.elect(2);
  c.step(2, (r, now) => r.propose([cmd(7, 2)], now, 1_000));
  c.stabilize();
  assert.deepEqual(stampsOf(c.committed.get(2)!), [1_000_000, 1_000_000]);
  // Its clock catches up: stamps follow it again; every replica applied the same stamps.
  c.nowMs += 10;
  c.step(2, (r, now) => r.propose([cmd(7, 3)], now, 2_000_000));
  c.stabilize();
  assert.deepEqual(stampsOf(c.committed.get(2)!), [1_000_000, 1_000_000, 2_000_000]);
  // Followers learn the last commit with the next heartbeat: what they applied is a prefix of it.
  for (const id of [1, 3]) assert.deepEqual(stampsOf(c.committed.get(id)!), [1_000_000, 1_000_000, 2_000_000].slice(0, stampsOf(c.committed.get(id)!).length), `replica ${id}`);
});

test('a restarted leader stamps no lower than the stamps in its log', () => {
  const c = new Cluster();
  c.elect(1);
  c.step(1, (r, now) => r.propose([cmd(7, 1)], now, 5_000_000));
  c.stabilize();
  c.nowMs += 5_000;
  c.absorb(1, c.node(1).restart(c.nowMs));
  c.nowMs += 5_000;
  c.elect(1);
  c.step(1, (r, now) => r.propose([cmd(7, 2)], now, 10));
  c.stabilize();
  const second = c.committed.get(1)!.find((e) => e.value.kind === 'batch' && e.value.commands.some((x) => x.seq === 2));
  assert.ok(second && second.value.kind === 'batch', 'the second command committed at the restarted leader');
  assert.equal(second.value.timeMs, 5_000_000);
});

test('a core never given a wall clock writes unstamped (legacy) batches', () => {
  const c = new Cluster();
  c.elect(1);
  c.step(1, (r, now) => r.propose([cmd(7, 1)], now));
  c.stabilize();
  assert.deepEqual(stampsOf(c.committed.get(1)!), [undefined]);
});
