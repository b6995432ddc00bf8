// Offline replay of a replica's data directory (RSL's offline replay): rebuild the application state
// at a chosen slot from the newest usable snapshot and the log, without a cluster. For debugging
// ("what did the state look like at slot N?"), and for making a snapshot elsewhere.
//
// Design note
// -----------
// - Read-only for the operator: the storage layer has no read-only open (opening a file log may cut a
//   torn tail, delete *.tmp files and prepare the next segment; opening a snapshot store deletes
//   *.tmp files). So the data directory's `log/` and `snapshots/` are first copied to a temporary
//   directory (reflinked where the file system can, byte-copied otherwise) and opened there; the copy
//   is deleted afterwards. The only exception is the `memory` backend, whose log lives in this
//   process (tests): it is opened in place, and opening it changes nothing.
// - What is replayed: the log holds *accepted* entries; a slot is known chosen only up to the
//   chosen prefix recorded in RECORD_CHOSEN records (plus entries this replica learned as chosen by
//   catch-up, which continue the prefix). This mirrors the core's recover() (src/core/replica.ts):
//   for each slot the last record written wins, and the prefix stops at the first slot it does not
//   hold. Slots beyond the known chosen prefix are never applied: they may not have been chosen.
// - Commands go through the session table restored from the snapshot (src/core/sessions.ts), exactly
//   as SynodReplica.applySlot does, so a retried command that landed in two slots runs once here too.
// - The replica should be stopped while its directory is copied; a copy taken under a running
//   replica may end in a torn group, which recovery cuts off like a crash would.

import { constants as fsConstants } from 'node:fs';
import { cp, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRegisterCommand, SessionTable } from '../core/sessions.js';
import { decodeInternal } from './internal-commands.js';
import type { Entry, Slot, Value } from '../core/types.js';
import { openLog, type LogBackend } from '../storage/log.js';
import { readMetadata } from '../storage/metadata.js';
import { SnapshotStore } from '../storage/snapshot-store.js';
import type { StateMachine } from './api.js';
import { RecoveredLog } from './durable.js';
import { DataDirError } from './errors.js';
import { decodeSnapshotBody, type SnapshotBody } from './snapshot-body.js';

export interface ReplaySlotEvent {
  slot: Slot;
  /** The ballot of the log record the value came from. */
  ballot: number;
  value: Value;
  /** Commands of this slot the state machine executed (the rest were duplicates or stale). */
  executed: number;
}

export interface ReplayOptions {
  /** The replica's data directory (holds `meta`, `log/`, `snapshots/`). Not modified. */
  dataDir: string;
  /** The backend the replica wrote its log with. Default 'file'. */
  logBackend?: LogBackend;
  /** A fresh instance of the application's state machine: it receives restore() and apply() calls. */
  stateMachine: StateMachine;
  /** Stop after this slot (default: the end of the known chosen prefix). */
  uptoSlot?: Slot;
  /** Called after each applied slot, in slot order. */
  onSlot?: (event: ReplaySlotEvent) => void;
}

export interface ReplayResult {
  /** The last slot applied to the state machine (the snapshot's slot if no log slot was applied). */
  appliedSlot: Slot;
  /** The slot of the snapshot restored first (0: none, replay started from an empty state). */
  snapshotSlot: Slot;
  /** Log slots applied after the snapshot (batches, no-ops and configurations). */
  slots: number;
  /** Commands the state machine executed (duplicates and stale retries excluded). */
  commands: number;
  /** Commands skipped by the session table (a retry that was already executed, or stale). */
  skippedCommands: number;
  /** The end of the chosen prefix this directory proves from the starting snapshot (replay cannot go past it). */
  chosenSlot: Slot;
  /** Whether replay stopped at `uptoSlot` or at the end of the known chosen prefix. */
  stoppedAt: 'uptoSlot' | 'chosenPrefix';
}

/** Replays `dataDir` into `stateMachine` up to `uptoSlot` (see the design note above). */
export async function replayDataDir(options: ReplayOptions): Promise<ReplayResult> {
  const { dataDir, stateMachine } = options;
  const backend = options.logBackend ?? 'file';
  const uptoSlot = options.uptoSlot ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(uptoSlot) || uptoSlot < 0) throw new RangeError(`uptoSlot must be a safe integer >= 0, got ${uptoSlot}`);
  await requireDataDir(dataDir);

  const workDir = await mkdtemp(join(tmpdir(), 'synod-replay-'));
  try {
    const copyOf = async (name: string): Promise<string> => {
      const target = join(workDir, name);
      if (await exists(join(dataDir, name))) {
        // COPYFILE_FICLONE: a reflink where the file system supports it, a plain copy otherwise.
        await cp(join(dataDir, name), target, { recursive: true, mode: fsConstants.COPYFILE_FICLONE });
      }
      return target;
    };
    const snapshotDir = await copyOf('snapshots');
    const logDir = backend === 'memory' ? join(dataDir, 'log') : await copyOf('log');

    const base = await loadSnapshotAtOrBelow(await SnapshotStore.open(snapshotDir), uptoSlot);
    const recovered = new RecoveredLog();
    const log = await openLog(logDir, backend, { onRecord: recovered.onRecord });
    await log.close();

    const baseSlot = base?.slot ?? 0;
    const chosen = knownChosen(recovered, baseSlot);
    const wantedSlot = Math.min(uptoSlot, recovered.chosenPrefix);
    if (wantedSlot > baseSlot && !chosen.cells.has(baseSlot + 1)) {
      throw new DataDirError(
        `cannot replay past slot ${baseSlot}: the log holds no slot ${baseSlot + 1} (compacted; its first slot is ${firstSlot(recovered.entries) ?? 'none'}) ` +
          `and no snapshot at or below slot ${uptoSlot} covers the gap`,
      );
    }

    if (base) stateMachine.restore(base.app);
    // The snapshot's recorded settings, or the defaults; the log's sessionLimits commands change
    // them at the slots where they changed live (internal-commands.ts).
    const sessions = base?.sessions ?? new SessionTable<Uint8Array>();
    const result: ReplayResult = {
      appliedSlot: baseSlot,
      snapshotSlot: baseSlot,
      slots: 0,
      commands: 0,
      skippedCommands: 0,
      chosenSlot: chosen.end,
      stoppedAt: 'chosenPrefix',
    };
    const last = Math.min(uptoSlot, chosen.end);
    // After a chosen last request (propose({last: true})) the live replicas execute nothing: nor does replay.
    let stopped = (base?.stoppedAt ?? 0) > 0;
    for (let slot = baseSlot + 1; slot <= last; slot++) {
      const entry = chosen.cells.get(slot)!;
      const executed = stopped ? 0 : applyValue(stateMachine, sessions, slot, entry.value, result);
      if (entry.value.kind === 'batch' && entry.value.last === true) stopped = true;
      result.appliedSlot = slot;
      result.slots++;
      options.onSlot?.({ slot, ballot: entry.ballot, value: entry.value, executed });
    }
    if (uptoSlot <= chosen.end) result.stoppedAt = 'uptoSlot';
    return result;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * Commands of this client id are the runtime's own (the replicated address book, see
 * SynodReplica.applyInternal), never the application's. Must equal INTERNAL_CLIENT in replica.ts,
 * which does not export it.
 */
const INTERNAL_CLIENT = 0;

/** Applies one chosen value exactly as SynodReplica.applySlot does. Returns the commands executed. */
function applyValue(sm: StateMachine, sessions: SessionTable<Uint8Array>, slot: Slot, value: Value, totals: ReplayResult): number {
  if (value.kind === 'config') {
    sm.onConfigChange?.(value.members);
    return 0;
  }
  if (value.kind !== 'batch') return 0;
  let executed = 0;
  const timeMs = sessions.advance(value.timeMs);
  sm.beforeBatch?.(slot);
  for (const cmd of value.commands) {
    if (cmd.clientId === INTERNAL_CLIENT) {
      if (isRegisterCommand(cmd)) sessions.register(); // the ids must come out as they did live
      else {
        const internal = decodeInternal(cmd.payload);
        if (internal.op === 'sessionLimits') sessions.setLimits(internal.limits);
      }
      continue; // otherwise the runtime's address book, not the application's
    }
    const outcome = sessions.check(cmd);
    if (outcome.kind === 'execute') {
      sessions.record(cmd, sm.apply(cmd.payload, { slot, clientId: cmd.clientId, seq: cmd.seq, timeMs }));
      executed++;
    } else {
      totals.skippedCommands++;
    }
  }
  sm.afterBatch?.(slot);
  totals.commands += executed;
  return executed;
}

/**
 * The slots this directory proves chosen above `baseSlot`, mirroring the core's recover(): the last
 * record of a slot wins (a slot learned chosen stays chosen), every slot up to the recorded chosen
 * prefix is chosen while the log holds it, and learned-chosen entries continue the prefix.
 */
function knownChosen(recovered: RecoveredLog, baseSlot: Slot): { cells: Map<Slot, Entry>; end: Slot } {
  const cells = new Map<Slot, Entry>();
  for (const entry of recovered.entries) {
    if (entry.slot <= baseSlot) continue;
    const prior = cells.get(entry.slot);
    cells.set(entry.slot, { ...entry, chosen: entry.chosen === true || prior?.chosen === true });
  }
  let end = baseSlot;
  for (;;) {
    const cell = cells.get(end + 1);
    if (!cell || !(end + 1 <= recovered.chosenPrefix || cell.chosen)) break;
    end++;
  }
  return { cells, end };
}

function firstSlot(entries: readonly Entry[]): Slot | null {
  let first: Slot | null = null;
  for (const e of entries) if (first === null || e.slot < first) first = e.slot;
  return first;
}

/** The newest snapshot at or below `uptoSlot` that verifies end to end (null: none). */
async function loadSnapshotAtOrBelow(store: SnapshotStore, uptoSlot: Slot): Promise<SnapshotBody | null> {
  for (const slot of await store.slots()) {
    if (slot > uptoSlot) continue;
    if (!(await store.inspect(slot))) continue; // corrupt or partial: fall back to an older one
    const reader = store.read(slot);
    const chunks: Uint8Array[] = [];
    for await (const chunk of reader.body) chunks.push(chunk);
    await reader.finish();
    const body = decodeSnapshotBody(Buffer.concat(chunks));
    if (body.slot !== slot) throw new DataDirError(`snapshot file of slot ${slot} holds a body of slot ${body.slot}`);
    return body;
  }
  return null;
}

async function requireDataDir(dataDir: string): Promise<void> {
  if (!(await exists(dataDir))) throw new DataDirError(`data dir ${dataDir} does not exist`);
  // readMetadata only reads; it throws SYNOD_STORAGE_CORRUPT on a damaged file.
  if ((await readMetadata(dataDir)) === null) throw new DataDirError(`${dataDir} has no meta file: not a Synod data directory`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
