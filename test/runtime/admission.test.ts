// The leader's admission limit. With the pipeline window kept full (the followers' votes lost, as
// when their disks stall while heartbeats still pass) the leader used to take every proposal into
// its queue, and a proposal that timed out there stayed queued beside its caller's retry, then ran
// once the window moved: memory grew without bound, and a caller told "outcome unknown" for a
// command that was in no slot. Now what waits to be proposed is bounded (proposalQueueCommandsMax,
// proposalQueueBytesMax; beyond: SYNOD_OVERLOADED, certain), and a proposal whose deadline passes
// while it is still queued is taken back and answered SYNOD_OVERLOADED (never proposed, never run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import { decodeMessage, MESSAGE_FORMAT_VERSION } from '../../src/codec/messages.js';
import type { SynodReplica } from '../../src/runtime/replica.js';
import type { MemoryNetwork } from '../../src/transport/memory.js';
import { counterCluster } from './counter-cluster.js';
import { until } from './wait.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const turn = () => new Promise((r) => setImmediate(r));
/** A small window, so that a few turns of proposals fill it. */
const W = 4;

type Outcome = { code: string | null; certain?: boolean; result?: string };
function outcome(p: Promise<Uint8Array | number>): Promise<Outcome> {
  return p.then(
    (r) => ({ code: null, result: typeof r === 'number' ? String(r) : dec(r) }),
    (e: { code?: string; certain?: boolean }) => ({ code: e.code ?? String(e), certain: e.certain }),
  );
}

/** `p`'s value, or null if it has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))]).finally(() => clearTimeout(timer));
}

/** The followers' votes (Phase 2b) are lost; heartbeats and their acks still pass, so the leader keeps leading. */
function loseVotes(network: MemoryNetwork): void {
  network.setDropFilter((_from, _to, frame) => frame[0] === MESSAGE_FORMAT_VERSION && decodeMessage(frame).type === 'accepted');
}

/** Fills the leader's window: one slot per turn (each turn's proposals are one slot), W turns. */
async function fillWindow(leader: SynodReplica, timeoutMs = 60_000): Promise<Array<Promise<Outcome>>> {
  const inWindow: Array<Promise<Outcome>> = [];
  for (let i = 0; i < W; i++) {
    inWindow.push(outcome(leader.propose(enc('a:10'), { timeoutMs })));
    await turn();
    await turn();
  }
  return inWindow;
}

test('admission: with the window held full, what waits on the leader stays within proposalQueueCommandsMax and proposalQueueBytesMax; beyond, SYNOD_OVERLOADED (certain), and only the admitted run', async () => {
  const c = await counterCluster('admission', { core: { pipelineWindowSlots: W }, proposalQueueCommandsMax: 100, proposalQueueBytesMax: 1000 });
  const { leader, network } = c;
  try {
    assert.equal(dec(await leader.propose(enc('a:1'))), '1'); // opens the replica's own session while votes pass
    const session = await leader.openSession();
    loseVotes(network);
    const inWindow = await fillWindow(leader);

    // 50 small commands (150 bytes) wait, one of them under a session; one of 904 bytes would pass 1000 bytes: refused.
    const first = Array.from({ length: 49 }, () => outcome(leader.propose(enc('a:1'), { timeoutMs: 60_000 })));
    first.push(outcome(leader.propose(enc('a:1'), { clientId: session, seq: 1, floor: 1, timeoutMs: 60_000 })));
    const big = outcome(leader.propose(enc(`a:0:${'x'.repeat(900)}`), { timeoutMs: 60_000 }));
    // 1000 more in the same turn: 50 fit under proposalQueueCommandsMax (100), 950 are refused.
    const more = Array.from({ length: 1000 }, () => outcome(leader.propose(enc('a:1'), { timeoutMs: 60_000 })));
    await turn();
    await turn();
    const refused = (await within(Promise.all(more.slice(50)), 2000))?.filter((o) => o.code === 'SYNOD_OVERLOADED' && o.certain === true).length ?? 0;
    assert.equal(refused, 950, `of 1050 proposals with the window held full, ${refused} were refused SYNOD_OVERLOADED (proposalQueueCommandsMax 100)`);
    assert.deepEqual(await within(big, 2000), { code: 'SYNOD_OVERLOADED', certain: true }, 'a command past proposalQueueBytesMax');
    assert.deepEqual(leader.status().proposalQueue, { commands: 100, bytes: 300 }, 'what waits on the leader');
    // Still full after the drain (the core holds them for room in the window): refused at once.
    assert.equal((await outcome(leader.propose(enc('a:1'), { timeoutMs: 60_000 }))).code, 'SYNOD_OVERLOADED');
    assert.equal((await outcome(leader.openSession({ timeoutMs: 60_000 }))).code, 'SYNOD_OVERLOADED', 'openSession is a client command like any other');
    // A retry of a waiting request joins it instead of being refused: it queues nothing more.
    const retry = outcome(leader.propose(enc('a:1'), { clientId: session, seq: 1, floor: 1, timeoutMs: 60_000 }));

    network.setDropFilter(null);
    const admitted = await Promise.all([...inWindow, ...first, ...more.slice(0, 50), retry]);
    assert.deepEqual(
      admitted.filter((o) => o.code !== null),
      [],
      'every admitted proposal is applied once the window moves',
    );
    assert.equal(admitted.at(-1)!.result, admitted.at(-2 - 50)!.result, 'the retry got the original answer');
    // 1 + 4 x 10 in the window + 100 x 1 admitted; none of the refused ran.
    await until('every replica applied the admitted', () => c.machines.every((m) => m.total === 141));
    assert.deepEqual(leader.status().proposalQueue, { commands: 0, bytes: 0 });
    // A command larger than proposalQueueBytesMax still goes when nothing else waits.
    assert.equal(dec(await leader.propose(enc(`a:0:${'x'.repeat(2000)}`))), '141');
  } finally {
    await c.close();
  }
});

test('admission: a proposal whose timeout passes while it waits for room in the window is taken back: SYNOD_OVERLOADED (certain) and never applied; one already in a slot stays unknown', async () => {
  const c = await counterCluster('admission-timeout', { core: { pipelineWindowSlots: W } });
  const { leader, network } = c;
  try {
    assert.equal(dec(await leader.propose(enc('a:1'))), '1');
    loseVotes(network);
    const inWindow = await fillWindow(leader, 300);
    const queued = Array.from({ length: 50 }, () => outcome(leader.propose(enc('a:100'), { timeoutMs: 300 })));
    const ended = await Promise.all(queued);
    const codes = [...new Set(ended.map((o) => `${o.code} certain=${o.certain}`))];
    assert.deepEqual(codes, ['SYNOD_OVERLOADED certain=true'], 'what a caller whose proposal timed out in the queue is told');
    assert.deepEqual(leader.status().proposalQueue, { commands: 0, bytes: 0 }, 'timed-out proposals leave the queue');

    // Those in the window's slots timed out too, but they were proposed: unknown, and they do run.
    assert.deepEqual(
      (await Promise.all(inWindow)).map((o) => `${o.code} certain=${o.certain}`),
      Array(W).fill('SYNOD_OUTCOME_UNKNOWN certain=false'),
    );
    network.setDropFilter(null);
    await until('every replica applied the window', () => c.machines.every((m) => m.total >= 41));
    await new Promise((r) => setTimeout(r, 200));
    // Without the fix the timed-out commands stayed queued and ran here: 41 + 50 x 100.
    assert.deepEqual(
      c.machines.map((m) => m.total),
      [41, 41, 41],
      'the timed-out commands were never applied',
    );
  } finally {
    await c.close();
  }
});

test('admission: a proposal that times out before its turn is handed to the protocol (the leader waiting on its own disk) is dropped as certain, not unknown', async () => {
  const c = await counterCluster('admission-own-queue');
  const { leader } = c;
  try {
    assert.equal(dec(await leader.propose(enc('a:1'))), '1');
    // Hold the leader's group commit in flight: proposals wait for it in the runtime's queue.
    const internals = leader as unknown as { committing: number; drain(): void };
    internals.committing++;
    try {
      const waiting = await outcome(leader.propose(enc('a:100'), { timeoutMs: 100 }));
      assert.deepEqual(waiting, { code: 'SYNOD_OVERLOADED', certain: true }, 'a proposal that timed out before it was handed over');
      assert.deepEqual(leader.status().proposalQueue, { commands: 0, bytes: 0 });
    } finally {
      internals.committing--;
    }
    internals.drain();
    assert.equal(dec(await leader.propose(enc('a:1'))), '2', 'the dropped command never ran');
  } finally {
    await c.close();
  }
});
