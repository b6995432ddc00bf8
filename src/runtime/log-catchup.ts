// Chosen entries read back from the durable log, for a peer that lags behind what the replica
// still holds in memory (log-window.ts releases applied entries from memory long before a
// snapshot lets the log on disk go).
//
// Which record holds a slot's chosen value: the last one written for that slot. A slot is
// written again only with the value it already had once chosen (an acceptor never votes for
// another value in a chosen slot; a learned chosen value replaces what was accepted), and
// recovery rebuilds the cells the same way (the last record of a slot wins). So for every
// slot at or below the chosen prefix, the highest LSN among its records is its chosen value.
// That record must be durable: a value learned from a peer is applied before its own write
// completes, so a slot whose last record is not yet durable ends the reply there (read()
// returns durable records only, and an older record of the slot could hold another value).

import { decodeEntry } from '../codec/values.js';
import type { Entry, Slot } from '../core/types.js';
import type { LogStore } from '../storage/log.js';

export interface LogCatchupLimits {
  /** Most slots in one answer (the core's catchupEntriesMax). */
  entriesMax: number;
  /** Stop reading after the record that crosses this many payload bytes. */
  bytesMax: number;
}

/**
 * Chosen entries of slots fromSlot, fromSlot + 1, ... (at most up to `lastSlot`), read from `log`.
 * `entryLsns` lists (lsn, slot) of every entry record appended, in LSN order; it must hold every
 * record of every slot in the range. Fewer entries (or none) when a slot's last record is not
 * durable yet or lies past the read limit; the peer asks again for the rest.
 */
export async function readChosenEntries(
  log: LogStore,
  entryLsns: ReadonlyArray<readonly [number, number]>,
  fromSlot: Slot,
  lastSlot: Slot,
  limits: LogCatchupLimits,
): Promise<Entry[]> {
  const endSlot = Math.min(lastSlot, fromSlot + limits.entriesMax - 1);
  if (endSlot < fromSlot) return [];
  const lastLsn = new Array<number>(endSlot - fromSlot + 1).fill(0);
  for (const [lsn, slot] of entryLsns) if (slot >= fromSlot && slot <= endSlot) lastLsn[slot - fromSlot] = lsn;
  const durableTail = log.headTailCapacity().tail;
  let count = 0;
  let fromLsn = Infinity;
  let toLsn = 0;
  while (count < lastLsn.length && lastLsn[count]! > 0 && lastLsn[count]! < durableTail) {
    fromLsn = Math.min(fromLsn, lastLsn[count]!);
    toLsn = Math.max(toLsn, lastLsn[count]! + 1);
    count++;
  }
  if (count === 0) return [];
  const records = await log.read(fromLsn, { toLsn, recordsMax: Math.max(1024, 4 * count), bytesMax: limits.bytesMax });
  const byLsn = new Map(records.map((r) => [r.lsn, r] as const));
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const record = byLsn.get(lastLsn[i]!);
    if (!record) break; // past the byte limit: the rest in the next answer
    const entry = decodeEntry(record.payload);
    if (entry.slot !== fromSlot + i || entry.ballot !== record.ballot) {
      throw new Error(`log record ${record.lsn}: holds slot ${entry.slot} at ballot ${entry.ballot}, expected slot ${fromSlot + i} at ${record.ballot}`);
    }
    entries.push({ slot: entry.slot, ballot: entry.ballot, value: entry.value, chosen: true });
  }
  return entries;
}
