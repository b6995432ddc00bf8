// proposeWith(): propose() with a callback (what the binary server uses, no promise per command).
// The callback gets the result once; the same request retried while pending is answered once for
// both callers and applied once; refusals come through the callback; a callback that throws does
// not stop the replica (it runs inside the apply loop) and its error surfaces as uncaught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setContracts } from '../../src/core/contracts.js';
import type { SynodReplica } from '../../src/runtime/replica.js';
import { counterCluster } from './counter-cluster.js';

setContracts(true);

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Proposes with a fresh cookie and checks that the callback gets that cookie back. */
let cookies = 0;
function proposeWith(r: SynodReplica, command: string, options: Parameters<SynodReplica['proposeWith']>[1]): Promise<{ error: Error | null; result: string | null; calls: number }> {
  return new Promise((resolve) => {
    let calls = 0;
    const cookie = { n: ++cookies };
    r.proposeWith(
      enc(command),
      options,
      (error, result, got) => {
        calls++;
        // A wrong cookie shows as an error in every assertion on the outcome.
        const seen = got === cookie ? error : new Error(`the callback got cookie ${JSON.stringify(got)}, not ${JSON.stringify(cookie)}`);
        // A second call would be seen by the caller's later assertion on `calls`.
        setTimeout(() => resolve({ error: seen, result: result === null ? null : dec(result), calls }), 50);
      },
      cookie,
    );
  });
}

test('proposeWith: results through the callback, a pending retry answered once for both, refusals, and a throwing callback does not stop the replica', async () => {
  const c = await counterCluster('propose-with');
  const { leader } = c;
  try {
    const s = await leader.openSession();

    const one = await proposeWith(leader, 'a:1', { clientId: s, seq: 1, floor: 1 });
    assert.deepEqual(one, { error: null, result: '1', calls: 1 });

    // The same (clientId, seq) twice before it is applied: both callers get the one answer (each with its own cookie).
    const [x, y] = await Promise.all([proposeWith(leader, 'a:5', { clientId: s, seq: 2, floor: 1 }), proposeWith(leader, 'a:5', { clientId: s, seq: 2, floor: 1 })]);
    assert.deepEqual([x.error, y.error, x.result, y.result, x.calls, y.calls], [null, null, '6', '6', 1, 1]);
    assert.equal(dec(await leader.propose(enc('a:0'), { clientId: s, seq: 3, floor: 3 })), '6'); // applied once

    // Refusals arrive through the callback too.
    const bad = await proposeWith(leader, 'a:1', { clientId: 0, seq: 1 });
    assert.equal((bad.error as { code?: string }).code, 'SYNOD_BAD_SESSION');
    assert.equal(bad.result, null);
    // A floor that is no varint (NaN, negative, fractional, beyond 2^53) is refused here; it used
    // to reach the slot's encoding and stop the replica ("storage failed"), its batch with it.
    for (const floor of [NaN, -1, 1.5, 2 ** 60]) {
      const badFloor = await proposeWith(leader, 'a:1', { clientId: s, seq: 4, floor });
      assert.equal((badFloor.error as { code?: string }).code, 'SYNOD_BAD_SESSION', `floor ${floor}: ${String(badFloor.error)}`);
    }

    // A floor above the seq (the floor is the lowest seq not yet answered) is refused, as the servers refuse it.
    const floorAbove = await proposeWith(leader, 'a:1', { clientId: s, seq: 4, floor: 5 });
    assert.equal((floorAbove.error as { code?: string }).code, 'SYNOD_BAD_SESSION', String(floorAbove.error));

    // A timeout that is no positive number is refused, before anything is proposed (it ended at
    // the next tick as an unknown outcome).
    for (const timeoutMs of [NaN, 0, -5]) {
      const badTimeout = await proposeWith(leader, 'a:1', { clientId: s, seq: 4, floor: 4, timeoutMs });
      assert.equal((badTimeout.error as { code?: string }).code, 'SYNOD_BAD_TIMEOUT', `timeoutMs ${timeoutMs}: ${String(badTimeout.error)}`);
    }
    assert.equal(dec((await leader.read(enc(''))).result), '6', 'the refused ones were not applied');

    // A callback that throws: the error is uncaught on its own tick; the replica goes on applying.
    const uncaught: unknown[] = [];
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (e) => uncaught.push(e));
    try {
      await new Promise<void>((resolve) =>
        leader.proposeWith(enc('a:1'), { clientId: s, seq: 4, floor: 4 }, () => {
          setTimeout(resolve, 50);
          throw new Error('a bug in the caller');
        }),
      );
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of listeners) process.on('uncaughtException', l);
    }
    assert.equal(uncaught.length, 1);
    assert.match(String(uncaught[0]), /a bug in the caller/);
    assert.equal(dec(await leader.propose(enc('a:1'), { clientId: s, seq: 5, floor: 5 })), '8');
    assert.equal(leader.status().role, 'leader');
  } finally {
    await c.close();
  }
});

test('a proposal without a quorum ends in OutcomeUnknownError after its timeoutMs, not before, and the replica goes on', async () => {
  const c = await counterCluster('propose-timeout');
  const { leader, machines, network } = c;
  try {
    const s = await leader.openSession();
    assert.equal(dec(await leader.propose(enc('a:1'), { clientId: s, seq: 1, floor: 1 })), '1');
    network.partition([[leader.id]]);
    const t0 = performance.now();
    const hung = new Promise<{ error: Error; result: null; calls: number }>((r) => setTimeout(() => r({ error: new Error('no answer within 5 s: the timeout never fired'), result: null, calls: 0 }), 5_000).unref());
    const cut = await Promise.race([proposeWith(leader, 'a:1', { clientId: s, seq: 2, floor: 1, timeoutMs: 400 }), hung]);
    const waited = performance.now() - t0 - 50; // the helper answers 50 ms after the callback
    assert.equal((cut.error as { code?: string } | null)?.code, 'SYNOD_OUTCOME_UNKNOWN', `error: ${cut.error}`);
    assert.match(cut.error!.message, /proposal timeout/);
    assert.ok(waited >= 390 && waited < 3_000, `ended after ${waited.toFixed(0)} ms`);
    // Healed: the same (clientId, seq) again is applied at most once.
    network.heal();
    assert.equal(dec(await leader.propose(enc('a:1'), { clientId: s, seq: 2, floor: 1, timeoutMs: 10_000 })), '2');
    assert.equal(machines[leader.id - 1]!.total, 2);
  } finally {
    await c.close();
  }
});
