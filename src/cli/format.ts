// Output for people: aligned tables, durations and sizes.
import type { StateDigestStatus } from '../runtime/state-digests.js';

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function ms(n: number): string {
  if (n < 1) return `${(n * 1000).toFixed(0)} µs`;
  if (n < 10) return `${n.toFixed(2)} ms`;
  if (n < 1000) return `${n.toFixed(0)} ms`;
  return `${(n / 1000).toFixed(2)} s`;
}

/** A replica's newest state digest as text (the status table, the demo): its slot and who agreed or differed there. */
export function digestText(d: StateDigestStatus | null | undefined): string {
  if (!d) return '-';
  const agree = d.agree.length > 0 ? ` same as ${d.agree.join(',')}` : '';
  const differ = d.differ.length > 0 ? ` DIFFERS from ${d.differ.join(',')}` : '';
  return `${d.digest}@${d.slot}${agree}${differ}` + (agree || differ ? '' : ' (no peer digest yet)');
}
