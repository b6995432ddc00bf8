// Interleaved A/B comparison of two builds with `synod bench` (scripts/bench-ab.mjs runs it).
//
// Why interleaved: on a shared or virtual machine the speed moves by ±20% within minutes
// (BENCHMARKS.md), so a run of build A followed later by a run of build B compares the hours, not
// the builds. Runs alternate A, B, A, B... (the first build of each pair alternates too, so that
// neither always runs on a machine the other has just warmed), and the summary is the median of
// each build's runs and, per pair, B's value over A's: the ratios' median is what to quote.

/** What one `synod bench --json` run reports that an A/B compares. */
export interface AbRun {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU µs per operation of all processes together (generator and replicas). */
  cpuUsPerOp: number;
}

export type AbMetric = keyof AbRun;
export const AB_METRICS: readonly AbMetric[] = ['opsPerSec', 'p50Ms', 'p99Ms', 'maxMs', 'cpuUsPerOp'];

/** The fields of a `synod bench --json` object an A/B needs; throws if one is missing. */
export function abRunOf(report: unknown): AbRun {
  const r = report as { opsPerSec?: unknown; p50Ms?: unknown; p99Ms?: unknown; maxMs?: unknown; processes?: Array<{ cpuUsPerOp?: unknown }> };
  const num = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`bench report without a numeric ${name}`);
    return v;
  };
  if (!Array.isArray(r.processes) || r.processes.length === 0) throw new Error('bench report without processes');
  return {
    opsPerSec: num(r.opsPerSec, 'opsPerSec'),
    p50Ms: num(r.p50Ms, 'p50Ms'),
    p99Ms: num(r.p99Ms, 'p99Ms'),
    maxMs: num(r.maxMs, 'maxMs'),
    cpuUsPerOp: r.processes.reduce((sum, p, i) => sum + num(p.cpuUsPerOp, `processes[${i}].cpuUsPerOp`), 0),
  };
}

/** Which build runs first in pair `i` (0-based): A, B, then B, A, and so on. */
export function pairOrder(i: number): ['a', 'b'] | ['b', 'a'] {
  return i % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface AbSummary {
  pairs: number;
  /** Per metric: the median over A's runs, over B's runs, and the median of B/A over the pairs. */
  metrics: Record<AbMetric, { a: number; b: number; ratio: number }>;
}

/** Summarises pairs of runs (pairs[i] = [A's run, B's run], whichever ran first). */
export function summarizeAb(pairs: ReadonlyArray<readonly [AbRun, AbRun]>): AbSummary {
  if (pairs.length === 0) throw new Error('no pairs to summarise');
  const metrics = {} as AbSummary['metrics'];
  for (const m of AB_METRICS) {
    metrics[m] = {
      a: median(pairs.map(([a]) => a[m])),
      b: median(pairs.map(([, b]) => b[m])),
      ratio: median(pairs.map(([a, b]) => b[m] / a[m])),
    };
  }
  return { pairs: pairs.length, metrics };
}
