// Real replicas in separate processes over TCP on loopback, with file logs and fdatasync.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHILD = new URL('./child-replica.js', import.meta.url).pathname;
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

class Node {
  child!: ChildProcess;
  private rid = 0;
  private readonly waiting = new Map<number, (v: Record<string, unknown>) => void>();
  constructor(readonly id: number, readonly dir: string, readonly ports: Record<number, number>, readonly extra: object = {}) {}
  async start(): Promise<void> {
    this.child = fork(CHILD, [String(this.id), this.dir, JSON.stringify(this.ports), JSON.stringify(this.extra)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(this.child);
    this.child.on('message', (m: Record<string, unknown>) => {
      const cb = this.waiting.get(m.rid as number);
      if (cb) {
        this.waiting.delete(m.rid as number);
        cb(m);
      }
    });
    this.child.on('exit', () => {
      children.delete(this.child);
      for (const cb of this.waiting.values()) cb({ error: 'ChildExited' });
      this.waiting.clear();
    });
    await new Promise<void>((resolve, reject) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`replica ${this.id} exited with ${code}`)));
    });
  }
  call(op: string, args: object = {}, timeoutMs = 8000): Promise<Record<string, unknown>> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve({ error: 'ChildExited' });
    const rid = ++this.rid;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        resolve({ error: 'IpcTimeout' });
      }, timeoutMs);
      this.waiting.set(rid, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.child.send({ rid, op, ...args });
    });
  }
  kill9(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }
  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

async function startCluster(n: number, extra: object = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'synod-mp-'));
  const ports: Record<number, number> = {};
  for (let id = 1; id <= n; id++) ports[id] = await freePort();
  const nodes = Array.from({ length: n }, (_, i) => new Node(i + 1, join(dir, `r${i + 1}`), ports, extra));
  await Promise.all(nodes.map((x) => x.start()));
  return { dir, nodes };
}

async function waitForLeader(nodes: Node[], timeoutMs = 20_000): Promise<Node> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const n of nodes.filter((x) => x.alive())) {
      const s = (await n.call('status')).status as { role: string } | undefined;
      if (s?.role === 'leader') {
        const r = await n.call('read');
        if (r.result !== undefined) return n;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no leader within the timeout');
}

/** The session registered (through the log) for each test client, by the client's label. */
const sessions = new Map<number, number>();

async function sessionFor(nodes: Node[], clientId: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const known = sessions.get(clientId);
    if (known !== undefined) return known;
    try {
      const r = await (await waitForLeader(nodes, 10_000)).call('openSession');
      if (typeof r.session === 'number') sessions.set(clientId, r.session);
    } catch {
      // no leader yet, or it moved: again
    }
    if (!sessions.has(clientId)) await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`no session for client ${clientId}`);
}

/** A client that retries with its own session until each write is acknowledged (exactly once). */
async function writeAll(nodes: Node[], clientId: number, from: number, count: number, acked: Set<string>) {
  const session = await sessionFor(nodes, clientId);
  let target = nodes.find((n) => n.alive())!;
  for (let seq = from; seq < from + count; seq++) {
    const value = `c${clientId}-${seq}:1`;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 200) throw new Error(`write ${value} never acknowledged`);
      const r = await target.call('propose', { value, clientId: session, seq });
      if (r.result !== undefined) {
        acked.add(value);
        break;
      }
      // Not the leader, leader lost, or outcome unknown: find the leader, retry the same (clientId, seq).
      await new Promise((res) => setTimeout(res, 50));
      try {
        target = await waitForLeader(nodes, 10_000);
      } catch {
        target = nodes.filter((n) => n.alive())[attempt % nodes.filter((n) => n.alive()).length]!;
      }
    }
  }
}

async function converge(nodes: Node[], acked: Set<string>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last: Array<Record<string, unknown>> = [];
  while (Date.now() < deadline) {
    last = await Promise.all(nodes.map((n) => n.call('applied')));
    const lists = last.map((r) => (r.applied as string[] | undefined) ?? []);
    const totals = last.map((r) => r.total as number);
    if (lists.every((l) => l.length === lists[0]!.length && totals.every((t) => t === totals[0])) && [...acked].every((v) => lists[0]!.includes(v))) {
      for (const l of lists) {
        assert.deepEqual(l, lists[0], 'replicas applied different sequences');
        // Every acknowledged write exactly once.
        for (const v of acked) assert.equal(l.filter((x) => x === v).length, 1, `${v} applied ${l.filter((x) => x === v).length} times`);
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`replicas did not converge: ${last.map((r) => `${(r.applied as string[] | undefined)?.length}/${r.total}`).join(' ')}`);
}

test('3 processes: kill -9 of the leader, a new leader serves, the old one restarts and catches up', { timeout: 120_000 }, async () => {
  const { dir, nodes } = await startCluster(3);
  try {
    const acked = new Set<string>();
    await waitForLeader(nodes);
    await Promise.all([writeAll(nodes, 11, 1, 40, acked), writeAll(nodes, 12, 1, 40, acked)]);
    const leader = await waitForLeader(nodes);
    await leader.kill9();
    const t0 = Date.now();
    const survivors = nodes.filter((n) => n !== leader);
    const next = await waitForLeader(survivors);
    assert.notEqual(next.id, leader.id);
    const failoverMs = Date.now() - t0;
    await Promise.all([writeAll(survivors, 11, 41, 30, acked), writeAll(survivors, 13, 1, 30, acked)]);
    await leader.start();
    await writeAll(nodes, 14, 1, 10, acked);
    await converge(nodes, acked);
    assert.ok(failoverMs < 20_000);
  } finally {
    for (const n of nodes) if (n.alive()) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});

test('3 processes: a follower down while the log is compacted past it catches up by snapshot', { timeout: 120_000 }, async () => {
  const { dir, nodes } = await startCluster(3, { snapshotIntervalSlots: 20, compactionMarginSlots: 5 });
  try {
    const acked = new Set<string>();
    const leader = await waitForLeader(nodes);
    const follower = nodes.find((n) => n !== leader)!;
    await writeAll(nodes, 21, 1, 10, acked);
    await follower.kill9();
    const live = nodes.filter((n) => n !== follower);
    await writeAll(live, 21, 11, 80, acked);
    for (const n of live) await n.call('snapshot');
    const st = (await leader.call('status')).status as { snapshotSlot: number; log: { headLsn: number } };
    assert.ok(st.snapshotSlot > 40, `leader snapshot slot ${st.snapshotSlot}`);
    await follower.start();
    await writeAll(nodes, 22, 1, 5, acked);
    await converge(nodes, acked, 30_000);
    const counters = (await follower.call('applied')).counters as { snapshotsInstalled: number };
    assert.ok(counters.snapshotsInstalled >= 1, 'the follower caught up through a shipped snapshot');
  } finally {
    for (const n of nodes) if (n.alive()) await n.kill9();
    await rm(dir, { recursive: true, force: true });
  }
});
