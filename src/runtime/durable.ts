// How the core's persist ops map onto log records, and how a DurableState is rebuilt from them.
//
// One PersistOp becomes, in order: a PROMISE record (if the promised ballot changed), one ENTRY
// record per accepted/learned entry, and a CHOSEN record (the lazily recorded chosen prefix).
// The promise rides the same group commit as the entries, so a vote costs one fdatasync. On
// recovery, promised = max(metadata's ballot, the highest ballot in the log) (SAFETY.md).

import { decodeEntry, encodeEntry } from '../codec/values.js';
import type { DurableState, Entry, PersistOp } from '../core/types.js';
import type { LogRecord, StoredRecord } from '../storage/log.js';

export const RECORD_ENTRY = 1;
export const RECORD_PROMISE = 2;
export const RECORD_CHOSEN = 3;

const EMPTY = new Uint8Array(0);

export function recordsOf(op: PersistOp): LogRecord[] {
  const records: LogRecord[] = [];
  if (op.promised !== null) records.push({ type: RECORD_PROMISE, slot: 0, ballot: op.promised, payload: EMPTY });
  for (const e of op.entries) records.push({ type: RECORD_ENTRY, slot: e.slot, ballot: e.ballot, payload: encodeEntry(e) });
  if (op.chosenPrefix !== null) records.push({ type: RECORD_CHOSEN, slot: op.chosenPrefix, ballot: 0, payload: EMPTY });
  return records;
}

/** Collects records during log recovery (LogOptions.onRecord). */
export class RecoveredLog {
  readonly entries: Entry[] = [];
  promised = 0;
  chosenPrefix = 0;
  /** (lsn, slot) of every entry record, in LSN order: where the log head may move after a snapshot. */
  readonly entryLsns: Array<[number, number]> = [];

  onRecord = (record: StoredRecord): void => {
    switch (record.type) {
      case RECORD_ENTRY: {
        // Payloads alias the log's read buffer: copy what we keep (decodeEntry's payload views).
        const entry = decodeEntry(record.payload.slice());
        if (entry.slot !== record.slot || entry.ballot !== record.ballot) {
          throw new Error(`log record ${record.lsn}: header (slot ${record.slot}, ballot ${record.ballot}) disagrees with its entry`);
        }
        this.entries.push(entry);
        this.entryLsns.push([record.lsn, record.slot]);
        break;
      }
      case RECORD_PROMISE:
        if (record.ballot > this.promised) this.promised = record.ballot;
        break;
      case RECORD_CHOSEN:
        if (record.slot > this.chosenPrefix) this.chosenPrefix = record.slot;
        break;
      default:
        throw new Error(`log record ${record.lsn}: unknown record type ${record.type}`);
    }
  };

  durableState(metaPromised: number, logHighestBallot: number, snapshot: { slot: number; configs: DurableState['snapshotConfigs'] }): DurableState {
    return {
      promised: Math.max(metaPromised, logHighestBallot, this.promised),
      entries: this.entries.filter((e) => e.slot > snapshot.slot),
      chosenPrefix: this.chosenPrefix,
      snapshotSlot: snapshot.slot,
      snapshotConfigs: snapshot.configs,
    };
  }
}
