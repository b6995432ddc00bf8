// TLS for the peer transport: a SocketFactory (socket.ts) with mutual authentication and a
// binding between each certificate and the replica id spoken in the Synod handshake.
//
// Design note
// -----------
// TcpTransport runs its handshake (hello: cluster id, sender id, target id) *inside* whatever
// stream the factory hands it, and it does not tell the factory which replica a socket belongs
// to. TLS alone proves "the peer holds a certificate from our CA"; it does not prove that the
// peer is the replica id it claims in its hello. So this factory looks at the hello itself, on
// both ends, and compares it with the certificate:
//
//   acceptor: after the TLS handshake it reads the dialer's hello (at most HANDSHAKE_BYTES_MAX
//             bytes, within handshakeTimeoutMs), checks hello.senderId == the id in the dialer's
//             certificate, puts the bytes back (socket.unshift) and only then hands the socket to
//             the transport. A mismatch gets a Synod refusal (WRONG_REPLICA) the dialer can log.
//   dialer:   the transport writes its hello synchronously from onReady; the factory intercepts
//             that one write and checks hello.targetId == the id in the acceptor's certificate,
//             then restores the socket's own write. A mismatch destroys the socket before the
//             hello leaves. The transport also checks welcome.acceptorId == the peer it dialed.
//
// A certificate names its replica with exactly one SAN URI `synod://replica/<id>` (certs.ts makes
// them; docs/security.md has the convention). With `clusterId` set, it must also carry
// `synod://cluster/<encodeURIComponent(clusterId)>`, so a certificate from another cluster's
// PKI sharing a CA is refused too. Host names are *not* verified for peers: the identity that
// matters is the replica id, and addresses change (containers, NAT); an HTTPS client still
// verifies host names as usual.
//
// Everything else is Node's TLS with the cluster CA as the only trust root (no system roots),
// TLS 1.3 minimum, requestCert + rejectUnauthorized on both sides. Every refusal is logged at
// 'warn' with a `code` and a `reason` naming both ids or the TLS error.

import { readFileSync } from 'node:fs';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import { HANDSHAKE_BYTES_MAX, HandshakeReader, encodeRefuse, parseHandshake } from './handshake.js';
import type { SocketFactory } from './socket.js';
import type { PeerAddress, ReplicaId, TransportLogger } from './types.js';

export const REPLICA_URI_PREFIX = 'synod://replica/';
export const CLUSTER_URI_PREFIX = 'synod://cluster/';
/** Default limit for the TLS handshake plus the hello that follows it (matches the transport's handshakeTimeoutMs default). */
export const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT = 3_000;

export type TlsRefusalCode =
  | 'SYNOD_TLS_HANDSHAKE' // TLS itself failed: unknown CA, no client certificate, expired, protocol
  | 'SYNOD_TLS_NO_IDENTITY' // a valid certificate that names no (or more than one) replica id
  | 'SYNOD_TLS_WRONG_CLUSTER' // the certificate does not name the expected cluster
  | 'SYNOD_TLS_ID_MISMATCH' // the hello's replica id is not the certificate's
  | 'SYNOD_TLS_HELLO_TIMEOUT'; // TLS done, no hello within the limit

export interface TlsSocketFactoryOptions {
  /** PEM of the cluster CA: the only trust root for peers (system roots are not used). */
  ca: string | Buffer | Array<string | Buffer>;
  /** This replica's certificate (PEM; may include intermediates) and private key. */
  cert: string | Buffer;
  key: string | Buffer;
  /** When set, a peer certificate must also name synod://cluster/<clusterId>. */
  clusterId?: string;
  /**
   * The replica id a peer certificate proves. Default: the single `synod://replica/<id>` SAN URI
   * (replicaIdOfCertificate). Return null to refuse. For deployments with their own naming.
   */
  identityOf?: (cert: tls.PeerCertificate) => ReplicaId | null;
  /** Limit for TLS handshake + hello on an accepted connection. Default 3 s. */
  handshakeTimeoutMs?: number;
  /** Where refusals are logged (the transport's logger fits). Default: warn/error to console.error. */
  logger?: TransportLogger;
  /** Extra node:tls options (ciphers, minVersion...), applied under the ones above that security depends on. */
  tlsOptions?: tls.SecureContextOptions;
}

/** Reads PEM files for tlsSocketFactory ({caFile, certFile, keyFile} as a CLI would pass them). */
export function readTlsFiles(files: { caFile: string; certFile: string; keyFile: string }): Pick<TlsSocketFactoryOptions, 'ca' | 'cert' | 'key'> {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} file ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return { ca: read('CA', files.caFile), cert: read('certificate', files.certFile), key: read('key', files.keyFile) };
}

/**
 * The replica id a certificate names: its one `synod://replica/<id>` SAN URI. Null when there is
 * none, more than one distinct id, or the id is outside 1..MAX_REPLICA_ID.
 */
export function replicaIdOfCertificate(cert: Pick<tls.PeerCertificate, 'subjectaltname'> | null | undefined): ReplicaId | null {
  const ids = new Set<number>();
  for (const uri of sanUris(cert?.subjectaltname)) {
    if (!uri.startsWith(REPLICA_URI_PREFIX)) continue;
    const text = uri.slice(REPLICA_URI_PREFIX.length);
    if (!/^[1-9][0-9]{0,3}$/.test(text)) return null; // a malformed replica URI is never ignored
    ids.add(Number(text));
  }
  if (ids.size !== 1) return null;
  const id = [...ids][0]!;
  return id >= 1 && id <= MAX_REPLICA_ID ? id : null;
}

/** Whether the certificate names `synod://cluster/<encodeURIComponent(clusterId)>`. */
export function certificateNamesCluster(cert: Pick<tls.PeerCertificate, 'subjectaltname'> | null | undefined, clusterId: string): boolean {
  const want = `${CLUSTER_URI_PREFIX}${encodeURIComponent(clusterId)}`;
  return sanUris(cert?.subjectaltname).includes(want);
}

/** The URI entries of Node's `subjectaltname` string ("DNS:a, URI:synod://replica/1, IP Address:…"). */
function sanUris(subjectaltname: string | undefined): string[] {
  if (typeof subjectaltname !== 'string' || subjectaltname.length > 65_536) return [];
  const out: string[] = [];
  // Node separates entries with ", " and JSON-quotes a value that contains a separator, so a
  // split on ", " that is followed by a known tag never cuts inside a value.
  for (const entry of subjectaltname.split(/, (?=[A-Za-z][A-Za-z ]*:)/)) {
    if (!entry.startsWith('URI:')) continue;
    let value = entry.slice(4);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    out.push(value);
  }
  return out;
}

const consoleLogger: TransportLogger = (level, msg, fields) => {
  if (level === 'warn' || level === 'error') console.error(`[synod tls] ${level}: ${msg}`, fields ?? '');
};

/** A SocketFactory for TcpTransport: TLS 1.3, mutual authentication, certificate ↔ replica id. */
export function tlsSocketFactory(options: TlsSocketFactoryOptions): SocketFactory {
  const log = options.logger ?? consoleLogger;
  const timeoutMs = options.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 2 ** 31 - 1) throw new RangeError(`handshakeTimeoutMs must be a positive integer, got ${timeoutMs}`);
  if (options.ca === undefined || options.cert === undefined || options.key === undefined) throw new RangeError('tlsSocketFactory needs ca, cert and key');
  const identityOf = options.identityOf ?? replicaIdOfCertificate;
  const contextOptions: tls.SecureContextOptions = {
    ...options.tlsOptions,
    minVersion: 'TLSv1.3',
    ca: options.ca,
    cert: options.cert,
    key: options.key,
  };
  // One secure context for every dial; building it here also fails fast on a bad key/cert.
  // (tls.createServer ignores a `secureContext` option: it gets the same options instead.)
  const context = tls.createSecureContext(contextOptions);
  const safeLog = (msg: string, fields: Record<string, unknown>): void => {
    try {
      log('warn', msg, fields);
    } catch {
      // a broken logger must not break a connection
    }
  };

  /** The replica id a peer proved, or a refusal. Pure: the caller logs and closes. */
  const identify = (socket: tls.TLSSocket, where: string): { id: ReplicaId } | { code: TlsRefusalCode; reason: string } => {
    const cert = socket.getPeerCertificate();
    if (cert === null || Object.keys(cert).length === 0) return { code: 'SYNOD_TLS_HANDSHAKE', reason: `${where} presented no certificate` };
    let id: ReplicaId | null;
    try {
      id = identityOf(cert);
    } catch (err) {
      id = null;
      safeLog('identityOf threw', { err: err instanceof Error ? err.message : String(err) });
    }
    if (id === null) return { code: 'SYNOD_TLS_NO_IDENTITY', reason: `${where} presented a certificate (${describe(cert)}) that names no replica id (expected one SAN URI ${REPLICA_URI_PREFIX}<id>)` };
    if (options.clusterId !== undefined && !certificateNamesCluster(cert, options.clusterId)) {
      return { code: 'SYNOD_TLS_WRONG_CLUSTER', reason: `${where} presented a certificate (${describe(cert)}) that does not name cluster ${JSON.stringify(options.clusterId)}` };
    }
    return { id };
  };

  return {
    wrapsConnections: true,
    connect(address: PeerAddress, onReady: () => void): net.Socket {
      const where = `peer at ${address.host}:${address.port}`;
      const socket = tls.connect({
        host: address.host,
        port: address.port,
        secureContext: context,
        rejectUnauthorized: true,
        // Host names are not the identity here (see the design note): the replica id is checked below.
        checkServerIdentity: () => undefined,
        ...(isIpLiteral(address.host) ? {} : { servername: address.host }),
      });
      let tcpConnected = false;
      socket.once('connect', () => (tcpConnected = true));
      // TLS failures after TCP connected (unknown CA, expired, refused client certificate) are a
      // configuration problem worth a warning each time; plain connect errors stay the transport's.
      socket.on('error', (err: NodeJS.ErrnoException) => {
        // In TLS 1.3 the acceptor checks our certificate after our side saw 'secureConnect', so
        // its verdict arrives later as an alert (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA, ...).
        const tlsAlert = typeof err.code === 'string' && err.code.startsWith('ERR_SSL_');
        if (tcpConnected && (!socket.authorized || tlsAlert)) safeLog('TLS handshake with peer failed', { address, code: 'SYNOD_TLS_HANDSHAKE', reason: `${where}: ${err.message}${err.code ? ` (${err.code})` : ''}` });
      });
      socket.once('secureConnect', () => {
        const identity = identify(socket, where);
        if ('code' in identity) {
          safeLog('refusing TLS peer', { address, code: identity.code, reason: identity.reason });
          socket.destroy(new Error(identity.reason));
          return;
        }
        interceptHello(socket, identity.id, where, safeLog, onReady);
      });
      return socket;
    },

    createServer(onSocket: (socket: net.Socket) => void): net.Server {
      const server = tls.createServer({
        ...contextOptions,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: timeoutMs,
      });
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        // Node leaves the socket open here, even on handshakeTimeout (ERR_TLS_HANDSHAKE_TIMEOUT): a
        // client that connects and sends nothing would hold it until it hangs up, maybe never.
        socket.destroy();
        safeLog('refused TLS connection', { remote: `${socket.remoteAddress}:${socket.remotePort}`, code: 'SYNOD_TLS_HANDSHAKE', reason: `${err.message}${err.code ? ` (${err.code})` : ''}` });
      });
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        const remote = `${socket.remoteAddress}:${socket.remotePort}`;
        const identity = identify(socket, `dialer at ${remote}`);
        socket.on('error', () => {}); // until the transport attaches its own; errors end in 'close'
        if ('code' in identity) {
          safeLog('refused TLS peer', { remote, code: identity.code, reason: identity.reason });
          refuse(socket, identity.reason);
          return;
        }
        readHello(socket, identity.id, remote, timeoutMs, safeLog, onSocket);
      });
      return server;
    },
  };
}

/** Dialer side: the transport's first write from onReady is its hello; check its target id. */
function interceptHello(
  socket: tls.TLSSocket,
  certId: ReplicaId,
  where: string,
  log: (msg: string, fields: Record<string, unknown>) => void,
  onReady: () => void,
): void {
  const write = socket.write;
  let seen = false;
  socket.write = function checkedWrite(this: tls.TLSSocket, ...args: unknown[]): boolean {
    socket.write = write;
    seen = true;
    const chunk = args[0];
    const parsed = chunk instanceof Uint8Array ? parseHandshake(chunk) : null;
    if (parsed === null || parsed.status !== 'done' || parsed.message.kind !== 'hello') {
      // Fail closed: if the transport ever stops writing one whole hello first, say so loudly.
      const reason = `${where}: the first bytes written were not a complete Synod hello; cannot bind the TLS identity (replica ${certId})`;
      log('refusing TLS peer', { code: 'SYNOD_TLS_ID_MISMATCH', reason });
      socket.destroy(new Error(reason));
      return false;
    }
    if (parsed.message.targetId !== certId) {
      const reason = `${where} presented a certificate for replica ${certId}, but replica ${parsed.message.targetId} was expected there`;
      log('refusing TLS peer', { peer: parsed.message.targetId, code: 'SYNOD_TLS_ID_MISMATCH', reason });
      socket.destroy(new Error(reason));
      return false;
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof socket.write;
  try {
    onReady();
  } finally {
    if (!seen) socket.write = write;
  }
}

/**
 * Acceptor side: reads the dialer's hello (bounded in bytes and time) without consuming it,
 * checks its sender id against the certificate, then hands the socket to the transport.
 */
function readHello(
  socket: tls.TLSSocket,
  certId: ReplicaId,
  remote: string,
  timeoutMs: number,
  log: (msg: string, fields: Record<string, unknown>) => void,
  onSocket: (socket: net.Socket) => void,
): void {
  const reader = new HandshakeReader();
  const chunks: Buffer[] = [];
  let bytes = 0;
  let done = false;
  const finish = (): void => {
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
  };
  const timer = setTimeout(() => {
    if (done) return;
    finish();
    log('refused TLS peer', { remote, peer: certId, code: 'SYNOD_TLS_HELLO_TIMEOUT', reason: `replica ${certId} at ${remote} completed TLS but sent no hello within ${timeoutMs} ms` });
    socket.destroy();
  }, timeoutMs);
  const onClose = (): void => {
    if (!done) finish();
  };
  const onData = (chunk: Buffer): void => {
    if (done) return;
    chunks.push(chunk);
    bytes += chunk.length;
    const parsed = reader.push(chunk);
    if (parsed.status === 'more' && bytes <= HANDSHAKE_BYTES_MAX) return;
    finish();
    socket.pause(); // keep what follows in the socket until the transport listens
    if (parsed.status === 'done' && parsed.message.kind === 'hello' && parsed.message.senderId !== certId) {
      const reason = `dialer at ${remote} presented a certificate for replica ${certId} but claims to be replica ${parsed.message.senderId}`;
      log('refused TLS peer', { remote, peer: parsed.message.senderId, code: 'SYNOD_TLS_ID_MISMATCH', reason });
      refuse(socket, reason);
      return;
    }
    // A matching hello, or bytes the transport refuses itself (garbage, a welcome...): either way
    // the transport sees exactly what arrived, in order.
    socket.unshift(Buffer.concat(chunks));
    onSocket(socket);
    socket.resume();
  };
  socket.on('data', onData);
  socket.on('close', onClose);
}

/** Sends a Synod refusal (the dialer logs its message) and closes. */
function refuse(socket: tls.TLSSocket, reason: string): void {
  const linger = setTimeout(() => socket.destroy(), 1_000);
  socket.once('close', () => clearTimeout(linger));
  socket.end(encodeRefuse({ code: 'SYNOD_TRANSPORT_WRONG_REPLICA', versionMin: 1, versionMax: 1, message: reason }));
}

function describe(cert: tls.PeerCertificate): string {
  const cn = cert.subject?.CN;
  return `subject CN=${JSON.stringify(Array.isArray(cn) ? cn.join(',') : (cn ?? ''))}, SAN ${JSON.stringify(cert.subjectaltname ?? '')}`;
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
