// Multi-process cluster harness: each replica is a child process (child-replica.ts) over TCP on
// loopback with file logs, driven over IPC. Clients record every acknowledged write so that a
// test can check each one is applied exactly once on every live replica, in the same order.
// Used by the 3-replica (multiprocess.test.ts) and 5-replica (multiprocess5.test.ts) tests.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** This build's child program (ProcNode.script's default). */
export const CHILD = new URL('./child-replica.js', import.meta.url).pathname;
/** Every child still running, so that a test's `after` hook can kill them all. */
export const children = new Set<ChildProcess>();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export class ProcNode {
  child!: ChildProcess;
  private rid = 0;
  private readonly waiting = new Map<number, (v: Record<string, unknown>) => void>();
  /** The child program: this build's, or another build's (the upgrade test runs the previous release). */
  script = CHILD;
  constructor(readonly id: number, readonly dir: string, readonly ports: Record<number, number>, readonly extra: object = {}) {}

  async start(): Promise<void> {
    this.child = fork(this.script, [String(this.id), this.dir, JSON.stringify(this.ports), JSON.stringify(this.extra)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const child = this.child;
    children.add(child);
    child.on('error', () => {}); // an IPC send to a child that just died (handled in call())
    child.on('message', (m: Record<string, unknown>) => {
      const cb = this.waiting.get(m.rid as number);
      if (cb) {
        this.waiting.delete(m.rid as number);
        cb(m);
      }
    });
    child.on('exit', () => {
      children.delete(child);
      for (const cb of this.waiting.values()) cb({ error: 'ChildExited' });
      this.waiting.clear();
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`replica ${this.id} exited with ${code}`)));
    });
  }

  call(op: string, args: object = {}, timeoutMs = 8000): Promise<Record<string, unknown>> {
    if (!this.alive()) return Promise.resolve({ error: 'ChildExited' });
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
      // The child may die between alive() and here (a kill under load): the send then fails
      // with EPIPE, which is an answer like any other dead child's, not a crash of the test.
      this.child.send({ rid, op, ...args }, (err) => {
        if (err === null || !this.waiting.has(rid)) return;
        this.waiting.delete(rid);
        clearTimeout(timer);
        resolve({ error: 'ChildExited' });
      });
    });
  }

  kill9(): Promise<void> {
    if (!this.alive()) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
}

export async function startProcCluster(n: number, extra: object = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'synod-mp5-'));
  const ports: Record<number, number> = {};
  for (let id = 1; id <= n; id++) ports[id] = await freePort();
  const nodes = Array.from({ length: n }, (_, i) => new ProcNode(i + 1, join(dir, `r${i + 1}`), ports, extra));
  await Promise.all(nodes.map((x) => x.start()));
  return { dir, ports, nodes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A live replica that leads and has served a linearizable read (its recovery round is chosen). */
export async function waitForLeader(nodes: ProcNode[], timeoutMs = 30_000): Promise<ProcNode> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const n of nodes.filter((x) => x.alive())) {
      const s = (await n.call('status')).status as { role: string } | undefined;
      if (s?.role === 'leader') {
        const r = await n.call('read');
        if (r.result !== undefined) return n;
      }
    }
    await sleep(100);
  }
  throw new Error('no leader within the timeout');
}

/** The session registered (through the log) for each test client, by the client's label. */
const sessions = new Map<number, number>();

/** Opens a session for test client `clientId` on whoever leads (once; later writes reuse it). */
export async function sessionFor(nodes: () => ProcNode[], clientId: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const known = sessions.get(clientId);
    if (known !== undefined) return known;
    try {
      const r = await (await waitForLeader(nodes(), 10_000)).call('openSession');
      if (typeof r.session === 'number') sessions.set(clientId, r.session);
    } catch {
      // no leader yet, or it moved: again
    }
    if (!sessions.has(clientId)) await sleep(50);
  }
  throw new Error(`no session for client ${clientId}`);
}

/** A client that retries with its own session until each write is acknowledged (exactly once). */
export async function writeAll(nodes: () => ProcNode[], clientId: number, from: number, count: number, acked: Set<string>) {
  const session = await sessionFor(nodes, clientId);
  let target = nodes().find((n) => n.alive())!;
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
      await sleep(50);
      try {
        target = await waitForLeader(nodes(), 10_000);
      } catch {
        const live = nodes().filter((n) => n.alive());
        target = live[attempt % live.length]!;
      }
    }
  }
}

/** Every replica applied the same sequence, with every acknowledged write exactly once. */
export async function converge(nodes: ProcNode[], acked: Set<string>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last: Array<Record<string, unknown>> = [];
  while (Date.now() < deadline) {
    last = await Promise.all(nodes.map((n) => n.call('applied')));
    const lists = last.map((r) => (r.applied as string[] | undefined) ?? []);
    const totals = last.map((r) => r.total as number);
    if (lists.every((l) => l.length === lists[0]!.length) && totals.every((t) => t === totals[0]) && [...acked].every((v) => lists[0]!.includes(v))) {
      for (const l of lists) {
        assert.deepEqual(l, lists[0], 'replicas applied different sequences');
        for (const v of acked) assert.equal(l.filter((x) => x === v).length, 1, `${v} applied ${l.filter((x) => x === v).length} times`);
      }
      assert.equal(totals[0], lists[0]!.length, 'every applied command added 1');
      return last;
    }
    await sleep(200);
  }
  throw new Error(`replicas did not converge: ${last.map((r) => `${(r.applied as string[] | undefined)?.length}/${r.total}`).join(' ')}`);
}
