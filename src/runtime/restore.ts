// Restoring a backup: a new cluster whose replicas all start from one snapshot file.
//
// A snapshot file (snapshots/snap-*.snap, docs/operations.md "Backups") holds the replicated state
// at its slot: the application's bytes, the session table, the configurations, the address and
// incarnation books. It carries no promises or votes, so it must never be dropped into a live
// replica's directory (SAFETY.md: such a replica could vote against what it voted before). What is
// safe is a NEW cluster: fresh directories (fresh incarnations, nothing promised), a cluster id of
// its own (so that the old cluster's replicas, which still run or may run again, are refused by the
// transport), and the state of the backup as every replica's first snapshot. The configuration,
// the address book and the incarnation book are the new cluster's, not the backup's: the first
// configuration is the new members, the addresses are theirs, and incarnations are bound afresh by
// the first primary. Everything else (the application's state, the sessions, a stop) is as backed
// up. The cluster goes on from the backup's slot + 1.

import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import type { ReplicaId } from '../core/types.js';
import { StorageError } from '../storage/errors.js';
import { nodeIo, syncDir } from '../storage/io.js';
import { writeMetadata } from '../storage/metadata.js';
import { SnapshotStore } from '../storage/snapshot-store.js';
import type { PeerAddress } from './api.js';
import { DataDirError } from './errors.js';
import { metaConfig } from './replica.js';
import { decodeSnapshotBody, encodeSnapshotBody } from './snapshot-body.js';

export interface RestoreOptions {
  /** A snapshot file copied from a replica's `snapshots/` (any name). */
  snapshotFile: string;
  /** The new replica's data directory: absent or empty. */
  dataDir: string;
  /** The new replica's id: one of `members`. */
  id: ReplicaId;
  /** The new cluster's id. Use one the backed-up cluster never had. */
  clusterId: string;
  /** The new cluster's initial members and their peer addresses (the same on every replica). */
  members: ReadonlyMap<ReplicaId, PeerAddress>;
}

export interface RestoreResult {
  /** The backup's slot: the new cluster's first snapshot. */
  slot: number;
  /** Bytes of the snapshot body written. */
  bytes: number;
}

/** Makes `dataDir` a replica of a new cluster whose state is the backup's. Throws, changing nothing, if the file does not verify or the directory is in use. */
export async function restoreDataDir(o: RestoreOptions): Promise<RestoreResult> {
  if (!o.members.has(o.id)) throw new DataDirError(`replica ${o.id} is not among the new cluster's members ${[...o.members.keys()].join(',')}`);
  const existing = await readdir(o.dataDir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw new DataDirError(`cannot use ${o.dataDir} as a data directory: ${e.code ?? e.message}`);
  });
  if (existing.length > 0) throw new DataDirError(`data dir ${o.dataDir} is not empty: a backup is restored into a new, empty directory only (a replica's promises and votes must never be overwritten)`);

  // The whole file verified (header, checksums, trailer) by the snapshot store's own reader.
  const { slot, body } = await SnapshotStore.readFile(o.snapshotFile).catch((e: NodeJS.ErrnoException) => {
    if (e instanceof StorageError && e.reason !== null) throw new DataDirError(`${o.snapshotFile} is not a whole Synod snapshot file (copy one from a replica's snapshots/ directory): ${e.reason}`);
    throw e instanceof StorageError ? e : new DataDirError(`cannot read the snapshot file ${o.snapshotFile}: ${e.code ?? e.message}`);
  });
  let backed: ReturnType<typeof decodeSnapshotBody>;
  try {
    backed = decodeSnapshotBody(body);
  } catch (e) {
    throw new DataDirError(`${o.snapshotFile}: ${(e as Error).message}`);
  }
  if (backed.slot !== slot) throw new DataDirError(`${o.snapshotFile}: the body says slot ${backed.slot}, the header ${slot}`);

  const members = [...o.members.keys()].sort((a, b) => a - b);
  const restored = encodeSnapshotBody({
    slot,
    configs: [{ fromSlot: 1, members }],
    addresses: members.map((m) => [m, o.members.get(m)!.host, o.members.get(m)!.port] as [number, string, number]),
    incarnations: [],
    sessions: backed.sessions,
    app: backed.app,
    ...(backed.stoppedAt ? { stoppedAt: backed.stoppedAt } : {}),
    ownSessions: backed.ownSessions ?? [],
  });

  // Made whole beside the target, then renamed into place: a crash leaves the target absent or
  // empty (and a *.restoring-* directory to delete), never a directory start() would half-trust.
  const target = resolve(o.dataDir);
  await mkdir(dirname(target), { recursive: true });
  const staging = `${target}.restoring-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(staging);
    const snapshots = await SnapshotStore.open(join(staging, 'snapshots'));
    await snapshots.save(slot, new Uint8Array(0), [restored]);
    await writeMetadata(staging, { promised: 0, incarnation: new Uint8Array(randomBytes(16)), config: metaConfig(o.clusterId, o.id), snapshotSlot: slot });
    await syncDir(nodeIo, staging);
    await rename(staging, target); // replaces an empty directory, or creates it
    await syncDir(nodeIo, dirname(target));
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  return { slot, bytes: restored.length };
}
