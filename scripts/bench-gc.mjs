// The replicas' garbage collections in a `synod bench` run, as V8 reports them: a diagnostic.
//
// Run the bench with V8's per-collection trace in the replicas and their logs kept, then point this
// at the run's --json output and the logs:
//
//   SYNOD_BENCH_KEEP_LOGS=/tmp/logs SYNOD_CHILD_NODE_ARGS=--trace-gc-nvp \
//     node dist/src/cli/main.js bench --rate 150000 --inflight 256 --warmup 5 --duration 8 --json --no-verify > run.json
//   node scripts/bench-gc.mjs run.json /tmp/logs
//
// Per replica (the whole process's life, warm-up included): scavenges, their pauses (total,
// median, p90, max), bytes promoted to the old generation, and the other collections, with the
// times of the mark-compacts (seconds since the replica started). What a scavenge costs is what it
// copies, what is alive at that moment; what it promotes is what lived through two of them. What a
// mark-compact collects is mostly garbage of the old generation: promoted objects that died, and
// the external memory (buffers) they held (docs/performance.md, "Session 16").

import { readFileSync } from 'node:fs';

const [runJson, dir] = process.argv.slice(2);
if (!runJson || !dir) throw new Error('usage: node scripts/bench-gc.mjs <bench --json output> <SYNOD_BENCH_KEEP_LOGS dir>');
const run = JSON.parse(readFileSync(runJson, 'utf8'));
const field = (line, name) => {
  const m = new RegExp(`\\b${name}=([\\d.]+)`).exec(line);
  return m ? Number(m[1]) : 0;
};
for (const p of run.processes) {
  const id = /replica (\d+)/.exec(p.name)?.[1];
  if (!id) continue;
  let lines;
  try {
    lines = readFileSync(`${dir}/replica-${id}.log`, 'utf8').split('\n').filter((l) => l.includes(' pause=') && l.includes(' gc='));
  } catch (e) {
    throw new Error(`bench-gc: ${e.message} (were the logs kept, SYNOD_BENCH_KEEP_LOGS?)`);
  }
  if (lines.length === 0) throw new Error(`bench-gc: no --trace-gc-nvp lines in replica-${id}.log (SYNOD_CHILD_NODE_ARGS=--trace-gc-nvp?)`);
  const scavenges = [];
  let promoted = 0;
  let others = 0;
  let othersMs = 0;
  const markCompacts = []; // seconds since the process started
  const secondsOf = (line) => Number(/^\[[^\]]*\]\s+([\d.]+) ms:/.exec(line)?.[1] ?? NaN) / 1000;
  for (const l of lines) {
    const pause = field(l, 'pause');
    if (/\bgc=s\b/.test(l)) {
      scavenges.push(pause);
      promoted += field(l, 'promoted');
    } else {
      others++;
      othersMs += pause;
      if (/\bgc=mc\b/.test(l)) markCompacts.push(secondsOf(l));
    }
  }
  scavenges.sort((a, b) => a - b);
  const total = scavenges.reduce((a, b) => a + b, 0);
  const at = (q) => scavenges[Math.min(scavenges.length - 1, Math.floor(q * scavenges.length))] ?? 0;
  console.log(
    `${p.name.padEnd(20)} scavenges ${scavenges.length}, ${total.toFixed(0)} ms (median ${at(0.5)}, p90 ${at(0.9)}, max ${at(1)} ms), promoted ${(promoted / 1e6).toFixed(1)} MB; other collections ${others}, ${othersMs.toFixed(0)} ms; mark-compacts ${markCompacts.length}${markCompacts.length > 0 ? ` (at ${markCompacts.map((t) => t.toFixed(1)).join(' ')} s)` : ''}`,
  );
}
