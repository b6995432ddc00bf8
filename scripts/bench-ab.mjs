#!/usr/bin/env node
// Two builds of synod, interleaved, the same benchmark: the way every before/after in BENCHMARKS.md is
// measured, as one command.
//   node scripts/bench-ab.mjs --a <checkout> --b <checkout> [--pairs 3] [--json] [-- <synod bench flags>]
// Each checkout must be built (`npm ci` or `npm run build`). A build is `<checkout>/dist/src/cli/main.js`;
// every run is `node <it> bench --json --no-verify <flags>` (default flags: --duration 8 --warmup 2).
// Pairs alternate which build goes first. Prints each run and the summary: the median of each build's
// runs and the median over pairs of B/A (src/bench/ab.ts). A checkout of an earlier commit for A:
//   git worktree add /tmp/base <commit> && (cd /tmp/base && npm ci)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { AB_METRICS, abRunOf, pairOrder, summarizeAb } = await import(join(root, 'dist', 'src', 'bench', 'ab.js'));

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split < 0 ? argv : argv.slice(0, split);
const flags = split < 0 ? ['--duration', '8', '--warmup', '2'] : argv.slice(split + 1);
const option = (name) => {
  const i = own.indexOf(name);
  return i >= 0 ? own[i + 1] : undefined;
};
const json = own.includes('--json');
const pairs = Number(option('--pairs') ?? 3);
const dirs = { a: option('--a'), b: option('--b') };
function usage(message) {
  process.stderr.write(`bench-ab: ${message}\nusage: node scripts/bench-ab.mjs --a <checkout> --b <checkout> [--pairs 3] [--json] [-- <synod bench flags>]\n`);
  process.exit(2);
}
if (!dirs.a || !dirs.b) usage('--a and --b are required');
if (!Number.isInteger(pairs) || pairs < 1) usage(`--pairs must be a positive integer, got ${option('--pairs')}`);
const mains = {};
for (const side of ['a', 'b']) {
  mains[side] = join(resolve(dirs[side]), 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(mains[side])) usage(`${mains[side]} not found: build that checkout first (npm ci)`);
}

let current = null;
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { current?.kill('SIGINT'); process.exit(130); });

function bench(side) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [mains[side], 'bench', '--json', '--no-verify', ...flags], { stdio: ['ignore', 'pipe', 'ignore'] });
    current = child;
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => {
      current = null;
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) return reject(new Error(`build ${side.toUpperCase()}: synod bench exited with ${code}${line ? '' : ' and no JSON'}`));
      resolveRun(abRunOf(JSON.parse(line)));
    });
  });
}

const fmt = (r) => `${Math.round(r.opsPerSec).toLocaleString('en-US')} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms, CPU ${r.cpuUsPerOp.toFixed(2)} µs/op`;
const results = [];
for (let i = 0; i < pairs; i++) {
  const pair = {};
  for (const side of pairOrder(i)) {
    pair[side] = await bench(side);
    if (!json) process.stderr.write(`pair ${i + 1} ${side.toUpperCase()}: ${fmt(pair[side])}\n`);
  }
  results.push([pair.a, pair.b]);
}
const summary = summarizeAb(results);
if (json) {
  console.log(JSON.stringify({ a: resolve(dirs.a), b: resolve(dirs.b), flags, runs: results, ...summary }));
} else {
  console.log(`\n${summary.pairs} interleaved pairs, synod bench ${flags.join(' ')}`);
  console.log('metric        A (median)    B (median)    B/A (median of pairs)');
  for (const m of AB_METRICS) {
    const { a, b, ratio } = summary.metrics[m];
    console.log(`${m.padEnd(12)}  ${a.toFixed(2).padStart(12)}  ${b.toFixed(2).padStart(12)}  ${ratio.toFixed(3).padStart(8)}`);
  }
}
