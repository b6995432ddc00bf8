// Five real replicas in separate processes over TCP on loopback, with file logs and fdatasync.
// Sized for a starved 2-core machine: election timeouts in child-replica.ts are 600-1200 ms, IPC
// and leader waits are generous, and the workload is small; the assertions are exact.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { children, converge, freePort, ProcNode, startProcCluster, waitForLeader, writeAll } from './proc-harness.js';

after(() => {
  for (const c of children) c.kill('SIGKILL');
});

test('5 processes: kill -9 of the leader under load, a new leader serves, the old one restarts and catches up', { timeout: 120_000 }, async () => {
  const { dir, nodes } = await startProcCluster(5);
  try {
    const acked = new Set<string>();
    const all = () => nodes;
    await waitForLeader(nodes);
    await Promise.all([writeAll(all, 31, 1, 25, acked), writeAll(all, 32, 1, 25, acked)]);
    const leader = await waitForLeader(nodes);
    // Kill the leader while writes are in flight: some end in an unknown outcome and are retried
    // with the same session, which must apply them exactly once.
    const inflight = Promise.all([writeAll(all, 31, 26, 20, acked), writeAll(all, 33, 1, 20, acked)]);
    await new Promise((r) => setTimeout(r, 150));
    await leader.kill9();
    const t0 = Date.now();
    const survivors = nodes.filter((n) => n !== leader);
    const next = await waitForLeader(survivors);
    assert.notEqual(next.id, leader.id);
    const failoverMs = Date.now() - t0;
    await inflight;
    await leader.start();
    await writeAll(all, 34, 1, 10, acked);
    const states = await converge(nodes, acked);
    assert.equal(acked.size, 25 + 25 + 20 + 20 + 10);
    for (const s of states) assert.equal((s.status as { members: number[] }).members.length, 5);
    assert.ok(failoverMs < 30_000, `failover took ${failoverMs} ms`);
  } finally {
    for (const n of nodes) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});

test('5 processes: add a sixth replica and remove a follower under load', { timeout: 120_000 }, async () => {
  const { dir, ports, nodes } = await startProcCluster(5, { snapshotIntervalSlots: 30, compactionMarginSlots: 5 });
  const joinPort = await freePort();
  const joiner = new ProcNode(6, join(dir, 'r6'), ports, { join: true, listenPort: joinPort, snapshotIntervalSlots: 30, compactionMarginSlots: 5 });
  let everyone = [...nodes];
  try {
    const acked = new Set<string>();
    const live = () => everyone;
    await waitForLeader(nodes);
    // Enough history that the joiner catches up partly from a snapshot (interval 30, margin 5).
    await writeAll(live, 41, 1, 40, acked);
    await joiner.start();
    everyone = [...nodes, joiner];
    let done = false;
    const load = Promise.all([
      (async () => {
        for (let seq = 41; !done; seq += 10) await writeAll(live, 41, seq, 10, acked);
      })(),
      (async () => {
        for (let seq = 1; !done; seq += 10) await writeAll(live, 42, seq, 10, acked);
      })(),
    ]);
    // Membership calls go to the leader; a leader change in between is retried on the new one.
    const onLeader = async (op: string, args: object) => {
      for (let attempt = 0; attempt < 10; attempt++) {
        const leader = await waitForLeader(live());
        const r = await leader.call(op, args, 45_000);
        if (r.ok) return leader;
        if (r.code !== 'SYNOD_NOT_LEADER' && r.error !== 'ChildExited') throw new Error(`${op} failed: ${JSON.stringify(r)}`);
      }
      throw new Error(`${op} never reached a leader`);
    };
    await onLeader('addMember', { id: 6, port: joinPort });
    const leader = await waitForLeader(live());
    const victim = nodes.find((n) => n !== leader && n.id !== 6)!;
    await onLeader('removeMember', { id: victim.id });
    await new Promise((r) => setTimeout(r, 500));
    done = true;
    await load;
    await victim.kill9();
    everyone = everyone.filter((n) => n !== victim);
    await writeAll(live, 43, 1, 5, acked);
    const states = await converge(everyone, acked);
    const expected = [1, 2, 3, 4, 5, 6].filter((id) => id !== victim.id);
    for (const s of states) assert.deepEqual([...(s.status as { members: number[] }).members].sort((a, b) => a - b), expected);
    assert.ok(acked.size >= 40 + 20 + 5, `acked ${acked.size}`);
  } finally {
    for (const n of [...nodes, joiner]) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});
