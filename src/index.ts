// Public API of the synod package.
export { SynodReplica } from './runtime/replica.js';
export type {
  ApplyContext,
  Consistency,
  PeerAddress,
  ProposeOptions,
  ReadOptions,
  ReadResult,
  ReplicaOptions,
  PeerLimits,
  PeerHealth,
  ReplicaStatus,
  StateMachine,
} from './runtime/api.js';
export type { LatencyHistogram, LatencySummary, ReplicaStatistics } from './runtime/statistics.js';
export { LATENCY_BUCKET_BOUNDS_MS } from './runtime/statistics.js';
export {
  DataDirError,
  NotLeaderError,
  OutcomeUnknownError,
  OverloadedError,
  SessionExpiredError,
  ShuttingDownError,
  StaleReadError,
  StorageFailedError,
  StoppedError,
  SynodError,
} from './runtime/errors.js';
export { Replica as ProtocolCore } from './core/replica.js';
export type { CoreOptions } from './core/options.js';
export type { RemovalNotice } from './core/types.js';
export { DEFAULT_CORE_OPTIONS } from './core/options.js';
export { KvClient, KvClientError, KvUnavailableError, KvOutcomeUnknownError, KvBadRequestError, KvSessionExpiredError, KvAuthError } from './kv/client.js';
export type { KvClientOptions, CasOutcome, KvBatchCommand } from './kv/client.js';
export type { KvResult } from './kv/codec.js';
export { HttpKvClient, HttpStatusError } from './kv/http-client.js';
export type { HttpKvClientOptions, HttpAnswer } from './kv/http-client.js';
export { generateDevCerts, CertError } from './security/certs.js';
export type { DevCertsOptions, DevCerts } from './security/certs.js';
export { KvMachine } from './kv/machine.js';
export { KvNode } from './kv/node.js';
export type { KvNodeOptions } from './kv/node.js';
export { replayDataDir } from './runtime/replay.js';
export type { ReplayOptions, ReplayResult, ReplaySlotEvent } from './runtime/replay.js';
export { restoreDataDir } from './runtime/restore.js';
export type { RestoreOptions, RestoreResult } from './runtime/restore.js';
export type { StateDigestStatus } from './runtime/state-digests.js';
export { StorageError } from './storage/errors.js';
export { ConfigError } from './core/options.js';
export { TransportError } from './transport/types.js';
// For a transport of one's own (docs/security.md, "Peer transport"; docs/transport.md) and for
// tests of an application's state machine over the in-memory network.
export { TcpTransport } from './transport/tcp.js';
export { MemoryNetwork, MemoryTransport } from './transport/memory.js';
export type { MemoryTransportOptions } from './transport/memory.js';
export type { PeerTransport, TransportEvent } from './transport/types.js';
export type { TransportOptionsInput } from './transport/options.js';
export { tlsSocketFactory, readTlsFiles } from './transport/tls.js';
export type { TlsSocketFactoryOptions } from './transport/tls.js';
// For checking a backed-up snapshot file (docs/operations.md, "Backups").
export { SnapshotStore } from './storage/snapshot-store.js';
