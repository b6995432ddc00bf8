// The Prometheus text format, as the KV server's /metrics writes it (HTTP and binary ports alike).

/** One metric: its HELP and TYPE lines, then a line per sample (`labels` is '' or '{k="v",...}'). */
export function metricLines(lines: string[], name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, v] of samples) lines.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
}
