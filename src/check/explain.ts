// A short, human-readable account of a CheckResult: the verdict, the keys that failed or ran
// out of budget, and for a violation the end of the longest linearizable prefix, the value the
// register held there, the op that could not be placed and the ops that were still pending.

import { formatRecord, formatValue } from './history.js';
import type { CheckResult, Counterexample, KeyResult } from './linearizability.js';

/** Prefix steps printed before the blocked op. */
const EXPLAIN_PREFIX_TAIL = 6;
/** Pending ops printed (a history with many timeouts may have hundreds). */
const EXPLAIN_PENDING_MAX = 12;

function keyLine(r: KeyResult): string {
  const reason = r.unknownReason !== undefined ? ` (${r.unknownReason} budget ran out)` : '';
  return (
    `key ${JSON.stringify(r.key)}: ${r.verdict}${reason} — ${r.okOps} ok, ${r.infoOps} indeterminate, ` +
    `${r.droppedOps} dropped; ${r.exploredStates} states in ${r.ms.toFixed(1)} ms`
  );
}

export function explainCounterexample(c: Counterexample): string[] {
  const lines: string[] = [];
  const tail = c.prefix.slice(-EXPLAIN_PREFIX_TAIL);
  lines.push(
    `  longest linearizable prefix: ${c.prefix.length} ops` +
      (c.prefix.length > tail.length ? `; its last ${tail.length}:` : c.prefix.length > 0 ? ':' : ''),
  );
  for (const s of tail) lines.push(`    ${formatRecord(s.op)}   => ${formatValue(s.stateAfter)}`);
  lines.push(`  value after the prefix: ${formatValue(c.stateAfterPrefix)}`);
  lines.push(`  could not place: ${formatRecord(c.blocked)}`);
  if (c.pending.length > 0) {
    lines.push(`  other ops invoked before it completed, not in the prefix (${c.pending.length}):`);
    for (const op of c.pending.slice(0, EXPLAIN_PENDING_MAX)) lines.push(`    ${formatRecord(op)}`);
    if (c.pending.length > EXPLAIN_PENDING_MAX) lines.push(`    ... ${c.pending.length - EXPLAIN_PENDING_MAX} more`);
  }
  lines.push(
    '  no order of this key\'s ops fits their times and outcomes; of the orders tried, this ' +
      'prefix got furthest before the blocked op\'s response was due.',
  );
  return lines;
}

export function explainResult(result: CheckResult): string {
  const s = result.stats;
  const lines = [
    `${result.verdict}${result.ok ? '' : ' (FAIL)'}: ${s.ops} ops over ${s.keys} keys, ` +
      `${s.exploredStates} states explored in ${s.ms.toFixed(1)} ms`,
  ];
  for (const r of result.perKey) {
    if (r.verdict === 'linearizable') continue;
    lines.push(keyLine(r));
    if (r.counterexample !== undefined) lines.push(...explainCounterexample(r.counterexample));
    if (r.verdict === 'unknown') {
      lines.push('  unknown counts as a failure: raise the budget or shorten the history to decide it.');
    }
  }
  return lines.join('\n');
}
