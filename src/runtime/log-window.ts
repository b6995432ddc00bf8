// The recent log a replica keeps in memory for peers that lag: the encoded entry records of the
// latest applied slots, bounded in bytes (ReplicaOptions.logMemoryBytesMax).
//
// The core holds entries as objects (a Command and a payload view per command) only until they
// are applied: the runtime compacts it right after each apply. Before, entries stayed there until
// a snapshot covered them (snapshotIntervalBytes plus compactionMarginSlots: ~500,000 commands at
// full load, several hundred MiB of objects), and even a window of a second of load kept every
// command alive long enough for V8 to promote it to the old generation. A peer that asks for
// applied slots is answered from here: the last entry record appended for each slot (its log
// record's payload, one buffer per slot, already encoded), then from the log on disk
// (log-catchup.ts), then, below the disk log's start, with a snapshot.
//
// The records are copies in a RecordArena (record-arena.ts): an encoded record is its own
// ArrayBuffer, and held here for the whole window, the records reached V8's old generation and
// made it collect the whole heap every few seconds.
//
// Why the last record of a slot is its chosen value: see log-catchup.ts. Records of slots not yet
// applied are kept too (at most the pipeline window); only applied slots count toward the bound
// and leave, oldest first.
//
//   records:  slot -> entry record bytes            (SeqMap: slots arrive in order)
//   applied:  [ s1 | s2 | ... | sN ]  running byte totals after each, oldest first; head: released

import { decodeEntry } from '../codec/values.js';
import { SeqMap } from '../core/seq-map.js';
import type { Entry, Slot } from '../core/types.js';
import { RecordArena } from './record-arena.js';

/** Memory of one kept slot beyond its record's bytes (the array object, ring and window entries). */
export const SLOT_OVERHEAD_BYTES = 128;
/** Default ReplicaOptions.logMemoryBytesMax. */
export const DEFAULT_LOG_MEMORY_BYTES_MAX = 4 * 1024 * 1024;

export class RecentLog {
  private readonly records = new SeqMap<Uint8Array>();
  private readonly arena: RecordArena;
  /** Gives a forgotten record's room back (SeqMap.deleteBelow's callback, made once). */
  private readonly releaseRecord = (record: Uint8Array): void => this.arena.release(record);
  private slots: Slot[] = [];
  private ends: number[] = [];
  private head = 0;
  private total = 0;
  private releasedTotal = 0;

  constructor(arenaChunkBytes?: number) {
    this.arena = new RecordArena(arenaChunkBytes);
  }

  /** Bytes of the applied slots' records still held. */
  get heldBytes(): number {
    return this.total - this.releasedTotal;
  }

  /** Bytes of the arena's chunks (in use or spare): what holding the records costs in memory. */
  get arenaBytes(): number {
    return this.arena.chunkBytesHeld;
  }

  /** An entry record for `slot` was appended to the log: it replaces any earlier one. (Copied: the caller may reuse it.) */
  appended(slot: Slot, record: Uint8Array): void {
    const earlier = this.records.get(slot);
    if (earlier !== undefined) this.arena.release(earlier);
    this.records.set(slot, this.arena.copy(record));
  }

  /** `slot` was applied (slots arrive in order; a repeat is ignored): its record now counts toward the bound. */
  applied(slot: Slot): void {
    const n = this.slots.length;
    if (n > this.head && this.slots[n - 1]! >= slot) return;
    this.total += (this.records.get(slot)?.length ?? 0) + SLOT_OVERHEAD_BYTES;
    this.slots.push(slot);
    this.ends.push(this.total);
  }

  /**
   * Forgets the oldest applied slots until at most `bytesMax` (plus one slot) stays held; in steps
   * of at least an eighth of `bytesMax`, so that it runs now and then, not after every slot.
   */
  release(bytesMax: number): void {
    if (this.heldBytes <= bytesMax + Math.floor(bytesMax / 8)) return;
    let i = this.head;
    // Slot i may go when the slots after it alone hold bytesMax or more; the newest slot stays.
    while (i < this.slots.length - 1 && this.total - this.ends[i]! >= bytesMax) i++;
    if (i > this.head) this.releaseThrough(this.slots[i - 1]!);
  }

  /** Forgets every slot up to `slot` (the log on disk released them: memory keeps no more than the log). */
  releaseThrough(slot: Slot): void {
    this.records.deleteBelow(slot + 1, this.releaseRecord);
    let i = this.head;
    while (i < this.slots.length && this.slots[i]! <= slot) i++;
    if (i === this.head) return;
    this.head = i;
    this.releasedTotal = this.ends[i - 1]!;
    if (this.head >= 1024 && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.ends = this.ends.slice(this.head);
      this.head = 0;
    }
  }

  /** A snapshot of `slot` was installed: nothing at or below it is needed, nothing applied is held. */
  reset(slot: Slot): void {
    this.records.deleteBelow(slot + 1, this.releaseRecord);
    this.slots = [];
    this.ends = [];
    this.head = 0;
    this.releasedTotal = this.total;
  }

  /**
   * Chosen entries of slots fromSlot, fromSlot + 1, ... up to `lastSlot` (all applied), as far as
   * they are held here in a row: at most `entriesMax`, and past `bytesMax` of records only the first.
   * Their payloads alias memory this log reuses: encode them (or copy) before it changes again.
   */
  entries(fromSlot: Slot, lastSlot: Slot, entriesMax: number, bytesMax: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let slot = fromSlot; slot <= lastSlot && out.length < entriesMax; slot++) {
      const record = this.records.get(slot);
      if (record === undefined || (out.length > 0 && bytes + record.length > bytesMax)) break;
      bytes += record.length;
      const entry = decodeEntry(record);
      if (entry.slot !== slot) throw new Error(`recent log: the record kept for slot ${slot} holds slot ${entry.slot}`);
      out.push({ slot, ballot: entry.ballot, value: entry.value, chosen: true });
    }
    return out;
  }
}
