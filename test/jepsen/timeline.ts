// A timeline of a run as one SVG: a row per client process, each op a bar from invocation to
// completion colored by outcome (ok green, fail red, info amber, an info op with no completion
// runs to the end of the run, hatched), faults shaded across all rows and labelled on top. The
// ops of a linearizability counterexample are outlined in black. Hover a bar for its op.

import { formatRecord, type OpRecord } from '../../src/check/index.js';
import type { FaultWindow } from './nemesis.js';

const COLORS: Record<string, string> = { ok: '#2e9e44', fail: '#d64541', info: '#f0a202' };
const FAULT_COLORS: Record<string, string> = {
  kill: '#e74c3c',
  pause: '#8e44ad',
  partition: '#2980b9',
  delay: '#16a085',
  loss: '#7f8c8d',
  transfer: '#d35400',
  members: '#27ae60',
  disk: '#c0392b',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function timelineSvg(ops: readonly OpRecord[], faults: readonly FaultWindow[], opts: { title: string; highlight?: ReadonlySet<number> }): string {
  const highlight = opts.highlight ?? new Set<number>();
  // Loops, not Math.min(...xs): a long run's ops overflow the argument list.
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const o of ops) {
    t0 = Math.min(t0, o.invokeMs);
    t1 = Math.max(t1, o.completeMs ?? o.invokeMs);
  }
  for (const f of faults) {
    t0 = Math.min(t0, f.startMs);
    t1 = Math.max(t1, f.endMs);
  }
  if (!Number.isFinite(t0)) [t0, t1] = [0, 1];
  t1 += 1;
  const processes = [...new Set(ops.map((o) => String(o.process)))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const row = new Map(processes.map((p, i) => [p, i]));
  const left = 70;
  const top = 60;
  const rowH = 18;
  const width = Math.min(20_000, Math.max(1200, Math.ceil((t1 - t0) / 20)));
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * (width - left - 10);
  const height = top + processes.length * rowH + 40;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#f0a202" opacity="0.5"/></pattern></defs>');
  out.push(`<text x="4" y="14" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);
  out.push(`<text x="4" y="30">ok <tspan fill="${COLORS.ok}">■</tspan>  fail <tspan fill="${COLORS.fail}">■</tspan>  info <tspan fill="${COLORS.info}">■</tspan>  counterexample: black outline. Faults: ${Object.entries(FAULT_COLORS).map(([k, c]) => `${k} <tspan fill="${c}">■</tspan>`).join(' ')}</text>`);
  for (const f of faults) {
    const c = FAULT_COLORS[f.kind] ?? '#999';
    out.push(`<rect x="${x(f.startMs).toFixed(1)}" y="${top - 14}" width="${Math.max(1, x(f.endMs) - x(f.startMs)).toFixed(1)}" height="${processes.length * rowH + 14}" fill="${c}" opacity="0.15"><title>${esc(`${f.kind}: ${f.detail} [${f.startMs.toFixed(0)}..${f.endMs.toFixed(0)}]`)}</title></rect>`);
    out.push(`<text x="${x(f.startMs).toFixed(1)}" y="${top - 4}" fill="${c}">${esc(f.kind)}</text>`);
  }
  processes.forEach((p, i) => {
    out.push(`<text x="4" y="${top + i * rowH + 12}">${esc(p)}</text>`);
  });
  for (const o of ops) {
    const r = row.get(String(o.process))!;
    const end = o.completeMs ?? t1;
    const fill = o.completeMs === null ? 'url(#hatch)' : COLORS[o.outcome];
    const stroke = highlight.has(o.id) ? ' stroke="#000" stroke-width="1.5"' : '';
    out.push(`<rect x="${x(o.invokeMs).toFixed(1)}" y="${top + r * rowH + 2}" width="${Math.max(1, x(end) - x(o.invokeMs)).toFixed(1)}" height="${rowH - 4}" fill="${fill}"${stroke}><title>${esc(formatRecord(o))}</title></rect>`);
  }
  // A time axis in seconds.
  const axisY = top + processes.length * rowH + 16;
  const spanS = (t1 - t0) / 1000;
  const stepS = spanS > 300 ? 60 : spanS > 60 ? 10 : 5;
  for (let s = 0; s <= spanS; s += stepS) {
    out.push(`<text x="${x(t0 + s * 1000).toFixed(1)}" y="${axisY}">${s}s</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
