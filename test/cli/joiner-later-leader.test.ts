// docs/operations.md, "Changing the member set", walked through with real processes: a joiner
// started with only the cluster's initial members in --initial-cluster joins while a replica added
// later leads (before session 21 the add timed out unless an initial member led); a follower started
// with --initial-http naming 1, 2, 3 forwards writes to that leader (its address came through the
// log); and the replica removed under it stops campaigning.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN_JS, ProcCluster, freePorts, trackChild } from '../../src/cli/cluster-procs.js';
import { formatIdMap } from '../../src/cli/config.js';
import { hostPort } from '../../src/transport/types.js';
import { sleep } from '../runtime/wait.js';
import { synod } from './helpers.js';

interface Status {
  id: number;
  role: string;
  leader: number | null;
  commitIndex: number;
  members: Array<{ id: number; member: boolean }>;
}

async function statusOf(http: string): Promise<Status | null> {
  try {
    const res = await fetch(`http://${http}/v1/status`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as Status) : null;
  } catch {
    return null;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'synod-joiner-cli-'));
let cluster: ProcCluster | undefined;
const joiners: ChildProcess[] = [];
after(async () => {
  for (const j of joiners) j.kill('SIGKILL');
  await cluster?.stopAll(2_000);
  rmSync(dir, { recursive: true, force: true });
});

test('a joiner knowing only the initial members joins while a later-added replica leads', { timeout: 120_000 }, async () => {
  const started = Date.now();
  cluster = await ProcCluster.create({ size: 3, dataDir: dir, electionTimeoutMs: 400, logLevel: 'warn' });
  cluster.startAll();
  const initial = formatIdMap(cluster.peerMap);
  const http = (id: number) => hostPort(cluster!.httpMap.get(id)!);
  const joinerHttp = new Map<number, string>();
  const startJoiner = async (id: number): Promise<string> => {
    const [peer, httpPort] = await freePorts(2);
    joinerHttp.set(id, `127.0.0.1:${httpPort}`);
    const child = spawn(process.execPath, [
      '--initial-old-space-size=64', MAIN_JS, 'start', '--id', String(id), '--join', '--cluster-id', 'synod-local',
      '--data', join(dir, `replica-${id}`), '--peer', `127.0.0.1:${peer}`, '--http', `127.0.0.1:${httpPort}`,
      '--initial-cluster', initial, '--election-timeout-ms', '400', '--log-level', 'warn',
    ], { stdio: 'ignore' });
    trackChild(child);
    joiners.push(child);
    return `127.0.0.1:${peer}`;
  };
  const e = [`--endpoints=${[1, 2, 3].map((id) => `http://${http(id)}`).join(',')}`];
  const put = await synod(['put', 'k1', 'v1', ...e], { timeoutMs: 30_000 });
  assert.equal(put.code, 0, put.stderr);

  const peer4 = await startJoiner(4);
  const add4 = await synod(['member', 'add', '4', peer4, '--timeout', '30000', ...e], { timeoutMs: 45_000 });
  assert.equal(add4.code, 0, add4.stderr);
  assert.match(add4.stdout, /members now 1,2,3,4\b/);
  // Hand leadership to 4 (a transfer can lapse on a loaded machine: ask again until 4 leads).
  for (let attempt = 0; (await statusOf(joinerHttp.get(4)!))?.role !== 'leader'; attempt++) {
    assert.ok(attempt < 40, 'replica 4 never took over');
    await synod(['leader', 'transfer', '4', ...e]);
    await sleep(500);
  }
  const remove1 = await synod(['member', 'remove', '1', '--timeout', '30000', ...e], { timeoutMs: 45_000 });
  assert.equal(remove1.code, 0, remove1.stderr);
  assert.match(remove1.stdout, /members now 2,3,4\b/);

  // The case that used to time out: 5 knows only 1, 2, 3, none of which leads.
  const peer5 = await startJoiner(5);
  const e23 = [`--endpoints=http://${http(2)},http://${http(3)}`];
  const add5 = await synod(['member', 'add', '5', peer5, '--timeout', '30000', ...e23], { timeoutMs: 45_000 });
  assert.equal(add5.code, 0, add5.stderr);
  assert.match(add5.stdout, /members now 2,3,4,5\b/);

  // A follower whose --initial-http names only 1, 2, 3 forwards to the leader, whichever it is now.
  const res = await fetch(`http://${http(2)}/v1/kv/forwarded`, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(15_000) });
  assert.equal(res.status, 200, await res.text());
  const servedBy = Number(res.headers.get('x-synod-served-by'));
  assert.ok(servedBy === 4 || servedBy === 5, `served by ${servedBy}`);

  // The removed replica 1 learns that its removal governs and never campaigns.
  let one = await statusOf(http(1));
  for (const until = Date.now() + 15_000; one?.members.find((m) => m.id === 1)?.member !== false && Date.now() < until; ) {
    await sleep(100);
    one = await statusOf(http(1));
  }
  assert.equal(one?.members.find((m) => m.id === 1)?.member, false, `replica 1 knows it was removed: ${JSON.stringify(one)}`);
  for (let i = 0; i < 10; i++) {
    const s = await statusOf(http(1));
    assert.notEqual(s?.role, 'candidate', 'the removed replica campaigns');
    await sleep(100);
  }
  const st = await synod(['status', ...e23]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^1\s+follower \(not a member\)/m, st.stdout);
  console.log(`# walked through in ${Date.now() - started} ms`);
});
