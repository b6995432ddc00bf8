// Waiting helpers for the in-process runtime tests (one copy, used by every test file here).
import type { SynodReplica } from '../../src/runtime/replica.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms; fails naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/** A replica that leads and has served a linearizable read (its recovery round is chosen). */
export async function readyLeader(replicas: readonly SynodReplica[], timeoutMs = 10_000): Promise<SynodReplica> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const r of replicas) {
      if (r.status().role !== 'leader') continue;
      try {
        await r.read(new Uint8Array(0), { consistency: 'linearizable', maxWaitMs: 1000 });
        return r;
      } catch {
        // its recovery round has not committed yet
      }
    }
    await sleep(20);
  }
  throw new Error('no leader elected');
}
