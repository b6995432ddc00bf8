// Integration: real `synod start` child processes on loopback, driven through the CLI, the
// HTTP API and the TS binary client, with a leader SIGKILL. Every child is killed in after().

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN_JS, ProcCluster, freePorts } from '../../src/cli/cluster-procs.js';
import { KvClient } from '../../src/kv/client.js';
import { HttpKvClient } from '../../src/kv/http-client.js';
import type { StateDigestStatus } from '../../src/runtime/state-digests.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function synod(args: string[], input?: string | Buffer, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN_JS, ...args], { timeout: timeoutMs, env: { ...process.env, SYNOD_ENDPOINTS: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

async function statusOf(endpoint: string): Promise<{ id: number; role: string; leader: number | null; appliedIndex: number; commitIndex: number; kv: { keys: number }; stateDigest: StateDigestStatus | null } | null> {
  const c = new HttpKvClient({ endpoints: [endpoint], timeoutMs: 1, requestTimeoutMs: 1_000 });
  try {
    const a = await c.call('GET', '/v1/status');
    return JSON.parse(a.body.toString('utf8'));
  } catch {
    return null;
  } finally {
    c.close();
  }
}

async function waitForLeader(cluster: ProcCluster, except: number | null = null, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const sts = await Promise.all(cluster.endpoints.map((e, i) => (i + 1 === except ? null : statusOf(e))));
    const l = sts.find((s) => s?.role === 'leader');
    if (l) {
      const c = new HttpKvClient({ endpoints: [cluster.endpoints[l.id - 1]!], timeoutMs: 1, requestTimeoutMs: 3_000 });
      try {
        if ((await c.send('PUT', '/v1/kv/probe', 'x')).status === 200) return l.id;
      } catch {
        // not yet
      } finally {
        c.close();
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no leader');
}

describe('a 3-replica cluster of synod processes', () => {
  let dir: string;
  let cluster: ProcCluster;
  let endpoints: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
    // Digests every 64 slots: the load below crosses several, and the replicas compare them (SAFETY.md).
    cluster = await ProcCluster.create({ size: 3, dataDir: dir, binary: true, electionTimeoutMs: 400, logLevel: 'info', extraArgs: ['--state-digest-interval-slots', '64'] });
    cluster.startAll();
    await waitForLeader(cluster);
    endpoints = cluster.endpoints.join(',');
  });
  after(async () => {
    await cluster?.stopAll(2_000);
    rmSync(dir, { recursive: true, force: true });
  });

  test('CLI: put, get, del, cas, scan, status, member list, leader transfer', async () => {
    const e = ['--endpoints', endpoints];
    assert.deepEqual(await synod(['put', 'greeting', 'hello world', ...e]), { code: 0, stdout: 'OK\n', stderr: '' });
    assert.equal((await synod(['put', 'piped', ...e], 'from stdin')).code, 0);
    assert.equal((await synod(['get', 'piped', ...e])).stdout, 'from stdin\n');
    const got = await synod(['get', 'greeting', '--json', ...e]);
    assert.deepEqual(JSON.parse(got.stdout), { found: true, value: 'hello world' });
    const missing = await synod(['get', 'nope', ...e]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
    assert.equal((await synod(['cas', 'greeting', 'hello world', 'bye', ...e])).code, 0);
    const clash = await synod(['cas', 'greeting', 'hello world', 'again', ...e]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /current value is "bye"/);
    assert.equal((await synod(['cas', '--absent', 'newkey', 'v', ...e])).code, 0);
    const scan = await synod(['scan', 'g', '--json', ...e]);
    assert.deepEqual(JSON.parse(scan.stdout).entries, [{ key: 'greeting', value: 'bye' }]);
    const del = await synod(['del', 'greeting', ...e]);
    assert.equal(del.stdout, 'OK (deleted)\n');
    // --base64: keys and values that are not UTF-8 text, given and printed as base64; a value piped
    // on stdin is written as raw bytes (it was decoded as UTF-8, so 0xff became U+FFFD).
    const binKey = Buffer.from([0xff, 0xfe, 0x00]).toString('base64'); // "//4A": a "/" to percent-encode
    assert.equal((await synod(['put', '--base64', binKey, ...e], Buffer.from([0x80, 0xff]))).code, 0);
    assert.equal((await synod(['get', '--base64', binKey, ...e])).stdout, 'gP8=\n');
    assert.deepEqual(JSON.parse((await synod(['get', '--base64', '--json', binKey, ...e])).stdout), { found: true, value: 'gP8=', encoding: 'base64' });
    const binCas = await synod(['cas', '--base64', binKey, 'gP8=', 'AA==', ...e]);
    assert.equal(binCas.code, 0, binCas.stderr);
    const binScan = JSON.parse((await synod(['scan', '--base64', '--json', Buffer.from([0xff]).toString('base64'), ...e])).stdout);
    assert.deepEqual(binScan.entries, [{ key: binKey, value: 'AA==' }]);
    assert.equal((await synod(['del', '--base64', binKey, ...e])).stdout, 'OK (deleted)\n');
    const badB64 = await synod(['put', '--base64', 'not base64!', 'AA==', ...e]);
    assert.equal(badB64.code, 2);
    assert.match(badB64.stderr, /KEY is not base64 \(--base64\)/);
    const st = await synod(['status', ...e]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /ID\s+ROLE\s+HTTP\s+PEER/);
    assert.equal((st.stdout.match(/leader/g) ?? []).length >= 2, true, st.stdout);
    const members = await synod(['member', 'list', '--json', ...e]);
    assert.equal(JSON.parse(members.stdout).members.length, 3);
    // Membership: a 4th replica started with --join is added (learner, catch-up, promotion), then removed.
    const [peer4, http4] = await freePorts(2, '127.0.0.1');
    const joiner = spawn(process.execPath, [
      MAIN_JS, 'start', '--id', '4', '--cluster-id', 'synod-local', '--data', join(dir, 'replica-4'),
      '--peer', `127.0.0.1:${peer4}`, '--http', `127.0.0.1:${http4}`, '--join',
      '--initial-cluster', [...cluster.peerMap].map(([id, a]) => `${id}=${a.host}:${a.port}`).join(','),
      '--initial-http', [...cluster.httpMap].map(([id, a]) => `${id}=${a.host}:${a.port}`).join(','),
      '--election-timeout-ms', '400', '--log-level', 'warn',
    ], { stdio: 'ignore' });
    try {
      const bad = await synod(['member', 'add', 'x', '127.0.0.1:1', ...e]);
      assert.equal(bad.code, 2, 'a bad id is a usage error');
      const add = await synod(['member', 'add', '4', `127.0.0.1:${peer4}`, ...e], undefined, 60_000);
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /members now 1,2,3,4/);
      // addMember returns once the learner holds the log (its accepts reach the commit point
      // less a margin) and the configuration is chosen; it applies what it holds as it learns
      // the commit point (the next accept or heartbeat), so this may take a moment.
      let four = await statusOf(`http://127.0.0.1:${http4}`);
      const first = JSON.stringify(four);
      for (const until = Date.now() + 10_000; !(four && four.appliedIndex > 0) && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 50));
        four = await statusOf(`http://127.0.0.1:${http4}`);
      }
      assert.ok(four && four.appliedIndex > 0, `the new member applied the log (first status after the add: ${first}; last: ${JSON.stringify(four)})`);
      const removed = await synod(['member', 'remove', '4', ...e], undefined, 60_000);
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(removed.stdout, /members now 1,2,3\b/);
    } finally {
      joiner.kill('SIGKILL');
    }
    const leader = await waitForLeader(cluster);
    const target = leader === 1 ? 2 : 1;
    const tr = await synod(['leader', 'transfer', String(target), ...e]);
    assert.equal(tr.code, 0, tr.stderr);
    assert.equal(await waitForLeader(cluster), target);
    const down = await synod(['get', 'x', '--endpoints', 'http://127.0.0.1:1', '--timeout', '200']);
    assert.equal(down.code, 3);
    assert.match(down.stderr, /not applied.*cannot reach/);
    const usage = await synod(['get', 'x']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--endpoints/);
  });

  test('leader SIGKILL under HTTP and binary-client load: every acknowledged write reads back; the restarted replica catches up', async () => {
    const http = new HttpKvClient({ endpoints: cluster.endpoints, timeoutMs: 15_000 });
    const bin = new KvClient({ endpoints: cluster.replicas.map((r) => `${r.binary!.host}:${r.binary!.port}`), timeoutMs: 15_000 });
    const acked = new Map<string, string>();
    let stop = false;
    const counts = { unknown: 0, certain: 0 };
    const httpWriters = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `h/${w}/${i}`;
        try {
          await http.call('PUT', `/v1/kv/${encodeURIComponent(key)}`, `v${i}`);
          acked.set(key, `v${i}`);
        } catch (e) {
          if ((e as { certain?: boolean }).certain) counts.certain++;
          else counts.unknown++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    const binWriters = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `b/${w}/${i}`;
        try {
          await bin.put(key, `v${i}`);
          acked.set(key, `v${i}`);
        } catch (e) {
          if ((e as { certain?: boolean }).certain) counts.certain++;
          else counts.unknown++;
        }
      }
    });
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      const leader = await waitForLeader(cluster);
      const beforeKill = acked.size;
      await cluster.kill(leader);
      const next = await waitForLeader(cluster, leader);
      assert.notEqual(next, leader);
      await new Promise((r) => setTimeout(r, 1_500));
      const afterFailover = acked.size;
      cluster.start(leader);
      await new Promise((r) => setTimeout(r, 1_000));
      stop = true;
      await Promise.all([...httpWriters, ...binWriters]);
      assert.ok(beforeKill > 50, `load before the kill (${beforeKill} acked)`);
      assert.ok(afterFailover > beforeKill, 'writes went on after the failover');
      // Every acknowledged write, through both interfaces.
      const entries = [...acked];
      for (let i = 0; i < entries.length; i += 200) {
        await Promise.all(
          entries.slice(i, i + 200).map(async ([k, v]) => {
            const got = await bin.get(k);
            assert.equal(got === null ? null : new TextDecoder().decode(got), v, `acknowledged write ${k}`);
          }),
        );
      }
      // The restarted replica catches up to the same state.
      const deadline = Date.now() + 20_000;
      let agree = false;
      while (!agree && Date.now() < deadline) {
        const sts = await Promise.all(cluster.endpoints.map((e) => statusOf(e)));
        agree = sts.every((s) => s !== null && s.appliedIndex === sts[0]!.appliedIndex && s.kv.keys === sts[0]!.kv.keys);
        if (!agree) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(agree, 'all three replicas reach the same applied state');
      // And the same state by their digests: compared at every 64th slot, none differed. (The
      // killed leader's digests from before the kill and after its replay count too.)
      const sts = await Promise.all(cluster.endpoints.map((e) => statusOf(e)));
      for (const s of sts) assert.deepEqual(s!.stateDigest?.differ, [], `replica ${s!.id}'s digests: ${JSON.stringify(s!.stateDigest)}`);
      assert.ok(sts.some((s) => s!.stateDigest!.agree.length > 0), `digests compared: ${JSON.stringify(sts.map((s) => s!.stateDigest))}`);
      for (const r of cluster.replicas) assert.doesNotMatch(readFileSync(r.logFile, 'utf8'), /state divergence/, `replica ${r.id}'s log`);
      const table = await synod(['status', '--endpoints', endpoints]);
      assert.match(table.stdout, /STATE DIGEST/);
      assert.match(table.stdout, /[0-9a-f]{8}@\d+ same as \d/, table.stdout);
      assert.doesNotMatch(table.stdout, /DIFFERS|DIVERGENCE/, table.stdout);
      const local = new HttpKvClient({ endpoints: [cluster.endpoints[leader - 1]!], timeoutMs: 5_000 });
      const sample = entries[entries.length - 1]!;
      const a = await local.call('GET', `/v1/kv/${encodeURIComponent(sample[0])}?consistency=local`);
      assert.equal(a.body.toString('utf8'), sample[1]);
      local.close();
    } finally {
      stop = true;
      http.close();
      bin.close();
    }
  });
});

describe('synod start: clear errors and a clean stop', () => {
  test('port in use, another cluster\'s data dir, missing flags, SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-start-'));
    const [peerPort, httpPort] = await freePorts(2);
    const base = ['start', '--id', '1', '--data', join(dir, 'd'), '--peer', `127.0.0.1:${peerPort}`, '--http', `127.0.0.1:${httpPort}`, '--initial-cluster', `1=127.0.0.1:${peerPort}`, '--log-level', 'warn'];
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(peerPort, '127.0.0.1', r));
    try {
      const busy = await synod([...base, '--cluster-id', 'alpha']);
      assert.equal(busy.code, 2);
      assert.match(busy.stderr, new RegExp(`port ${peerPort}.* in use`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    // A clean run creates the data dir for cluster alpha, and stops on SIGTERM with exit 0.
    const child = spawn(process.execPath, [MAIN_JS, ...base, '--cluster-id', 'alpha'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (await statusOf(`http://127.0.0.1:${httpPort}`)) === null) await new Promise((r) => setTimeout(r, 50));
      assert.ok(await statusOf(`http://127.0.0.1:${httpPort}`), 'the replica serves HTTP');
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
    const other = await synod([...base, '--cluster-id', 'beta']);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /belongs to cluster 'alpha'/);
    const missing = await synod(['start', '--id', '1']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing --initial-cluster/);
    const env = await new Promise<Run>((resolve) => {
      execFile(process.execPath, [MAIN_JS, 'start'], { env: { ...process.env, SYNOD_ID: '2', SYNOD_INITIAL_CLUSTER: '1=127.0.0.1:1' } }, (err, stdout, stderr) =>
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
      );
    });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /replica 2 is not in --initial-cluster/);
    rmSync(dir, { recursive: true, force: true });
  });
});
