#!/usr/bin/env node
// Synod against etcd, the same workload shape, one run, on this machine:
//   node scripts/bench-vs-etcd.mjs [--check-perf] [-- <synod bench flags: --clients 16 --inflight 64 --val-size 64 --duration 10 ...>]
//
// 1. installs etcd if needed and starts a 3-member cluster on loopback (../shared/peers/etcd.sh:
//    Debian's etcd-server, default durability: fsync per commit);
// 2. drives etcd with synod bench's own load generator through etcd's HTTP/JSON gRPC gateway
//    (/v3/kv/put, /v3/kv/range): same lanes (clients × inflight), keys, values, read ratio; HTTP/1.1
//    carries one request per socket, so each lane is a keep-alive socket there (etcd's own gRPC
//    `benchmark` tool is not packaged in Debian);
// 3. runs `synod bench` (3 `synod start` processes, file log with fdatasync) with the same flags;
// 4. measures the raw fdatasync ceiling (a bare 4 KiB write + fdatasync loop in the same file system);
// 5. with --check-perf, also runs etcd's own load test (etcdctl check perf --load s: 60 s, 50 clients);
// 6. prints both rows and the ratio (--json: one JSON object; `valid` false, and exit 1, when a side
//    had errors or failed its read-back). Everything it started is stopped
//    on exit, SIGINT and SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ETCD_SH = process.env.SYNOD_ETCD_SH ?? join(root, '..', 'shared', 'peers', 'etcd.sh');
const MAIN_JS = join(root, 'dist', 'src', 'cli', 'main.js');
const RAW_SYNC_S = 2;

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split < 0 ? argv : argv.slice(0, split);
const shape = split < 0 ? [] : argv.slice(split + 1);
const json = own.includes('--json');
const checkPerf = own.includes('--check-perf');
const say = (s) => { if (!json) process.stderr.write(s + '\n'); };

const etcdDir = mkdtempSync(join(tmpdir(), 'synod-vs-etcd-'));
const base = 24000 + (process.pid % 200) * 40; // etcd.sh uses BASE+1..BASE+22
let stopped = false;
let current = null;
function stopEtcd() {
  if (stopped) return;
  stopped = true;
  spawnSync('bash', [ETCD_SH, 'stop', etcdDir], { stdio: 'ignore' });
  rmSync(etcdDir, { recursive: true, force: true });
}
process.on('exit', stopEtcd);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { current?.kill('SIGINT'); stopEtcd(); process.exit(130); });

function run(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    current = child;
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => { current = null; resolve({ code, out }); });
  });
}

function rawSyncCeiling() {
  const dir = mkdtempSync(join(tmpdir(), 'synod-raw-sync-'));
  const fd = openSync(join(dir, 'f'), 'w');
  const block = Buffer.alloc(4096, 1);
  let n = 0;
  const t0 = performance.now();
  try {
    while (performance.now() - t0 < RAW_SYNC_S * 1000) { writeSync(fd, block); fdatasyncSync(fd); n++; }
  } finally { closeSync(fd); rmSync(dir, { recursive: true, force: true }); }
  return { syncsPerSec: Math.round(n / ((performance.now() - t0) / 1000)), bytesPerSync: 4096, dir: tmpdir() };
}

say('installing etcd if needed (apt-get)...');
const inst = spawnSync('bash', [ETCD_SH, 'install'], { stdio: json ? 'ignore' : 'inherit' });
if (inst.status !== 0) { console.error(`etcd install failed (exit ${inst.status}): ${ETCD_SH} install needs apt-get and network access`); process.exit(1); }
say(`starting a 3-member etcd on 127.0.0.1:${base + 1}.. (data in ${etcdDir})...`);
const st = spawnSync('bash', [ETCD_SH, 'start', etcdDir, String(base)], { stdio: json ? 'ignore' : 'inherit' });
if (st.status !== 0) { console.error(`etcd did not start: see ${etcdDir}/m*.log`); process.exit(1); }
const endpoints = spawnSync('bash', [ETCD_SH, 'endpoints', String(base)], { encoding: 'utf8' }).stdout.trim();

say('etcd: running the load...');
const e = await run(process.execPath, [MAIN_JS, 'bench', '--json', ...shape, '--etcd-endpoints', endpoints], { SYNOD_BENCH_ETCD_DIR: etcdDir });
let etcdPerf = null;
if (checkPerf) {
  say('etcd: etcdctl check perf --load s ...');
  const r = spawnSync('bash', [ETCD_SH, 'perf', String(base), 's'], { encoding: 'utf8' });
  etcdPerf = (r.stdout + r.stderr).split(/[\r\n]+/).filter((l) => /^(PASS|FAIL)/.test(l)).join('\n'); // drop the progress bar
}
stopEtcd();
say('synod: running the load (3 synod start processes, file log)...');
const s = await run(process.execPath, [MAIN_JS, 'bench', '--json', ...shape]);
say('raw fdatasync ceiling (4 KiB write + fdatasync loop)...');
const raw = rawSyncCeiling();

const parse = (x, who) => { try { return JSON.parse(x.out.trim().split('\n').pop()); } catch { console.error(`${who}: no JSON result (exit ${x.code})`); return null; } };
const etcd = parse(e, 'etcd');
const synod = parse(s, 'synod');
const ratio = etcd && synod && etcd.opsPerSec > 0 ? synod.opsPerSec / etcd.opsPerSec : null;
// `synod bench` exits 1 on any error or failed read-back: errors lower a side's ops/s, so a ratio
// over such a run flatters the other side. It is printed, marked, and the script exits 1.
const clean = synod !== null && etcd !== null && s.code === 0 && e.code === 0;
const summary = { synod, etcd, ratio, valid: clean, rawFdatasync: raw, etcdCheckPerf: etcdPerf, shape };
if (json) process.stdout.write(JSON.stringify(summary) + '\n');
else {
  const row = (name, r) => r ? `${name.padEnd(6)} ${String(r.opsPerSec).padStart(9)} ops/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  p99.9 ${r.p999Ms.toFixed(2)} ms  errors ${r.errors}  verified ${r.verify.ok}/${r.verify.keysChecked}` : `${name} failed`;
  console.log(`same shape: ${shape.join(' ') || '(synod bench defaults)'}`);
  console.log(row('synod', synod));
  console.log(row('etcd', etcd));
  console.log(`ratio synod/etcd: ${ratio === null ? '-' : ratio.toFixed(2) + 'x'}${ratio !== null && !clean ? ' (NOT VALID: a side had errors or failed its read-back, see the rows)' : ''}`);
  console.log(`raw fdatasync ceiling: ${raw.syncsPerSec} syncs/s of 4 KiB in ${raw.dir}`);
  if (etcdPerf) console.log(`etcdctl check perf --load s:\n${etcdPerf}`);
}
process.exit(clean ? 0 : 1);
