// Development certificates: one CA per cluster and one certificate per replica (and per client),
// so that the mutually authenticated setup of docs/security.md is one call (`synod certs` later).
//
// Design note
// -----------
// Node has no X.509 *generator* (node:crypto parses certificates but cannot issue them), so this
// module drives the `openssl` command line through child_process.execFile (no shell, arguments
// passed as an array: nothing in a cluster id or host name is ever interpreted by a shell). If
// openssl is missing the error says so and what to install. The alternative, an npm package
// (node-forge, @peculiar/x509), would add a dependency to every install for a development-only
// command; openssl is present on every machine this project targets.
//
// Identity convention (checked by src/transport/tls.ts, see docs/security.md):
//   replica certificate: SAN URI  synod://replica/<id>             (exactly one)
//                        SAN URI  synod://cluster/<encodeURIComponent(clusterId)>
//                        SAN DNS/IP for the given hosts (HTTPS clients verify host names)
//                        extendedKeyUsage serverAuth + clientAuth (it both dials and accepts)
//   client certificate:  SAN URI  synod://client/<name>, extendedKeyUsage clientAuth
// Subjects are fixed ASCII ("CN=synod replica 3"): the cluster id, which may hold any UTF-8,
// lives only in the percent-encoded URI, so no subject-escaping rules are involved.
//
// Keys are EC P-256 (fast to generate, small handshakes) written with mode 0600; the directory is
// created with mode 0700. An existing CA in `dir` is reused, so certificates for new replicas
// can be added later; an existing replica or client certificate is kept unless `overwrite`.

import { execFile } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { MAX_REPLICA_ID } from '../core/ballot.js';

import { CLUSTER_URI_PREFIX, REPLICA_URI_PREFIX } from '../transport/tls.js';

export { CLUSTER_URI_PREFIX, REPLICA_URI_PREFIX };
export const CLIENT_URI_PREFIX = 'synod://client/';
/** Validity of development certificates: 825 days, the longest that common TLS clients accept. */
export const DEV_CERT_DAYS_DEFAULT = 825;
const OPENSSL_TIMEOUT_MS = 20_000;
const CLIENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_PATTERN = /^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$/;

export class CertError extends Error {
  readonly code = 'SYNOD_CERTS';
  constructor(message: string) {
    super(message);
    this.name = 'CertError';
  }
}

export interface DevCertsOptions {
  /** Where to write the files (created if missing). */
  dir: string;
  /** One certificate per replica id (1..1023). */
  replicaIds: readonly number[];
  /** Written into every replica certificate as synod://cluster/<id>; 1..255 UTF-8 bytes. */
  clusterId: string;
  /** Host names / addresses put into replica certificates for HTTPS clients. Default localhost, 127.0.0.1, ::1. */
  hosts?: readonly string[];
  /** Client certificates (synod://client/<name>) for the client APIs. Default ["client"]. */
  clientNames?: readonly string[];
  /** Validity in days. Default 825. */
  days?: number;
  /** Replace existing replica/client certificates (the CA is always reused when present). */
  overwrite?: boolean;
  /** The openssl binary. Default "openssl" from PATH. */
  openssl?: string;
}

export interface CertFiles {
  cert: string;
  key: string;
}

export interface DevCerts {
  dir: string;
  /** The CA certificate every replica and client trusts; its key stays in `dir` (ca.key). */
  ca: CertFiles;
  replicas: Map<number, CertFiles>;
  clients: Map<string, CertFiles>;
  /** Files written by this call (existing ones that were kept are not listed). */
  written: string[];
}

/** Paths of the files generateDevCerts writes, so that a CLI can print or load them. */
export function devCertPaths(dir: string): { ca: CertFiles; replica: (id: number) => CertFiles; client: (name: string) => CertFiles } {
  return {
    ca: { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
    replica: (id) => ({ cert: join(dir, `replica-${id}.crt`), key: join(dir, `replica-${id}.key`) }),
    client: (name) => ({ cert: join(dir, `client-${name}.crt`), key: join(dir, `client-${name}.key`) }),
  };
}

/** Generates (or completes) a development PKI in `dir`. Throws CertError with a clear message. */
export async function generateDevCerts(options: DevCertsOptions): Promise<DevCerts> {
  const o = validate(options);
  const openssl = options.openssl ?? 'openssl';
  await checkOpenssl(openssl);
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  const paths = devCertPaths(o.dir);
  const written: string[] = [];

  if (!(await exists(paths.ca.cert)) || !(await exists(paths.ca.key))) {
    await createPrivate(paths.ca.key);
    await run(openssl, [
      'req', '-x509', '-new', '-nodes',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', paths.ca.key, '-out', paths.ca.cert,
      '-days', String(o.days), '-sha256',
      '-subj', '/O=synod/CN=synod development CA',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
    ]);
    await chmod(paths.ca.key, 0o600);
    written.push(paths.ca.cert, paths.ca.key);
  }

  const replicas = new Map<number, CertFiles>();
  for (const id of o.replicaIds) {
    const files = paths.replica(id);
    replicas.set(id, files);
    if (!o.overwrite && (await exists(files.cert)) && (await exists(files.key))) continue;
    const san = [`URI:${REPLICA_URI_PREFIX}${id}`, `URI:${CLUSTER_URI_PREFIX}${encodeURIComponent(o.clusterId)}`, ...o.hosts.map(hostSan)];
    await issue(openssl, paths.ca, files, `/O=synod/CN=synod replica ${id}`, san, 'serverAuth,clientAuth', o.days);
    written.push(files.cert, files.key);
  }

  const clients = new Map<string, CertFiles>();
  for (const name of o.clientNames) {
    const files = paths.client(name);
    clients.set(name, files);
    if (!o.overwrite && (await exists(files.cert)) && (await exists(files.key))) continue;
    await issue(openssl, paths.ca, files, `/O=synod/CN=synod client ${name}`, [`URI:${CLIENT_URI_PREFIX}${name}`], 'clientAuth', o.days);
    written.push(files.cert, files.key);
  }

  // Pair assertion: read back what was written and check the identity the transport will check.
  for (const [id, files] of replicas) {
    const cert = new X509Certificate(await readFile(files.cert));
    if (!cert.checkIssued(new X509Certificate(await readFile(paths.ca.cert)))) {
      throw new CertError(`${files.cert} was not issued by ${paths.ca.cert} (a CA from another run?): regenerate with overwrite`);
    }
    if (!(cert.subjectAltName ?? '').includes(`URI:${REPLICA_URI_PREFIX}${id}`)) {
      throw new CertError(`${files.cert} does not name ${REPLICA_URI_PREFIX}${id}`);
    }
  }
  return { dir: o.dir, ca: { cert: paths.ca.cert, key: paths.ca.key }, replicas, clients, written };
}

interface ValidOptions {
  dir: string;
  replicaIds: number[];
  clusterId: string;
  hosts: string[];
  clientNames: string[];
  days: number;
  overwrite: boolean;
}

function validate(options: DevCertsOptions): ValidOptions {
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw new CertError('dir must be a directory path');
  const replicaIds = [...new Set(options.replicaIds)];
  if (replicaIds.length === 0) throw new CertError('replicaIds must name at least one replica');
  for (const id of replicaIds) {
    if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new CertError(`replica id must be an integer in 1..${MAX_REPLICA_ID}, got ${id}`);
  }
  const clusterBytes = typeof options.clusterId === 'string' ? Buffer.byteLength(options.clusterId) : 0;
  if (clusterBytes < 1 || clusterBytes > 255) throw new CertError('clusterId must be a string of 1..255 UTF-8 bytes');
  const hosts = [...new Set(options.hosts ?? ['localhost', '127.0.0.1', '::1'])];
  for (const host of hosts) {
    if (isIP(host) === 0 && !HOST_PATTERN.test(host)) throw new CertError(`host ${JSON.stringify(host)} is neither an IP address nor a DNS name`);
  }
  const clientNames = [...new Set(options.clientNames ?? ['client'])];
  for (const name of clientNames) {
    if (!CLIENT_NAME_PATTERN.test(name)) throw new CertError(`client name ${JSON.stringify(name)} must match ${CLIENT_NAME_PATTERN}`);
  }
  const days = options.days ?? DEV_CERT_DAYS_DEFAULT;
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new CertError(`days must be an integer in 1..3650, got ${days}`);
  return { dir: options.dir, replicaIds, clusterId: options.clusterId, hosts, clientNames, days, overwrite: options.overwrite === true };
}

function hostSan(host: string): string {
  return isIP(host) !== 0 ? `IP:${host}` : `DNS:${host}`;
}

async function issue(openssl: string, ca: CertFiles, files: CertFiles, subject: string, san: string[], eku: string, days: number): Promise<void> {
  const csr = `${files.cert}.csr`;
  const ext = `${files.cert}.ext`;
  try {
    await createPrivate(files.key);
    await run(openssl, ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', files.key, '-out', csr, '-subj', subject]);
    await chmod(files.key, 0o600);
    await writeFile(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyAgreement',
        `extendedKeyUsage=${eku}`,
        `subjectAltName=${san.join(',')}`,
        'authorityKeyIdentifier=keyid',
        '',
      ].join('\n'),
    );
    // A random serial (not a counter file): certificates issued by separate runs never collide.
    const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`;
    await run(openssl, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-days', String(days), '-sha256', '-extfile', ext, '-out', files.cert]);
  } finally {
    await rm(csr, { force: true });
    await rm(ext, { force: true });
  }
}

async function checkOpenssl(openssl: string): Promise<void> {
  try {
    await run(openssl, ['version']);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || (err instanceof CertError && /ENOENT/.test(err.message))) {
      throw new CertError(`cannot generate certificates: "${openssl}" was not found on PATH. Install OpenSSL (Debian/Ubuntu: apt-get install openssl) or bring your own CA and certificates (docs/security.md)`);
    }
    throw err;
  }
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      const detail = String(stderr).trim().split('\n').slice(-3).join(' | ') || err.message;
      reject(new CertError(`${file} ${args[0]} failed${typeof code === 'string' ? ` (${code})` : ''}: ${detail}`));
    });
  });
}

/** Creates (or empties) a key file with mode 0600 before openssl writes it, so no key is ever world-readable. */
async function createPrivate(path: string): Promise<void> {
  await writeFile(path, '', { mode: 0o600 });
  await chmod(path, 0o600);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
