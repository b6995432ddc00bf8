// The storage simulator: the real file log, metadata file and snapshot store, driven as a replica
// drives them, over a file system that loses power (power-loss-fs.ts). One seed = one replica's
// data directory through several lives, each ended by a power cut at a random moment (or, now and
// then, a clean close). After every restart the recovered state is checked against what was
// acknowledged before the cut:
//   recovery       opening the log, the metadata and the snapshots never fails: a power cut is
//                  not damage (a replica that refuses to start after one would take a cluster
//                  down with a shared power failure);
//   acknowledged   every log record whose commit resolved is there, intact, down to the durable
//                  snapshot that covers it; the head never passes that snapshot;
//   stale          every record recovered is the one last appended at its LSN (nothing from an
//                  earlier life or a recycled segment replays), and LSNs are contiguous;
//   ballots        the log's highest ballot is at least that of every acknowledged record, even
//                  after the records are released below the head (the promise floor);
//   metadata       the metadata read back is the last one whose write resolved, or a later one;
//   snapshot       the newest snapshot is at least the last one whose save resolved, its body intact;
//   read           a read from the log while it is appended to returns what was appended there;
//   liveness       with the file system drained, every commit resolved.
// The core simulator's disk model (simulation.ts: a crash keeps a prefix of the writes in flight)
// rests on these properties of the real code.

import { FileLog } from '../storage/file-log.js';
import { PmemLog } from '../storage/pmem-log.js';
import { readMetadata, writeMetadata, type Metadata } from '../storage/metadata.js';
import { SnapshotStore } from '../storage/snapshot-store.js';
import type { PacerClock } from '../storage/pacer.js';
import type { StoredRecord } from '../storage/format.js';
import { PowerLossFs, sameBytes, type PowerLossFault, type PowerLossStats } from './power-loss-fs.js';
import { Prng } from './prng.js';

export interface StorageSimOptions {
  /** Lives per seed (each ended by a power cut or a clean close). Default 8. */
  lives?: number;
  /** Workload steps per life, at most. Default 400. */
  stepsMax?: number;
  /** A planted fault in the file system (tests: shows the checks catch a broken durability contract). */
  fault?: PowerLossFault | null;
  /**
   * The file log's write path: 'flush-loop' (one write and fdatasync at a time, from JS: no addon,
   * or an injected io), 'ordered' (the pipelined path production takes with the native addon,
   * over a model of its ordered writer: StorageIo.orderedWriter), or 'mixed' (each life picks one,
   * from a generator of its own so the rest of a seed's choices are as with 'flush-loop'). Default
   * 'mixed'.
   */
  writer?: StorageSimWriter;
  /**
   * The log backend for the whole seed (a directory keeps its backend): 'file', or 'pmem' (the file
   * log's memory-mapped write path, over PowerLossFs's model of the addon's mapping calls). Default 'file'.
   */
  backend?: 'file' | 'pmem';
}

export type StorageSimWriter = 'flush-loop' | 'ordered' | 'mixed';

export interface StorageSimResult {
  seed: number;
  violation: { kind: string; detail: string } | null;
  lives: number;
  acknowledged: number;
  recovered: number;
  /** Lives whose log wrote through the ordered writer (the native path). */
  orderedLives: number;
  /** Records read back from the log during lives and checked. */
  readsChecked: number;
  snapshots: number;
  fs: PowerLossStats;
}

export class StorageViolation extends Error {
  constructor(readonly kind: string, detail: string) {
    super(`${kind}: ${detail}`);
  }
}

const DIR = '/replica';
const LOG_DIR = `${DIR}/log`;
const SNAPSHOT_DIR = `${DIR}/snapshots`;
const SEGMENT_BYTES = 64 * 1024;
const INCARNATION = new Uint8Array(16).fill(7);

/** A record's payload from its nonce: length and bytes both derived, so any mix-up shows. */
function payloadOf(nonce: number): Uint8Array {
  const rng = new Prng(nonce);
  const length = rng.chance(0.05) ? rng.int(4_000, 30_000) : rng.int(4, 1_500);
  const bytes = new Uint8Array(length);
  new DataView(bytes.buffer).setUint32(0, nonce);
  for (let i = 4; i < length; i++) bytes[i] = (nonce * 31 + i * 7) & 0xff;
  return bytes;
}

function snapshotBodyOf(slot: number): Uint8Array[] {
  const rng = new Prng(slot * 2654435761);
  const chunks: Uint8Array[] = [];
  const count = rng.int(1, 4);
  for (let c = 0; c < count; c++) {
    const chunk = new Uint8Array(rng.int(1, 40_000));
    for (let i = 0; i < chunk.length; i++) chunk[i] = (slot + c * 131 + i) & 0xff;
    chunks.push(chunk);
  }
  return chunks;
}


const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** What the replica was told is durable, across lives. */
class Model {
  /** The nonce last appended at each LSN (an LSN is reused when its record was not durable). */
  readonly appended = new Map<number, { nonce: number; ballot: number }>();
  acknowledged = 0;
  acknowledgedBallot = 0;
  metaResolved = 0;
  metaIssued = 0;
  snapshotResolved = 0;
  snapshotsSaved = 0;
  recovered = 0;
  readsChecked = 0;
}

export async function runStorageSeed(seed: number, options: StorageSimOptions = {}): Promise<StorageSimResult> {
  const lives = options.lives ?? 8;
  const stepsMax = options.stepsMax ?? 400;
  const prng = new Prng(seed);
  const fs = new PowerLossFs(prng.fork(), options.fault ?? null);
  const writer = options.writer ?? 'mixed';
  const pmemBackend = options.backend === 'pmem';
  const writerPrng = new Prng(seed ^ 0x77e1);
  // pmem lives: half of them end with the power cut inside a flush (a generator of its own).
  const crashPrng = new Prng(seed ^ 0x9e3f);
  let orderedLives = 0;
  const model = new Model();
  let nonce = seed * 1_000_000;
  let violation: StorageSimResult['violation'] = null;
  let life = 0;
  try {
    for (; life < lives; life++) {
      const orderedWriter = writer === 'ordered' || (writer === 'mixed' && writerPrng.chance(0.5));
      if (orderedWriter && !pmemBackend) orderedLives++;
      const { io, delay, pmem } = fs.mount({ orderedWriter });
      const crashesBefore = fs.stats.pmemCrashes;
      const crashed = () => fs.stats.pmemCrashes > crashesBefore;
      const clock: PacerClock = { now: () => 0, sleep: delay };

      // ---- restart: recover and check against the model
      const until = async <T>(what: string, promise: Promise<T>): Promise<T> => {
        let settled = false;
        let failure: unknown = null;
        let value: T | undefined;
        promise.then(
          (v) => ((settled = true), (value = v)),
          (e: unknown) => ((settled = true), (failure = e ?? new Error('rejected'))),
        );
        for (let i = 0; ; i++) {
          await turn();
          if (settled) break;
          if (!fs.completeOne()) {
            await turn();
            if (!settled) throw new StorageViolation('liveness', `${what} never completed, with nothing left for the file system to do`);
          }
          if (i > 1_000_000) throw new StorageViolation('liveness', `${what}: runaway`);
        }
        if (failure !== null) throw new StorageViolation('recovery', `${what} failed after a power cut (life ${life}): ${String((failure as Error).message ?? failure)}`);
        return value as T;
      };

      const meta = await until('reading the metadata', readMetadata(DIR, io));
      if (model.metaResolved > 0) {
        if (meta === null) throw new StorageViolation('metadata', `no metadata after a write of ${model.metaResolved} resolved`);
        if (meta.promised < model.metaResolved || meta.promised > model.metaIssued) {
          throw new StorageViolation('metadata', `metadata ${meta.promised} read back; the last write resolved was ${model.metaResolved}, the last issued ${model.metaIssued}`);
        }
      }
      if (meta) model.metaResolved = model.metaIssued = meta.promised;

      const store = await until('opening the snapshot store', SnapshotStore.open(SNAPSHOT_DIR, { io, pacerClock: clock }));
      const latest = await until('finding the latest snapshot', store.latest());
      if (model.snapshotResolved > 0 && (latest === null || latest.slot < model.snapshotResolved)) {
        throw new StorageViolation('snapshot', `latest snapshot ${latest?.slot ?? 'none'}; the save of ${model.snapshotResolved} had resolved`);
      }
      if (latest) {
        const body = await until('reading the latest snapshot', store.readWhole(latest.slot));
        if (!sameBytes(body, Buffer.concat(snapshotBodyOf(latest.slot)))) throw new StorageViolation('snapshot', `snapshot ${latest.slot}'s body differs from what was saved`);
      }
      const covered = latest?.slot ?? 0;
      model.snapshotResolved = covered;

      const records: StoredRecord[] = [];
      const segmentBytes = SEGMENT_BYTES * (prng.chance(0.5) ? 1 : 2);
      const logOptions = {
        io,
        pacerClock: clock,
        segmentBytes,
        spareSegmentsMax: prng.int(0, 2),
        groupBytesMax: prng.pick([4096, 16_384, 1 << 20]),
        onRecord: (r: StoredRecord) => records.push({ ...r, payload: r.payload.slice() }),
      };
      // pmem: the ordered writer plays no part (the mapping is written in place).
      const log = await until('opening the log', pmemBackend ? PmemLog.open(LOG_DIR, { ...logOptions, pmemAddon: pmem }) : FileLog.open(LOG_DIR, logOptions));
      const { head, tail } = log.headTailCapacity();
      if (head > covered + 1) throw new StorageViolation('acknowledged', `the log's head is ${head}, past the durable snapshot's ${covered} + 1`);
      if (tail - 1 < model.acknowledged) throw new StorageViolation('acknowledged', `the log ends at ${tail - 1}; ${model.acknowledged} had been acknowledged (life ${life})`);
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        if (r.lsn !== head + i) throw new StorageViolation('stale', `record ${i} of the recovery has LSN ${r.lsn}, expected ${head + i}`);
        const want = model.appended.get(r.lsn);
        if (!want || r.slot !== want.nonce || r.ballot !== want.ballot || !sameBytes(r.payload, payloadOf(want.nonce))) {
          throw new StorageViolation('stale', `LSN ${r.lsn} holds nonce ${r.slot} (ballot ${r.ballot}); the last append there was ${want ? `nonce ${want.nonce}` : 'none'}`);
        }
      }
      if (head + records.length !== tail) throw new StorageViolation('stale', `recovery reported ${records.length} records from ${head} but the tail is ${tail}`);
      if (log.highestBallot() < model.acknowledgedBallot) {
        throw new StorageViolation('ballots', `the log's highest ballot is ${log.highestBallot()}, an acknowledged record had ${model.acknowledgedBallot}`);
      }
      for (const lsn of [...model.appended.keys()]) if (lsn >= tail) model.appended.delete(lsn);
      // What recovery found is what the replica now holds and may vote on: durable from here.
      model.acknowledged = tail - 1;
      model.recovered += records.length;
      for (const r of records) model.acknowledgedBallot = Math.max(model.acknowledgedBallot, r.ballot);

      // ---- a life: appends and commits, metadata writes, snapshots and head moves, interleaved
      if (pmemBackend && crashPrng.chance(0.5)) fs.armPmemCrash(crashPrng.int(1, 300));
      let ballot = Math.max(1, log.highestBallot());
      let commitsOpen = 0;
      let storageError: unknown = null;
      let readError: string | null = null;
      let metaBusy = false;
      let snapshotBusy = false;
      let headRequested = head;
      // As the runtime: no head move while a peer is answered from the log, no read while one runs.
      let headMoving = 0;
      let reading = 0;
      const onError = (e: unknown) => (storageError ??= e);
      const writeMeta = (promised: number, snapshotSlot: number) => {
        metaBusy = true;
        model.metaIssued = promised;
        const m: Metadata = { promised, incarnation: INCARNATION, config: new Uint8Array(0), snapshotSlot };
        writeMetadata(DIR, m, io).then(() => {
          model.metaResolved = promised;
          metaBusy = false;
        }, onError);
      };
      const steps = prng.int(1, stepsMax);
      for (let step = 0; step < steps && storageError === null && readError === null; step++) {
        const roll = prng.next();
        if (roll < 0.25) {
          const count = prng.int(1, 6);
          for (let i = 0; i < count; i++) {
            const n = ++nonce;
            const lsn = log.tentativelyAppend({ type: 1, slot: n, ballot, payload: payloadOf(n) });
            model.appended.set(lsn, { nonce: n, ballot });
          }
          commitsOpen++;
          const b = ballot;
          log.commit().then((durable) => {
            commitsOpen--;
            if (durable > model.acknowledged) model.acknowledged = durable;
            model.acknowledgedBallot = Math.max(model.acknowledgedBallot, b);
          }, onError);
        } else if (roll < 0.28) {
          ballot++;
        } else if (roll < 0.32 && !metaBusy) {
          writeMeta(model.metaIssued + 1, model.snapshotResolved);
        } else if (roll < 0.34 && !snapshotBusy && model.acknowledged > model.snapshotResolved) {
          // A snapshot of everything acknowledged; then the head moves below it with a margin, as
          // the runtime's compactBelow does (fire and forget: two may overlap).
          snapshotBusy = true;
          const slot = model.acknowledged;
          store.save(slot, new Uint8Array(0), snapshotBodyOf(slot)).then(() => {
            model.snapshotResolved = Math.max(model.snapshotResolved, slot);
            model.snapshotsSaved++;
            snapshotBusy = false;
            if (!metaBusy) writeMeta(model.metaIssued + 1, slot);
            const to = Math.min(slot + 1 - prng.int(0, 20), log.headTailCapacity().tail);
            if (to > headRequested && reading === 0) {
              headRequested = to;
              headMoving++;
              log.advanceHead(to).then(() => headMoving--, onError);
            }
          }, onError);
        } else if (roll < 0.37 && headMoving === 0) {
          // A lagging peer answered from the log: what is read is what was appended there.
          const { head: from, tail: to } = log.headTailCapacity();
          if (to > from) {
            const start = prng.int(from, to - 1);
            reading++;
            log.read(start, { recordsMax: prng.int(1, 64), bytesMax: prng.int(1, 200_000) }).then((got) => {
              reading--;
              model.readsChecked += got.length;
              got.forEach((r, i) => {
                const want = model.appended.get(r.lsn);
                if (r.lsn !== start + i || !want || r.slot !== want.nonce || !sameBytes(r.payload, payloadOf(want.nonce))) {
                  readError ??= `read from ${start}: record ${i} has LSN ${r.lsn}, nonce ${r.slot}; expected LSN ${start + i}, nonce ${want?.nonce ?? 'none'}`;
                }
              });
              if (got.length === 0) readError ??= `read from ${start} (durable tail ${to}) returned nothing`;
            }, onError);
          }
        } else {
          fs.completeOne();
        }
        await turn();
      }
      if (readError !== null) throw new StorageViolation('read', `${readError} (life ${life})`);
      if (crashed()) continue; // the power went inside a flush: the log failed its calls, as it should
      if (storageError !== null) throw new StorageViolation('recovery', `a storage call failed without a fault (life ${life}): ${String((storageError as Error).message ?? storageError)}`);

      if (prng.chance(0.3)) {
        // Drain: with nothing left for the file system, every commit must have resolved.
        for (let i = 0; fs.queued > 0 || i < 3; i++) {
          fs.completeOne();
          await turn();
        }
        if (crashed()) continue;
        if (storageError !== null) throw new StorageViolation('recovery', `a storage call failed without a fault: ${String(storageError)}`);
        if (commitsOpen > 0) throw new StorageViolation('liveness', `${commitsOpen} commits never resolved with the file system drained (life ${life})`);
        if (prng.chance(0.3)) await until('closing the log', log.close());
      }
      fs.powerCut();
    }
  } catch (error) {
    if (!(error instanceof StorageViolation)) throw error;
    violation = { kind: error.kind, detail: error.message };
  }
  return { seed, violation, lives: life, acknowledged: model.acknowledged, recovered: model.recovered, orderedLives, readsChecked: model.readsChecked, snapshots: model.snapshotsSaved, fs: { ...fs.stats } };
}
