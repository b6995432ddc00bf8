// `synod certs`: a development CA and per-replica certificates, so that a TLS cluster is one command.
import { Command } from 'commander';
import { generateDevCerts } from '../security/certs.js';
import { notADirectory, UsageError } from './config.js';
import { MAX_REPLICA_ID } from '../core/ballot.js';

export function certsCommand(): Command {
  return new Command('certs')
    .description('make a development CA and replica/client certificates for mutual TLS (uses the system openssl)')
    .requiredOption('--dir <dir>', 'where to write them (an existing CA there is reused)')
    .requiredOption('--replicas <ids>', 'replica ids, comma-separated (e.g. 1,2,3)')
    .option('--cluster-id <name>', 'the cluster named in every replica certificate', 'synod')
    .option('--hosts <list>', 'host names/addresses for the client-facing certificates', 'localhost,127.0.0.1,::1')
    .option('--clients <names>', 'client certificates to make', 'client')
    .action(async (o: { dir: string; replicas: string; clusterId: string; hosts: string; clients: string }) => {
      const ids = o.replicas.split(',').map((x) => Number(x.trim()));
      if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID)) {
        throw new UsageError(`--replicas must list replica ids 1..${MAX_REPLICA_ID}, got ${JSON.stringify(o.replicas)}`);
      }
      const split = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
      let result: Awaited<ReturnType<typeof generateDevCerts>>;
      try {
        result = await generateDevCerts({ dir: o.dir, replicaIds: ids, clusterId: o.clusterId, hosts: split(o.hosts), clientNames: split(o.clients) });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        // A file where the directory should be, or above it: what was asked cannot be used.
        const notDir = notADirectory('--dir', o.dir, err);
        if (notDir !== null) throw notDir;
        if (err.code === 'EACCES' || err.code === 'EROFS') throw new UsageError(`cannot write --dir ${o.dir} (${err.code}${err.path ? `: ${err.path}` : ''}): pick a writable directory`);
        throw e;
      }
      for (const file of result.written) process.stdout.write(`wrote ${file}\n`);
      process.stdout.write(
        `start each replica with --tls-ca ${o.dir}/ca.crt --tls-cert ${o.dir}/replica-ID.crt --tls-key ${o.dir}/replica-ID.key\n`,
      );
    });
}
