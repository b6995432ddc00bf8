// TLS on the client ports (docs/security.md, "Client ports"): HTTPS and TLS binary with the
// replicas' development certificates, bearer tokens through a forwarding follower, the CLI's
// --ca/--token-file, and client certificates (--client-auth cert).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setContracts } from '../../src/core/contracts.js';
import { KvClient } from '../../src/kv/client.js';
import { HttpKvClient, HttpStatusError } from '../../src/kv/http-client.js';
import { KvNode } from '../../src/kv/node.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { generateDevCerts, type DevCerts } from '../../src/security/certs.js';
import type { ClientSecurity } from '../../src/security/client-auth.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { hasOpenssl } from './openssl.js';

setContracts(true);

const TOKEN = 'tls-test-token-0123456789abcdef';
const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** n in-process nodes (memory network and log) whose client ports use `security(id)`. */
async function secureCluster(dir: string, n: number, security: (id: number) => ClientSecurity) {
  const network = new MemoryNetwork();
  const members = new Map(Array.from({ length: n }, (_, i) => [i + 1, { host: '127.0.0.1', port: 1 }] as const));
  const http = new Map<number, PeerAddress>();
  const binary = new Map<number, PeerAddress>();
  const nodes: KvNode[] = [];
  for (let id = 1; id <= n; id++) {
    http.set(id, { host: '127.0.0.1', port: 0 });
    const node = await KvNode.start({
      id,
      clusterId: 'ctls',
      dataDir: join(dir, `r${id}`),
      members,
      httpAddresses: http,
      binary: { host: '127.0.0.1', port: 0 },
      binaryAddresses: binary,
      transport: network.createTransport({ replicaId: id }),
      logBackend: 'memory',
      clientSecurity: security(id),
    });
    http.set(id, node.http.address());
    binary.set(id, node.binary!.address());
    nodes.push(node);
  }
  const deadline = Date.now() + 15_000;
  let leader: KvNode | undefined;
  while (!leader || !nodes.every((x) => x.replica.status().leader === leader!.replica.id)) {
    if (Date.now() > deadline) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 20));
    leader = nodes.find((x) => x.replica.status().role === 'leader');
  }
  return { nodes, http, binary, leader, close: () => Promise.all(nodes.map((x) => x.close().catch(() => {}))) };
}

const hostPort = (a: PeerAddress) => `${a.host}:${a.port}`;

describe('client ports over TLS', { skip: hasOpenssl ? false : 'openssl not installed' }, () => {
  let dir: string;
  let certs: DevCerts;
  let ca: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'synod-ctls-'));
    certs = await generateDevCerts({ dir: join(dir, 'certs'), replicaIds: [1, 2, 3], clusterId: 'ctls', clientNames: ['alice'] });
    ca = await readFile(certs.ca.cert);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serverTls = async (id: number) => ({ cert: await readFile(certs.replicas.get(id)!.cert), key: await readFile(certs.replicas.get(id)!.key), ca });

  test('HTTPS + token through a forwarding follower, TLS binary client with a token, and the CLI with --ca/--token-file', async () => {
    const tlsById = new Map<number, ClientSecurity['tls']>();
    for (const id of [1, 2, 3]) tlsById.set(id, await serverTls(id));
    const c = await secureCluster(join(dir, 'a'), 3, (id) => ({ tls: tlsById.get(id), tokens: [TOKEN] }));
    try {
      const follower = c.nodes.find((x) => x !== c.leader)!;
      const viaFollower = new HttpKvClient({ endpoints: [hostPort(c.http.get(follower.replica.id)!)], tls: { ca }, token: TOKEN });
      assert.match(viaFollower.endpoints[0]!, /^https:\/\//, 'endpoints without a scheme are https with TLS options');
      assert.equal((await viaFollower.call('PUT', '/v1/kv/greeting', 'hello over tls')).status, 200);
      const got = await viaFollower.call('GET', '/v1/kv/greeting');
      assert.equal(got.body.toString(), 'hello over tls');
      assert.equal(got.headers['x-synod-served-by'], String(c.leader.replica.id), 'forwarded to the leader over HTTPS, token included');
      viaFollower.close();

      const noToken = new HttpKvClient({ endpoints: [hostPort(c.http.get(1)!)], tls: { ca } });
      await assert.rejects(noToken.call('GET', '/v1/kv/greeting'), (e: unknown) => e instanceof HttpStatusError && e.status === 401 && e.code === 'SYNOD_UNAUTHORIZED');
      noToken.close();
      const noCa = new HttpKvClient({ endpoints: [`https://${hostPort(c.http.get(1)!)}`], tls: { ca: certs.replicas.get(1)!.cert }, token: TOKEN, timeoutMs: 1 });
      await assert.rejects(noCa.call('GET', '/v1/kv/greeting'), (e: unknown) => e instanceof HttpStatusError && e.certain && /cannot reach/.test(e.message), 'a server certificate from an untrusted CA is refused');
      noCa.close();
      const plain = new HttpKvClient({ endpoints: [`http://${hostPort(c.http.get(1)!)}`], token: TOKEN, timeoutMs: 1, requestTimeoutMs: 3_000 });
      await assert.rejects(plain.call('GET', '/v1/kv/greeting'), 'plain HTTP to the HTTPS port gets no answer');
      plain.close();

      const kv = new KvClient({ endpoints: [...c.binary.values()].map(hostPort), tls: { ca }, token: TOKEN });
      await kv.put('binary', 'over tls');
      assert.equal(new TextDecoder().decode((await kv.get('binary'))!), 'over tls');
      assert.equal(new TextDecoder().decode((await kv.get('greeting'))!), 'hello over tls');
      kv.close();
      const kvNoCa = new KvClient({ endpoints: [hostPort(c.binary.get(1)!)], token: TOKEN, tls: {}, timeoutMs: 500 });
      await assert.rejects(kvNoCa.get('binary'), /SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify/i);
      kvNoCa.close();

      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, `# client token\n${TOKEN}\n`, { mode: 0o600 });
      const endpoints = `--endpoints=${[...c.http.values()].map(hostPort).join(',')}`;
      const cli = (...args: string[]) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          execFile(process.execPath, [MAIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
        });
      const put = await cli('put', 'cli-key', 'cli-value', endpoints, '--ca', certs.ca.cert, '--token-file', tokenFile);
      assert.equal(put.code, 0, put.stderr);
      const get = await cli('get', 'cli-key', endpoints, '--ca', certs.ca.cert, '--token-file', tokenFile);
      assert.deepEqual([get.code, get.stdout.trim()], [0, 'cli-value']);
      const refused = await cli('get', 'cli-key', endpoints, '--ca', certs.ca.cert);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /401.*--token-file/);
    } finally {
      await c.close();
    }
  });

  test('--client-auth cert: a client without a certificate from the CA is refused at the TLS handshake on both ports', async () => {
    const t = await serverTls(1);
    const c = await secureCluster(join(dir, 'b'), 1, () => ({ tls: t, clientAuth: 'cert' }));
    try {
      const alice = { ca, cert: await readFile(certs.clients.get('alice')!.cert), key: await readFile(certs.clients.get('alice')!.key) };
      const anonymous = new HttpKvClient({ endpoints: [hostPort(c.http.get(1)!)], tls: { ca }, timeoutMs: 1 });
      await assert.rejects(anonymous.call('GET', '/v1/status'), (e: unknown) => e instanceof HttpStatusError && e.certain);
      anonymous.close();
      const withCert = new HttpKvClient({ endpoints: [hostPort(c.http.get(1)!)], tls: alice });
      assert.equal((await withCert.call('PUT', '/v1/kv/a', 'x')).status, 200);
      withCert.close();

      const kvAnonymous = new KvClient({ endpoints: [hostPort(c.binary.get(1)!)], tls: { ca }, timeoutMs: 500 });
      await assert.rejects(kvAnonymous.get('a'));
      kvAnonymous.close();
      const kv = new KvClient({ endpoints: [hostPort(c.binary.get(1)!)], tls: alice });
      assert.equal(new TextDecoder().decode((await kv.get('a'))!), 'x');
      kv.close();
      const metrics = c.nodes[0]!.http.metricsText();
      assert.match(metrics, /synod_http_tls_failures_total [1-9]/);
      assert.match(metrics, /synod_binary_tls_failures_total [1-9]/);
    } finally {
      await c.close();
    }
  });
});
