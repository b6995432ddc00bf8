// TcpTransport over TLS (src/transport/tls.ts): the transport compliance suite, then refusals —
// unknown CA, a certificate for another replica id (both directions), another cluster, no client
// certificate, a certificate naming no replica, plain TCP on a TLS port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { generateDevCerts, type DevCerts } from '../../src/security/certs.js';
import { TcpTransport, type PeerAddress, type ReplicaId } from '../../src/transport/index.js';
import { certificateNamesCluster, replicaIdOfCertificate, tlsSocketFactory, type TlsSocketFactoryOptions } from '../../src/transport/tls.js';
import { transportCompliance, type Harness } from './compliance.js';
import { collectingLogger, numberedFrame, seededRandom, sleep, waitFor } from './helpers.js';
import { hasOpenssl } from '../security/openssl.js';

const CLUSTER = 'tls-test';
const skip = hasOpenssl ? false : 'openssl not installed: cannot generate test certificates';

const root = mkdtempSync(join(tmpdir(), 'synod-tls-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

// Generated once, lazily, shared by every test in this file (about 0.1 s per certificate).
let pki: Promise<{ good: DevCerts; otherCa: DevCerts; otherCluster: DevCerts }> | null = null;
function certs() {
  pki ??= (async () => {
    const good = await generateDevCerts({ dir: join(root, 'good'), replicaIds: [1, 2, 3, 4], clusterId: CLUSTER });
    const otherCa = await generateDevCerts({ dir: join(root, 'other-ca'), replicaIds: [1, 2], clusterId: CLUSTER });
    // Same CA as `good`, another cluster id: only the cluster URI tells them apart.
    const dir = join(root, 'other-cluster');
    await generateDevCerts({ dir, replicaIds: [9], clusterId: 'x', clientNames: [] }); // makes the dir
    copyFileSync(good.ca.cert, join(dir, 'ca.crt'));
    copyFileSync(good.ca.key, join(dir, 'ca.key'));
    const otherCluster = await generateDevCerts({ dir, replicaIds: [2], clusterId: 'another-cluster', clientNames: [], overwrite: true });
    return { good, otherCa, otherCluster };
  })();
  return pki;
}

function material(set: DevCerts, id: ReplicaId, caFrom: DevCerts = set): Pick<TlsSocketFactoryOptions, 'ca' | 'cert' | 'key'> {
  const files = set.replicas.get(id)!;
  return { ca: readFileSync(caFrom.ca.cert), cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

if (hasOpenssl) {
  transportCompliance('tls', (): Harness => {
    const addresses = new Map<ReplicaId, PeerAddress>();
    const made: TcpTransport[] = [];
    return {
      async start(id, limits) {
        const { good } = await certs();
        const logger = collectingLogger().logger;
        const transport = new TcpTransport({
          replicaId: id,
          clusterId: CLUSTER,
          listenPort: addresses.get(id)?.port ?? 0,
          frameBytesMax: limits.frameBytesMax,
          peerQueueBytesMax: limits.peerQueueBytesMax,
          reconnectDelayMinMs: 10,
          reconnectDelayMaxMs: 100,
          random: seededRandom(id),
          logger,
          socketFactory: tlsSocketFactory({ ...material(good, id), clusterId: CLUSTER, logger }),
        });
        made.push(transport);
        await transport.start();
        addresses.set(id, transport.address());
        return transport;
      },
      address(id) {
        const address = addresses.get(id);
        if (address === undefined) throw new Error(`replica ${id} was never started`);
        return address;
      },
      async dispose() {
        await Promise.all(made.map((t) => t.close()));
      },
    };
  });
}

interface Node {
  transport: TcpTransport;
  frames: Array<{ from: ReplicaId; frame: Uint8Array }>;
  log: ReturnType<typeof collectingLogger>;
}

describe('tls refusals', { skip }, () => {
  const open: TcpTransport[] = [];
  let sets: Awaited<ReturnType<typeof certs>>;
  before(async () => {
    sets = await certs();
  });
  after(async () => {
    await Promise.all(open.map((t) => t.close()));
  });

  async function node(id: ReplicaId, tlsMaterial: Pick<TlsSocketFactoryOptions, 'ca' | 'cert' | 'key'>): Promise<Node> {
    const log = collectingLogger();
    const transport = new TcpTransport({
      replicaId: id,
      clusterId: CLUSTER,
      reconnectDelayMinMs: 20,
      reconnectDelayMaxMs: 50,
      handshakeTimeoutMs: 1_000,
      random: seededRandom(id),
      logger: log.logger,
      socketFactory: tlsSocketFactory({ ...tlsMaterial, clusterId: CLUSTER, logger: log.logger, handshakeTimeoutMs: 1_000 }),
    });
    open.push(transport);
    const frames: Node['frames'] = [];
    transport.onFrame((from, frame) => frames.push({ from, frame: frame.slice() }));
    await transport.start();
    return { transport, frames, log };
  }

  function connect(a: Node, b: Node): void {
    const peers = new Map([
      [a.transport.replicaId, a.transport.address()],
      [b.transport.replicaId, b.transport.address()],
    ]);
    a.transport.setPeers(peers);
    b.transport.setPeers(peers);
  }

  /** Sends probes from a to b for `ms`; returns how many b received. */
  async function probe(a: Node, b: Node, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    let seq = 0;
    while (Date.now() < deadline) {
      a.transport.send(b.transport.replicaId, numberedFrame(a.transport.replicaId, seq++));
      await sleep(20);
    }
    return b.frames.length;
  }

  const reasons = (n: Node, code: string): string[] => n.log.records.filter((r) => r.fields['code'] === code).map((r) => String(r.fields['reason']));

  test('a peer whose certificate comes from an unknown CA is refused at the TLS handshake, both ways', async () => {
    const a = await node(1, material(sets.good, 1));
    const b = await node(2, material(sets.otherCa, 2)); // its own CA: trusts neither a nor is trusted
    connect(a, b);
    assert.equal(await probe(a, b, 400), 0);
    assert.equal(a.frames.length, 0);
    await waitFor(() => reasons(a, 'SYNOD_TLS_HANDSHAKE').length > 0 && reasons(b, 'SYNOD_TLS_HANDSHAKE').length > 0, 'TLS refusals logged on both sides');
    const all = [...reasons(a, 'SYNOD_TLS_HANDSHAKE'), ...reasons(b, 'SYNOD_TLS_HANDSHAKE')].join('\n');
    assert.match(all, /certificate|unknown ca|self.signed/i);
    await a.transport.close();
    await b.transport.close();
  });

  test('a dialer whose certificate names another replica id is refused by the acceptor', async () => {
    const a = await node(1, material(sets.good, 1));
    const impostor = await node(2, material(sets.good, 3)); // claims 2 in its hello, certificate says 3
    connect(a, impostor);
    assert.equal(await probe(impostor, a, 400), 0, 'no frame from the impostor is delivered');
    await waitFor(() => reasons(a, 'SYNOD_TLS_ID_MISMATCH').length > 0, 'acceptor logs the mismatch');
    assert.ok(reasons(a, 'SYNOD_TLS_ID_MISMATCH').some((r) => /certificate for replica 3 but claims to be replica 2/.test(r)), 'acceptor-side mismatch');
    // The dialer hears why (a Synod refusal carrying the reason).
    await waitFor(() => impostor.transport.stats().get(1)?.lastError?.code === 'SYNOD_TRANSPORT_WRONG_REPLICA', 'dialer sees the refusal');
    assert.match(impostor.transport.stats().get(1)!.lastError!.message, /certificate for replica 3/);
    // And the dialer (1) refuses to talk to the impostor as replica 2: its certificate says 3.
    assert.equal(await probe(a, impostor, 200), 0);
    await waitFor(() => reasons(a, 'SYNOD_TLS_ID_MISMATCH').some((r) => /certificate for replica 3, but replica 2 was expected/.test(r)), 'dialer-side mismatch');
    await a.transport.close();
    await impostor.transport.close();
  });

  test('a certificate of the same CA for another cluster is refused', async () => {
    const a = await node(1, material(sets.good, 1));
    const b = await node(2, material(sets.otherCluster, 2, sets.good));
    connect(a, b);
    assert.equal(await probe(b, a, 300), 0);
    await waitFor(() => reasons(a, 'SYNOD_TLS_WRONG_CLUSTER').length > 0, 'wrong cluster logged');
    assert.match(reasons(a, 'SYNOD_TLS_WRONG_CLUSTER')[0]!, /does not name cluster "tls-test"/);
    await a.transport.close();
    await b.transport.close();
  });

  test('matching certificates connect and deliver in both directions', async () => {
    const a = await node(1, material(sets.good, 1));
    const b = await node(2, material(sets.good, 2));
    connect(a, b);
    await waitFor(() => {
      a.transport.send(2, numberedFrame(1, 0));
      b.transport.send(1, numberedFrame(2, 0));
      return a.frames.length > 0 && b.frames.length > 0;
    }, 'frames both ways');
    assert.equal(b.frames[0]!.from, 1);
    assert.equal(a.frames[0]!.from, 2);
    await a.transport.close();
    await b.transport.close();
  });

  test('no client certificate, a client certificate without replica id, and plain TCP are refused; the port keeps serving', async () => {
    const a = await node(1, material(sets.good, 1));
    const address = a.transport.address();
    const ca = readFileSync(sets.good.ca.cert);
    const tryTls = (options: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve) => {
        const socket = tls.connect({ host: address.host, port: address.port, ca, checkServerIdentity: () => undefined, ...options });
        socket.on('error', (err) => resolve(`error: ${err.message}`));
        socket.on('data', (d) => resolve(`data: ${d.length} bytes`));
        socket.on('close', () => resolve('closed'));
        socket.setTimeout(2_000, () => socket.destroy());
      });
    assert.notEqual(await tryTls({}), 'data: 0 bytes');
    await waitFor(() => reasons(a, 'SYNOD_TLS_HANDSHAKE').length > 0, 'no-certificate refusal logged');
    const client = sets.good.clients.get('client')!;
    await tryTls({ cert: readFileSync(client.cert), key: readFileSync(client.key) });
    await waitFor(() => reasons(a, 'SYNOD_TLS_NO_IDENTITY').length > 0, 'no-identity refusal logged');
    assert.match(reasons(a, 'SYNOD_TLS_NO_IDENTITY')[0]!, /names no replica id/);
    // Plain TCP with a Synod hello: TLS fails, nothing reaches the transport.
    await new Promise<void>((resolve) => {
      const socket = net.connect(address, () => socket.write('SYNP garbage that is not TLS\r\n\r\n'));
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.setTimeout(2_000, () => socket.destroy());
    });
    // Still serving: a legitimate peer connects afterwards.
    const b = await node(2, material(sets.good, 2));
    connect(a, b);
    await waitFor(() => {
      b.transport.send(1, numberedFrame(2, 0));
      return a.frames.length > 0;
    }, 'a legitimate peer after the refusals');
    await a.transport.close();
    await b.transport.close();
  });

  test('a dialer that completes TLS but sends no hello is cut after handshakeTimeoutMs', async () => {
    const a = await node(1, material(sets.good, 1));
    const address = a.transport.address();
    const files = sets.good.replicas.get(2)!;
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const socket = tls.connect({ ...address, ca: readFileSync(sets.good.ca.cert), cert: readFileSync(files.cert), key: readFileSync(files.key), checkServerIdentity: () => undefined });
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
    assert.ok(Date.now() - started < 3_000);
    await waitFor(() => reasons(a, 'SYNOD_TLS_HELLO_TIMEOUT').length > 0, 'hello timeout logged');
    await a.transport.close();
  });
});

describe('TLS accept limits', () => {
  test('silent TCP connections to a TLS port are held within inboundPerAddressMax and cut at handshakeTimeoutMs; a peer connects afterwards', { skip }, async () => {
    const sets = await certs();
    const made: TcpTransport[] = [];
    const start = async (id: ReplicaId) => {
      const log = collectingLogger();
      const t = new TcpTransport({
        replicaId: id, clusterId: CLUSTER, reconnectDelayMinMs: 20, reconnectDelayMaxMs: 50, handshakeTimeoutMs: 600, inboundPerAddressMax: 8,
        random: seededRandom(id), logger: log.logger,
        socketFactory: tlsSocketFactory({ ...material(sets.good, id), clusterId: CLUSTER, logger: log.logger, handshakeTimeoutMs: 600 }),
      });
      made.push(t);
      await t.start();
      return { t, log };
    };
    const a = await start(1);
    try {
      const address = a.t.address();
      // A port scanner or a slowloris: TCP connects, nothing is ever sent. Before the fix Node's TLS
      // server kept all of them open (handshakeTimeout only reports) and no accept limit applied.
      let closedByServer = 0;
      const silent = Array.from({ length: 40 }, () => {
        const s = net.connect(address);
        s.on('error', () => {});
        s.on('close', () => closedByServer++);
        return s;
      });
      await waitFor(() => closedByServer >= 32, 'all but inboundPerAddressMax refused at once');
      await sleep(100);
      assert.equal(closedByServer, 32, 'the 8 within the limit are held until their handshake times out');
      assert.equal(a.t.refusedInboundConnections, 32);
      await waitFor(() => closedByServer === 40, 'the rest cut at handshakeTimeoutMs');
      for (const s of silent) s.destroy();
      const b = await start(2);
      const peers = new Map([[1, address], [2, b.t.address()]]);
      a.t.setPeers(peers);
      b.t.setPeers(peers);
      const got: number[] = [];
      a.t.onFrame((from) => got.push(from));
      await waitFor(() => {
        b.t.send(1, numberedFrame(2, 0));
        return got.length > 0;
      }, 'a legitimate peer after the silent connections');
    } finally {
      await Promise.all(made.map((t) => t.close()));
    }
  });
});

describe('certificate identity parsing', () => {
  test('replicaIdOfCertificate takes exactly one well-formed synod://replica/<id> URI', () => {
    const id = (san: string | undefined) => replicaIdOfCertificate({ subjectaltname: san as string });
    assert.equal(id('URI:synod://replica/7, DNS:localhost'), 7);
    assert.equal(id('DNS:localhost, URI:synod://replica/1023'), 1023);
    assert.equal(id('URI:synod://replica/2, URI:synod://replica/2'), 2);
    assert.equal(id('URI:synod://replica/2, URI:synod://replica/3'), null, 'two ids are ambiguous');
    assert.equal(id('URI:synod://replica/1024'), null);
    assert.equal(id('URI:synod://replica/0'), null);
    assert.equal(id('URI:synod://replica/07'), null);
    assert.equal(id('URI:synod://replica/2x'), null);
    assert.equal(id('URI:synod://replica/2, URI:synod://replica/x'), null, 'a malformed replica URI is not ignored');
    assert.equal(id('DNS:synod://replica/2'), null);
    assert.equal(id('URI:synod://client/admin'), null);
    assert.equal(id(''), null);
    assert.equal(id(undefined), null);
    assert.equal(replicaIdOfCertificate(null), null);
  });

  test('certificateNamesCluster compares the percent-encoded cluster id exactly', () => {
    const san = `URI:synod://replica/1, URI:synod://cluster/${encodeURIComponent('prod/eu é')}`;
    assert.equal(certificateNamesCluster({ subjectaltname: san }, 'prod/eu é'), true);
    assert.equal(certificateNamesCluster({ subjectaltname: san }, 'prod'), false);
    assert.equal(certificateNamesCluster({ subjectaltname: 'URI:"synod://cluster/a, URI:b"' }, 'a'), false);
  });
});
