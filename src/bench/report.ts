// Output of a run for people: a summary table (text), the stage table of --trace, and a
// self-contained HTML report (inline SVG, no external assets) with latency over time and a
// latency histogram.

import { table } from '../cli/format.js';
import { othersText } from './machine-others.js';
import type { BenchResult } from './run.js';
import { TRACE_SHAPES, TRACE_STAGES } from './trace.js';

const n = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–');
const msText = (x: number) => (Number.isFinite(x) ? (x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(2)} ms`) : '–');

export function summaryText(r: BenchResult): string {
  const p = r.params as Record<string, unknown>;
  const shape =
    `${p.mode}${p.mode === 'inproc' ? ` via ${p.via}` : ''}, ${p.mode === 'etcd' ? 3 : p.replicas} replicas, ${p.mode === 'etcd' ? 'etcd (fsync per commit)' : `${p.storage} log`}, ` +
    `${p.clients} clients × ${p.inflight} in flight${p.mode === 'inproc' && p.via === 'direct' ? '' : ` on ${p.mode === 'etcd' ? Number(p.clients) * Number(p.inflight) : p.connections} connections`}, ` +
    `key ${p.keyBytes} B, value ${p.valueBytes} B, key space ${n(Number(p.keySpace))}, reads ${Math.round(Number(p.readRatio) * 100)}% (${p.consistency})` +
    (Number(p.rateOpsPerS) > 0 ? `, open loop at ${n(Number(p.rateOpsPerS))} ops/s` : ', closed loop') +
    (Number(p.loadWorkers) > 1 ? `, load from ${p.loadWorkers} worker threads` : '');
  const rows: Array<[string, string]> = [
    ['throughput', `${n(r.opsPerSec)} ops/s  (${n(r.writesPerSec)} writes/s, ${n(r.readsPerSec)} reads/s)`],
    ['operations', `${n(r.ops)} in ${r.elapsedS.toFixed(2)} s; ${n(r.errors)} errors${r.errors ? ` ${JSON.stringify(r.errorsByCode)}` : ''}${r.laneWaits ? `; ${n(r.laneWaits)} waited for a free lane (the wait is in their latency)` : ''}`],
    ['latency p50 / p90', `${msText(r.p50Ms)} / ${msText(r.p90Ms)}`],
    ['latency p99 / p99.9 / max', `${msText(r.p99Ms)} / ${msText(r.p999Ms)} / ${msText(r.maxMs)}`],
  ];
  if (r.reads > 0 && r.writes > 0) rows.push(['writes p50 / p99', `${msText(r.latency.write.p50Ms)} / ${msText(r.latency.write.p99Ms)}`], ['reads p50 / p99', `${msText(r.latency.read.p50Ms)} / ${msText(r.latency.read.p99Ms)}`]);
  if (r.storage) {
    rows.push(
      ['fdatasyncs per op (leader / all)', `${r.storage.leaderSyncsPerOp.toFixed(4)} / ${r.storage.clusterSyncsPerOp.toFixed(4)}  (leader ${n(r.storage.leaderSyncsPerS)}/s)`],
      ['bytes written per op (leader / all)', `${n(r.storage.leaderBytesWrittenPerOp, 1)} / ${n(r.storage.clusterBytesWrittenPerOp, 1)}`],
    );
  }
  if (r.batches) rows.push(['batches (leader)', `${n(r.batches.commandsPerSlot, 1)} commands/slot, ${n(r.batches.recordsPerSync, 1)} records/fdatasync, ${n(r.batches.slotsPerS)} slots/s`]);
  const digests = r.storage?.replicas ?? [];
  if (digests.some((x) => x.stateDigests > 0)) {
    const made = digests.map((x) => `${x.id}: ${n(x.stateDigests)}${x.stateDigestsSkipped ? ` (+${n(x.stateDigestsSkipped)} skipped)` : ''}`).join(', ');
    const differ = digests.reduce((t, x) => t + x.stateDigestMismatches, 0);
    rows.push(['state digests (SAFETY.md)', `made per replica ${made}; ${differ === 0 ? 'none differed' : `${n(differ)} DIFFERED: the replicas' states diverged (their logs say where)`}`]);
  }
  if (r.notLeaderRetries) rows.push(['leadership moved', `${n(r.notLeaderRetries)} operations retried on NOT_LEADER (an election during the run: the event loop starved heartbeats)`]);
  const v = r.verify;
  rows.push(['verification', v.skipped ? `skipped (${v.skipped})` : `${v.ok}/${v.keysChecked} acknowledged writes read back${v.missing + v.wrong + v.errors ? ` (${v.missing} missing, ${v.wrong} wrong, ${v.errors} errors)` : ''}${v.uncertain ? `; ${v.uncertain} keys with an unknown last outcome not checked` : ''}`]);
  rows.push(['machine', `${r.machine.cpus} cores (${r.machine.cpuModel}), Node ${r.machine.node}, load average ${r.machine.loadAvg1m}`]);
  if (r.machine.others) rows.push(['other tasks on the machine', othersText(r.machine.others)]);
  const loop = r.processes.some((x) => x.loopDelayP99Ms !== undefined);
  const procs = table(
    ['process', 'pid', 'CPU s', 'cores', 'CPU µs/op', 'RSS MiB', 'peak MiB', ...(loop ? ['loop delay p99 / max ms'] : [])],
    r.processes.map((x) => [
      x.name, x.pid, n(x.cpuS, 2), n(x.cpuCores, 2), n(x.cpuUsPerOp, 2), n(x.rssMiB, 0), n(x.rssPeakMiB, 0),
      ...(loop ? [x.loopDelayP99Ms === undefined ? '' : `${n(x.loopDelayP99Ms, 1)} / ${n(x.loopDelayMaxMs!, 1)}`] : []),
    ]),
  );
  const parts = [`synod bench: ${shape}`, '', table(['', ''], rows).split('\n').slice(2).join('\n'), '', procs];
  if (r.trace) parts.push('', traceText(r));
  else if (r.traceError && (r.params as { trace?: boolean }).trace) parts.push('', `trace: ${r.traceError}`);
  return parts.join('\n');
}

export function traceText(r: BenchResult): string {
  if (!r.trace) return '';
  const t = r.trace;
  const stages = table(
    ['stage (leader)', 'count', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'mean µs'],
    TRACE_STAGES.map((s) => [s, n(t.stages[s].count), n(t.stages[s].p50Us), n(t.stages[s].p90Us), n(t.stages[s].p99Us), n(t.stages[s].p999Us), n(t.stages[s].meanUs)]),
  );
  const shapes = table(
    ['batch shape (leader)', 'count', 'mean', 'p50', 'p99', 'max'],
    TRACE_SHAPES.map((s) => [s, n(t.shapes[s].count), n(t.shapes[s].mean, 1), n(t.shapes[s].p50), n(t.shapes[s].p99), n(t.shapes[s].max)]),
  );
  const clientUs = r.latency.write.p50Ms * 1000;
  const serverUs = t.stages.server.p50Us;
  const note = `client round trip p50 ${n(clientUs)} µs − server (propose→result) p50 ${n(serverUs)} µs ≈ ${n(Math.max(0, clientUs - serverUs))} µs in client encode/decode, sockets and the reply path (a difference of medians, not a per-request figure)`;
  return [stages, '', shapes, '', note].join('\n');
}

// ---------------------------------------------------------------- HTML

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function axisTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max * 1.0001; v += step) ticks.push(v);
  return ticks;
}

function lineChart(title: string, xs: number[], series: Array<{ name: string; color: string; ys: number[] }>, xLabel: string, yLabel: string): string {
  const W = 760;
  const H = 280;
  const L = 60;
  const B = 40;
  const T = 30;
  const R = 20;
  const xMax = Math.max(...xs, 1e-9);
  const yMax = Math.max(...series.flatMap((s) => s.ys.filter(Number.isFinite)), 1e-9) * 1.1;
  const x = (v: number) => L + (v / xMax) * (W - L - R);
  const y = (v: number) => H - B - (v / yMax) * (H - B - T);
  const grid = axisTicks(yMax)
    .map((t) => `<line x1="${L}" x2="${W - R}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${L - 6}" y="${y(t) + 4}" text-anchor="end">${+t.toPrecision(3)}</text>`)
    .join('');
  const xt = axisTicks(xMax)
    .map((t) => `<text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${+t.toPrecision(3)}</text>`)
    .join('');
  const lines = series
    .map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${xs.map((v, i) => `${x(v).toFixed(1)},${y(s.ys[i] ?? 0).toFixed(1)}`).join(' ')}"/>`)
    .join('');
  const legend = series.map((s, i) => `<text x="${L + 10 + i * 120}" y="${T - 10}" fill="${s.color}">■ ${esc(s.name)}</text>`).join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-size="11" font-family="sans-serif"><text x="${W / 2}" y="14" text-anchor="middle" font-weight="bold">${esc(title)}</text>${grid}${xt}${lines}${legend}<text x="${W / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text><text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text></svg>`;
}

function barChart(title: string, buckets: Array<[number, number]>): string {
  const W = 760;
  const H = 280;
  const L = 60;
  const B = 50;
  const T = 30;
  const R = 20;
  if (buckets.length === 0) return '<p>no samples</p>';
  const yMax = Math.max(...buckets.map((b) => b[1]), 1) * 1.1;
  const bw = (W - L - R) / buckets.length;
  const y = (v: number) => H - B - (v / yMax) * (H - B - T);
  const bars = buckets
    .map(([ub, c], i) => `<rect x="${(L + i * bw).toFixed(1)}" y="${y(c).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(H - B - y(c)).toFixed(1)}" fill="#4a7bd0"><title>≤ ${ub < 1 ? `${(ub * 1000).toFixed(0)} µs` : `${ub.toFixed(2)} ms`}: ${c}</title></rect>`)
    .join('');
  const every = Math.max(1, Math.ceil(buckets.length / 10));
  const labels = buckets
    .map(([ub], i) => (i % every === 0 ? `<text x="${(L + i * bw + bw / 2).toFixed(1)}" y="${H - B + 14}" text-anchor="middle">${ub < 1 ? `${(ub * 1000).toFixed(0)}µs` : `${+ub.toPrecision(3)}ms`}</text>` : ''))
    .join('');
  const grid = axisTicks(yMax)
    .map((t) => `<line x1="${L}" x2="${W - R}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/><text x="${L - 6}" y="${y(t) + 4}" text-anchor="end">${+t.toPrecision(3)}</text>`)
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-size="11" font-family="sans-serif"><text x="${W / 2}" y="14" text-anchor="middle" font-weight="bold">${esc(title)}</text>${grid}${bars}${labels}<text x="${W / 2}" y="${H - 10}" text-anchor="middle">latency (log-spaced buckets, upper bounds)</text></svg>`;
}

export function htmlReport(r: BenchResult): string {
  const xs = r.timeline.map((t) => t.tS);
  const latency = lineChart('latency over time (250 ms intervals)', xs, [{ name: 'p50 ms', color: '#2a9d8f', ys: r.timeline.map((t) => t.p50Ms) }, { name: 'p99 ms', color: '#e76f51', ys: r.timeline.map((t) => t.p99Ms) }], 'seconds into the measured window', 'ms');
  const rate = lineChart('throughput over time', xs, [{ name: 'ops/s', color: '#264653', ys: r.timeline.map((t) => t.opsPerSec) }], 'seconds into the measured window', 'ops/s');
  const hist = barChart('latency histogram', r.histogram);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>synod bench ${n(r.opsPerSec)} ops/s</title>
<style>body{font-family:sans-serif;max-width:820px;margin:2em auto;color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}</style></head>
<body><h1>synod bench</h1>
<pre>${esc(summaryText(r))}</pre>
${latency}
${rate}
${hist}
<h2>parameters and raw result</h2>
<pre>${esc(JSON.stringify({ ...r, timeline: `${r.timeline.length} points (plotted above)`, histogram: `${r.histogram.length} buckets (plotted above)` }, null, 2))}</pre>
</body></html>
`;
}
