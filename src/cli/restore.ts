// `synod restore`: one replica's data directory of a NEW cluster, from a backed-up snapshot file
// (src/runtime/restore.ts; docs/operations.md, "Backups"). Run it once per replica of the new
// cluster, with the same --cluster-id and --initial-cluster, then `synod start` each as usual.
import { Command } from 'commander';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import { DataDirError } from '../runtime/errors.js';
import { restoreDataDir } from '../runtime/restore.js';
import { parseIdMap, UsageError } from './config.js';

export function restoreCommand(): Command {
  return new Command('restore')
    .description("make a replica's data directory of a NEW cluster whose state is a backed-up snapshot file (then start it with synod start and the same --id, --data, --cluster-id, --initial-cluster)")
    .requiredOption('--snapshot <file>', "the backup: a snap-*.snap file copied from a replica's snapshots/ directory")
    .requiredOption('--data <dir>', "the new replica's data directory (absent or empty)")
    .requiredOption('--id <id>', `the new replica's id (1..${MAX_REPLICA_ID}), one of --initial-cluster`)
    .requiredOption('--cluster-id <name>', 'the new cluster id: one the backed-up cluster never had, so that its replicas are refused')
    .requiredOption('--initial-cluster <list>', "the new cluster's replicas by peer address: ID=HOST:PORT,... (the same on every replica)")
    .action(async (o: { snapshot: string; data: string; id: string; clusterId: string; initialCluster: string }) => {
      const id = Number(o.id);
      if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new UsageError(`--id must be an integer 1..${MAX_REPLICA_ID}, got ${o.id}`);
      const members = parseIdMap(o.initialCluster, '--initial-cluster');
      try {
        const r = await restoreDataDir({ snapshotFile: o.snapshot, dataDir: o.data, id, clusterId: o.clusterId, members });
        process.stdout.write(
          `restored slot ${r.slot} into ${o.data} (replica ${id} of cluster '${o.clusterId}', ${r.bytes} bytes of state); ` +
            `start it with: synod start --id ${id} --data ${o.data} --cluster-id ${o.clusterId} --initial-cluster ${o.initialCluster} ...\n`,
        );
      } catch (e) {
        // A refusal names what to change; nothing was written.
        if (e instanceof DataDirError || (e as { code?: string }).code?.startsWith('SYNOD_STORAGE')) throw new UsageError((e as Error).message);
        throw e;
      }
    });
}
