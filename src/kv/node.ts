// One key-value server: a SynodReplica over a KvMachine, with its HTTP API (and, when asked, the
// binary client protocol). `synod start` runs one of these; tests run several in one process.

import type { Logger } from 'pino';
import type { PeerAddress, ReplicaOptions } from '../runtime/api.js';
import { SynodReplica } from '../runtime/replica.js';
import { resolveClientLimits, validateClientSecurity, type ClientLimits, type ClientSecurity } from '../security/client-auth.js';
import type { PeerTransport } from '../transport/types.js';
import { KvBinaryServer } from './binary-server.js';
import { KvHttpServer } from './http.js';
import { KvMachine } from './machine.js';

export interface KvNodeOptions {
  id: number;
  clusterId: string;
  dataDir: string;
  /** Peer addresses of every initial member. */
  members: Map<number, PeerAddress>;
  /** HTTP addresses of the members (this one's included: it is where we listen). */
  httpAddresses: Map<number, PeerAddress>;
  /** Where to listen for the binary client protocol; none when absent. */
  binary?: PeerAddress;
  /** Binary addresses of the members, so that a follower can point clients at the leader. */
  binaryAddresses?: Map<number, PeerAddress>;
  valueBytesMax?: number;
  followerMode?: 'forward' | 'redirect';
  transport?: PeerTransport;
  logBackend?: ReplicaOptions['logBackend'];
  /** Mutual TLS between replicas (see ReplicaOptions.tls). */
  tls?: ReplicaOptions['tls'];
  /** Join a running cluster (members = its initial list, without this replica); `listen` is required. */
  join?: boolean;
  listen?: PeerAddress;
  /** Where peers should dial this replica (ReplicaOptions.advertise). */
  advertise?: PeerAddress;
  core?: ReplicaOptions['core'];
  /** Limits of the peer transport (ReplicaOptions.peerLimits). */
  peerLimits?: ReplicaOptions['peerLimits'];
  snapshotIntervalSlots?: number;
  snapshotIntervalBytes?: number;
  stateDigestIntervalSlots?: number;
  leaderSnapshotIntervalFactor?: number;
  leaderAdoptsSnapshots?: boolean;
  proposeTimeoutMs?: number;
  /** The replicated session table's settings (ReplicaOptions; equal on every replica). */
  sessionsMax?: number;
  sessionExpiryMs?: number;
  /** The leader's admission limits (ReplicaOptions). */
  proposalQueueCommandsMax?: number;
  proposalQueueBytesMax?: number;
  logger?: Logger;
  /** TLS, client certificates and bearer tokens on the HTTP and binary ports (docs/security.md). */
  clientSecurity?: ClientSecurity;
  /** Per-client limits of both client ports (defaults: CLIENT_LIMITS_DEFAULT, docs/security.md). */
  clientLimits?: Partial<ClientLimits>;
}

export class KvNode {
  private constructor(
    readonly replica: SynodReplica,
    readonly machine: KvMachine,
    readonly http: KvHttpServer,
    readonly binary: KvBinaryServer | null,
  ) {}

  static async start(o: KvNodeOptions): Promise<KvNode> {
    // Refuse a contradictory setting before anything is opened.
    validateClientSecurity(o.clientSecurity);
    resolveClientLimits(o.clientLimits);
    const machine = new KvMachine({ valueBytesMax: o.valueBytesMax });
    const log = o.logger;
    const replica = await SynodReplica.start({
      id: o.id,
      clusterId: o.clusterId,
      dataDir: o.dataDir,
      members: o.members,
      join: o.join,
      listen: o.listen,
      advertise: o.advertise,
      stateMachine: machine,
      transport: o.transport,
      logBackend: o.logBackend,
      tls: o.tls,
      core: o.core,
      peerLimits: o.peerLimits,
      snapshotIntervalSlots: o.snapshotIntervalSlots,
      snapshotIntervalBytes: o.snapshotIntervalBytes,
      stateDigestIntervalSlots: o.stateDigestIntervalSlots,
      leaderSnapshotIntervalFactor: o.leaderSnapshotIntervalFactor,
      leaderAdoptsSnapshots: o.leaderAdoptsSnapshots,
      sessionsMax: o.sessionsMax,
      sessionExpiryMs: o.sessionExpiryMs,
      proposeTimeoutMs: o.proposeTimeoutMs,
      proposalQueueCommandsMax: o.proposalQueueCommandsMax,
      proposalQueueBytesMax: o.proposalQueueBytesMax,
      logger: log
        ? (level, msg, fields) => {
            // The base logger already names this replica.
            const { replica: _self, ...rest } = fields ?? {};
            log[level](rest, msg);
          }
        : undefined,
    });
    const listen = o.httpAddresses.get(o.id);
    if (!listen) {
      await replica.close();
      throw new Error(`no HTTP address for replica ${o.id}: pass --http HOST:PORT`);
    }
    let binary: KvBinaryServer | null = null;
    const http = new KvHttpServer({
      replica,
      machine,
      listen,
      httpAddresses: o.httpAddresses,
      peerAddresses: o.members,
      followerMode: o.followerMode,
      forwardTimeoutMs: (o.proposeTimeoutMs ?? 5_000) + 2_000,
      logger: log,
      extraMetrics: () => binary?.metricsText() ?? '',
      security: o.clientSecurity,
      limits: o.clientLimits,
    });
    try {
      await http.start();
      if (o.binary) {
        binary = new KvBinaryServer({ replica, machine, listen: o.binary, binaryAddresses: o.binaryAddresses, logger: log, security: o.clientSecurity, limits: o.clientLimits });
        await binary.start();
      }
    } catch (e) {
      await http.close().catch(() => {});
      await replica.close();
      throw e;
    }
    // Announced through the log whenever this replica leads (SynodReplica.advertiseEndpoints): the
    // followers, including those started before this replica was added, learn where to forward
    // or redirect. The bound addresses, so that port 0 announces the port it got.
    replica.advertiseEndpoints({ http: http.address(), ...(binary ? { binary: binary.address() } : {}) });
    return new KvNode(replica, machine, http, binary);
  }

  /** Stops serving clients, then the replica (pending requests end as 503 or 504). */
  async close(): Promise<void> {
    // Stop taking connections, end the replica (its pending requests are answered 503 or 504
    // on connections still open) and the forwards waiting for the leader (likewise), let those
    // answers flush, then drop the connections.
    this.http.stopAccepting();
    this.http.abortForwards(`replica ${this.replica.id} is shutting down`);
    await this.replica.close();
    await new Promise((r) => setTimeout(r, 20));
    await this.binary?.close();
    await this.http.close();
  }
}
