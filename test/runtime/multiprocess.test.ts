// Real replicas in separate processes over TCP on loopback, with file logs and fdatasync.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { children, converge, startProcCluster, waitForLeader, writeAll } from './proc-harness.js';

after(() => {
  for (const c of children) c.kill('SIGKILL');
});

test('3 processes: kill -9 of the leader, a new leader serves, the old one restarts and catches up', { timeout: 120_000 }, async () => {
  const { dir, nodes } = await startProcCluster(3);
  try {
    const acked = new Set<string>();
    await waitForLeader(nodes);
    await Promise.all([writeAll(() => nodes, 11, 1, 40, acked), writeAll(() => nodes, 12, 1, 40, acked)]);
    const leader = await waitForLeader(nodes);
    await leader.kill9();
    const t0 = Date.now();
    const survivors = nodes.filter((n) => n !== leader);
    const next = await waitForLeader(survivors);
    assert.notEqual(next.id, leader.id);
    const failoverMs = Date.now() - t0;
    await Promise.all([writeAll(() => survivors, 11, 41, 30, acked), writeAll(() => survivors, 13, 1, 30, acked)]);
    await leader.start();
    await writeAll(() => nodes, 14, 1, 10, acked);
    await converge(nodes, acked);
    assert.ok(failoverMs < 20_000);
  } finally {
    for (const n of nodes) if (n.alive()) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});

test('3 processes: a follower down while the log is compacted past it catches up by snapshot', { timeout: 120_000 }, async () => {
  const { dir, nodes } = await startProcCluster(3, { snapshotIntervalSlots: 20, compactionMarginSlots: 5 });
  try {
    const acked = new Set<string>();
    const leader = await waitForLeader(nodes);
    const follower = nodes.find((n) => n !== leader)!;
    await writeAll(() => nodes, 21, 1, 10, acked);
    await follower.kill9();
    const live = nodes.filter((n) => n !== follower);
    await writeAll(() => live, 21, 11, 80, acked);
    for (const n of live) await n.call('snapshot');
    const st = (await leader.call('status')).status as { snapshotSlot: number; log: { headLsn: number } };
    assert.ok(st.snapshotSlot > 40, `leader snapshot slot ${st.snapshotSlot}`);
    await follower.start();
    await writeAll(() => nodes, 22, 1, 5, acked);
    await converge(nodes, acked, 30_000);
    const counters = (await follower.call('applied')).counters as { snapshotsInstalled: number };
    assert.ok(counters.snapshotsInstalled >= 1, 'the follower caught up through a shipped snapshot');
  } finally {
    for (const n of nodes) if (n.alive()) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});
