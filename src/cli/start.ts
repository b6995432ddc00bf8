// `synod start`: one replica of the key-value server, until SIGTERM or SIGINT.

import { isAbsolute, relative, resolve } from 'node:path';
import v8 from 'node:v8';
import { Command, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { KvNode } from '../kv/node.js';
import { DataDirError } from '../runtime/errors.js';
import { DEFAULT_PROPOSAL_QUEUE_BYTES_MAX, DEFAULT_PROPOSAL_QUEUE_COMMANDS_MAX, DEFAULT_SNAPSHOT_INTERVAL_BYTES } from '../runtime/replica.js';
import type { PeerAddress, PeerLimits } from '../runtime/api.js';
import { CLIENT_LIMITS_DEFAULT, readTokenFile, resolveClientLimits, type ClientLimits, type ClientSecurity } from '../security/client-auth.js';
import { readTlsFiles } from '../transport/tls.js';
import { DEFAULT_TRANSPORT_OPTIONS, transportOptions } from '../transport/options.js';
import { notADirectory, parseHostPort, parseIdMap, readConfigFile, UsageError } from './config.js';
import { installTestHooks } from './test-hooks.js';
import { MAX_REPLICA_ID } from '../core/ballot.js';
import { tryLoadNative } from '../storage/native.js';

export interface StartSettings {
  id: number;
  clusterId: string;
  data: string;
  peer: PeerAddress;
  /** Where peers should dial this replica, named in its hellos (default: peer). */
  advertisePeer?: PeerAddress;
  http: PeerAddress;
  binary?: PeerAddress;
  initialCluster: Map<number, PeerAddress>;
  join: boolean;
  tls?: { caFile: string; certFile: string; keyFile: string };
  initialHttp: Map<number, PeerAddress>;
  initialBinary?: Map<number, PeerAddress>;
  valueMaxBytes?: number;
  /** The replicated session table's settings (same on every replica). */
  sessionsMax?: number;
  sessionExpiryMs?: number;
  /** The leader's admission limits (ReplicaOptions.proposalQueueCommandsMax, proposalQueueBytesMax). */
  proposalQueueCommandsMax?: number;
  proposalQueueBytesMax?: number;
  followerMode: 'forward' | 'redirect';
  logLevel: string;
  logBackend: 'file' | 'pmem' | 'memory';
  electionTimeoutMs?: number;
  snapshotIntervalSlots?: number;
  snapshotIntervalBytes?: number;
  leaderSnapshotIntervalFactor?: number;
  /** ReplicaOptions.stateDigestIntervalSlots (0: off). */
  stateDigestIntervalSlots?: number;
  /** adopt: a leader keeps a follower's snapshot as its own (ReplicaOptions.leaderAdoptsSnapshots); own: it makes its own. */
  leaderSnapshots: 'adopt' | 'own';
  /** HTTPS and TLS on the client ports with the --tls-* files (default: on when they are given). */
  clientTls: boolean;
  clientAuth: 'none' | 'cert';
  clientTokenFile?: string;
  clientLimits: Partial<ClientLimits>;
  peerLimits: PeerLimits;
  /** V8's old-generation growing factor, in percent over the live data (0: V8's own policy). */
  heapGrowingPercent: number;
}

/**
 * Left alone, V8 lets the old generation grow to up to 4x the live data before a full
 * collection when the machine has memory to spare: at full load a replica with ~60 MiB live held
 * ~190 MiB of heap. 50 keeps it near 1.5x (BENCHMARKS.md, "RSS < 256 MiB"), for about the same
 * CPU once little is promoted (docs/performance.md, "Memory").
 */
export const HEAP_GROWING_PERCENT_DEFAULT = 50;

/** --log-level's choices (pino's levels); SYNOD_LOG_LEVEL and "logLevel" in --config are held to the same. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Peer transport limit flags: camelCase flag name -> PeerLimits field -> flag. */
const PEER_LIMIT_FLAGS: Array<[string, keyof PeerLimits, string]> = [
  ['peerFrameMaxBytes', 'frameBytesMax', 'peer-frame-max-bytes'],
  ['peerQueueMaxBytes', 'peerQueueBytesMax', 'peer-queue-max-bytes'],
  ['peerHandshakeTimeoutMs', 'handshakeTimeoutMs', 'peer-handshake-timeout-ms'],
  ['peerHandshakingMax', 'inboundHandshakingMax', 'peer-handshaking-max'],
  ['peerConnectionsPerAddressMax', 'inboundPerAddressMax', 'peer-connections-per-address-max'],
];

/** Limit flags: camelCase flag name -> ClientLimits field -> flag. */
const LIMIT_FLAGS: Array<[string, keyof ClientLimits, string]> = [
  ['connectionsPerAddressMax', 'connectionsPerAddressMax', 'connections-per-address-max'],
  ['connectionsMax', 'connectionsMax', 'connections-max'],
  ['inflightPerConnectionMax', 'inflightPerConnectionMax', 'inflight-per-connection-max'],
  ['httpHeadersTimeoutMs', 'httpHeadersTimeoutMs', 'http-headers-timeout-ms'],
  ['httpBodyTimeoutMs', 'httpBodyTimeoutMs', 'http-body-timeout-ms'],
  ['httpBodyMaxBytes', 'httpBodyBytesMax', 'http-body-max-bytes'],
  ['httpPipelineMax', 'httpPipelineMax', 'http-pipeline-max'],
  ['httpUnsentMaxBytes', 'httpUnsentBytesMax', 'http-unsent-max-bytes'],
  ['httpWriteStallTimeoutMs', 'httpWriteStallTimeoutMs', 'http-write-stall-timeout-ms'],
  ['binaryAuthTimeoutMs', 'binaryAuthTimeoutMs', 'binary-auth-timeout-ms'],
  ['binaryWriteBufferMaxBytes', 'binaryWriteBufferBytesMax', 'binary-write-buffer-max-bytes'],
  ['binaryWriteStallTimeoutMs', 'binaryWriteStallTimeoutMs', 'binary-write-stall-timeout-ms'],
  ['binaryFrameTimeoutMs', 'binaryFrameTimeoutMs', 'binary-frame-timeout-ms'],
  ['binaryIdleTimeoutMs', 'binaryIdleTimeoutMs', 'binary-idle-timeout-ms'],
];

/** Flag name (camelCase) -> environment variable. */
const ENV: Record<string, string> = {
  id: 'SYNOD_ID',
  clusterId: 'SYNOD_CLUSTER_ID',
  data: 'SYNOD_DATA',
  peer: 'SYNOD_PEER',
  advertisePeer: 'SYNOD_ADVERTISE_PEER',
  http: 'SYNOD_HTTP',
  binary: 'SYNOD_BINARY',
  initialCluster: 'SYNOD_INITIAL_CLUSTER',
  join: 'SYNOD_JOIN',
  tlsCa: 'SYNOD_TLS_CA',
  tlsCert: 'SYNOD_TLS_CERT',
  tlsKey: 'SYNOD_TLS_KEY',
  initialHttp: 'SYNOD_INITIAL_HTTP',
  initialBinary: 'SYNOD_INITIAL_BINARY',
  valueMaxBytes: 'SYNOD_VALUE_MAX_BYTES',
  sessionsMax: 'SYNOD_SESSIONS_MAX',
  sessionExpiryMs: 'SYNOD_SESSION_EXPIRY_MS',
  proposalQueueCommandsMax: 'SYNOD_PROPOSAL_QUEUE_COMMANDS_MAX',
  proposalQueueBytesMax: 'SYNOD_PROPOSAL_QUEUE_BYTES_MAX',
  followerMode: 'SYNOD_FOLLOWER_MODE',
  logLevel: 'SYNOD_LOG_LEVEL',
  logBackend: 'SYNOD_LOG_BACKEND',
  electionTimeoutMs: 'SYNOD_ELECTION_TIMEOUT_MS',
  snapshotIntervalSlots: 'SYNOD_SNAPSHOT_INTERVAL_SLOTS',
  snapshotIntervalBytes: 'SYNOD_SNAPSHOT_INTERVAL_BYTES',
  stateDigestIntervalSlots: 'SYNOD_STATE_DIGEST_INTERVAL_SLOTS',
  leaderSnapshotIntervalFactor: 'SYNOD_LEADER_SNAPSHOT_INTERVAL_FACTOR',
  leaderSnapshots: 'SYNOD_LEADER_SNAPSHOTS',
  clientTls: 'SYNOD_CLIENT_TLS',
  clientAuth: 'SYNOD_CLIENT_AUTH',
  clientTokenFile: 'SYNOD_CLIENT_TOKEN_FILE',
  connectionsPerAddressMax: 'SYNOD_CONNECTIONS_PER_ADDRESS_MAX',
  connectionsMax: 'SYNOD_CONNECTIONS_MAX',
  inflightPerConnectionMax: 'SYNOD_INFLIGHT_PER_CONNECTION_MAX',
  httpHeadersTimeoutMs: 'SYNOD_HTTP_HEADERS_TIMEOUT_MS',
  httpBodyTimeoutMs: 'SYNOD_HTTP_BODY_TIMEOUT_MS',
  httpBodyMaxBytes: 'SYNOD_HTTP_BODY_MAX_BYTES',
  httpPipelineMax: 'SYNOD_HTTP_PIPELINE_MAX',
  httpUnsentMaxBytes: 'SYNOD_HTTP_UNSENT_MAX_BYTES',
  httpWriteStallTimeoutMs: 'SYNOD_HTTP_WRITE_STALL_TIMEOUT_MS',
  binaryAuthTimeoutMs: 'SYNOD_BINARY_AUTH_TIMEOUT_MS',
  binaryWriteBufferMaxBytes: 'SYNOD_BINARY_WRITE_BUFFER_MAX_BYTES',
  binaryWriteStallTimeoutMs: 'SYNOD_BINARY_WRITE_STALL_TIMEOUT_MS',
  binaryFrameTimeoutMs: 'SYNOD_BINARY_FRAME_TIMEOUT_MS',
  binaryIdleTimeoutMs: 'SYNOD_BINARY_IDLE_TIMEOUT_MS',
  peerFrameMaxBytes: 'SYNOD_PEER_FRAME_MAX_BYTES',
  peerQueueMaxBytes: 'SYNOD_PEER_QUEUE_MAX_BYTES',
  peerHandshakeTimeoutMs: 'SYNOD_PEER_HANDSHAKE_TIMEOUT_MS',
  peerHandshakingMax: 'SYNOD_PEER_HANDSHAKING_MAX',
  peerConnectionsPerAddressMax: 'SYNOD_PEER_CONNECTIONS_PER_ADDRESS_MAX',
  heapGrowingPercent: 'SYNOD_HEAP_GROWING_PERCENT',
};

export function startCommand(): Command {
  const cmd = new Command('start')
    .description('start one replica of the key-value server (SIGTERM stops it cleanly)')
    .option('--config <file>', 'JSON file of settings (keys: the long flag names); flags and SYNOD_* variables override it')
    .option('--id <id>', `this replica id (1..${MAX_REPLICA_ID})`)
    .option('--cluster-id <name>', 'cluster name: peers and data dirs of another cluster are refused (default "synod")')
    .option('--data <dir>', 'data directory')
    .option('--peer <host:port>', 'listen address for peers (must match this id in --initial-cluster)')
    .option('--advertise-peer <host:port>', 'where peers should dial this replica when not --peer (a proxy, NAT, a 0.0.0.0 listen): named to the replicas it dials, so a joiner can reach a leader added after its --initial-cluster')
    .option('--http <host:port>', 'listen address of the HTTP API')
    .option('--binary <host:port>', 'listen address of the binary client protocol (optional)')
    .option('--initial-cluster <list>', 'every replica by peer address: ID=HOST:PORT,...')
    .option('--tls-ca <file>', 'mutual TLS between replicas: the cluster CA (PEM); with --tls-cert and --tls-key (see synod certs)')
    .option('--tls-cert <file>', "this replica's certificate (PEM, SAN URI synod://replica/<id>)")
    .option('--tls-key <file>', "this replica's private key (PEM)")
    .option('--join', 'join a running cluster: --initial-cluster lists its initial members (not this one); then run `synod member add ID HOST:PORT`')
    .option('--initial-http <list>', 'every replica by HTTP address: ID=HOST:PORT,... (lets followers forward to the leader)')
    .option('--initial-binary <list>', 'every replica by binary address: ID=HOST:PORT,... (lets followers point binary clients at the leader)')
    .option('--snapshot-interval-slots <n>', 'take a snapshot after this many applied slots (default 10000)')
    .option('--snapshot-interval-bytes <n>', `or after this many bytes of applied commands (default ${DEFAULT_SNAPSHOT_INTERVAL_BYTES})`)
    .option('--state-digest-interval-slots <n>', 'hash the replicated state after every slot that is a multiple of this and compare it with the peers\' (an error log line and synod_state_digest_mismatches_total when they differ; same on every replica; default 100000, 0: off)')
    .option('--leader-snapshot-interval-factor <n>', 'while leading, both snapshot intervals are this many times longer: its snapshots pause the cluster (default 4; 1: as followers)')
    .option('--leader-snapshots <adopt|own>', "while leading, own: make its own snapshots; adopt: keep a follower's as its own (RSL's primary copies a secondary's checkpoint), making one only if none comes in 3 s (default own: adopt measured worse with the replicas sharing one machine)")
    .option('--value-max-bytes <n>', 'largest value accepted (same on every replica; default 1048576)')
    .option('--sessions-max <n>', 'most client sessions kept; a registration beyond it evicts the least recently active (same on every replica; default 100000)')
    .option('--session-expiry-ms <ms>', 'a client session idle this long (leader-stamped time) expires (same on every replica; default 3600000)')
    .option('--proposal-queue-commands-max <n>', `commands waiting to be proposed on the leader; beyond, a write is refused (503 / UNAVAILABLE, SYNOD_OVERLOADED: not applied) (default ${DEFAULT_PROPOSAL_QUEUE_COMMANDS_MAX})`)
    .option('--proposal-queue-bytes-max <n>', `the same limit in command bytes (default ${DEFAULT_PROPOSAL_QUEUE_BYTES_MAX})`)
    .addOption(new Option('--follower-mode <mode>', 'what a follower does with writes: forward them, or redirect (307)').choices(['forward', 'redirect']))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .addOption(new Option('--log-backend <backend>', 'log store (memory: tests only, not durable)').choices(['file', 'pmem', 'memory']))
    .option('--election-timeout-ms <ms>', 'lowest election timeout (the highest is twice it); default 300')
    .addOption(new Option('--client-tls <mode>', 'HTTPS and TLS on the client ports with the --tls-* files (default: on when they are given)').choices(['on', 'off']))
    .addOption(new Option('--client-auth <mode>', 'cert: client ports require a client certificate from the --tls-ca CA').choices(['none', 'cert']))
    .option('--client-token-file <file>', 'bearer tokens, one per line: HTTP requests need Authorization: Bearer, binary connections an AUTH frame')
    .option('--connections-per-address-max <n>', `open connections per client address, per client port (default ${CLIENT_LIMITS_DEFAULT.connectionsPerAddressMax})`)
    .option('--connections-max <n>', `open connections on one client port in all; over it a new one is refused like one over the per-address limit (default ${CLIENT_LIMITS_DEFAULT.connectionsMax})`)
    .option('--inflight-per-connection-max <n>', `binary requests served at once per connection; past it reading pauses (default ${CLIENT_LIMITS_DEFAULT.inflightPerConnectionMax})`)
    .option('--http-headers-timeout-ms <ms>', `time to receive HTTP request headers (default ${CLIENT_LIMITS_DEFAULT.httpHeadersTimeoutMs})`)
    .option('--http-body-timeout-ms <ms>', `time to receive an HTTP request body (default ${CLIENT_LIMITS_DEFAULT.httpBodyTimeoutMs})`)
    .option('--http-body-max-bytes <n>', `largest HTTP request body (default ${CLIENT_LIMITS_DEFAULT.httpBodyBytesMax})`)
    .option('--http-pipeline-max <n>', `requests of one HTTP connection served at once or with answers unsent; later pipelined ones wait (default ${CLIENT_LIMITS_DEFAULT.httpPipelineMax})`)
    .option('--http-unsent-max-bytes <n>', `answer bytes of one HTTP connection the client has not taken, past which its next requests wait (default ${CLIENT_LIMITS_DEFAULT.httpUnsentBytesMax})`)
    .option('--http-write-stall-timeout-ms <ms>', `close an HTTP connection whose answers wait without progress this long (default ${CLIENT_LIMITS_DEFAULT.httpWriteStallTimeoutMs})`)
    .option('--peer-frame-max-bytes <n>', `largest frame accepted from or sent to a peer (default ${DEFAULT_TRANSPORT_OPTIONS.frameBytesMax})`)
    .option('--peer-queue-max-bytes <n>', `bytes held for one slow peer; past it sends to it are dropped, consensus resends (default ${DEFAULT_TRANSPORT_OPTIONS.peerQueueBytesMax})`)
    .option('--peer-handshake-timeout-ms <ms>', `time for an inbound peer connection to introduce itself (default ${DEFAULT_TRANSPORT_OPTIONS.handshakeTimeoutMs})`)
    .option('--peer-handshaking-max <n>', `inbound peer-port connections still handshaking at once; the excess is closed (default ${DEFAULT_TRANSPORT_OPTIONS.inboundHandshakingMax})`)
    .option('--peer-connections-per-address-max <n>', `inbound peer-port connections from one address (default ${DEFAULT_TRANSPORT_OPTIONS.inboundPerAddressMax})`)
    .option('--binary-auth-timeout-ms <ms>', `time for a binary client's TLS handshake and AUTH frame (default ${CLIENT_LIMITS_DEFAULT.binaryAuthTimeoutMs})`)
    .option('--binary-write-buffer-max-bytes <n>', `answers a binary client has not read, per connection; past it the server stops reading that connection (default ${CLIENT_LIMITS_DEFAULT.binaryWriteBufferBytesMax})`)
    .option('--binary-write-stall-timeout-ms <ms>', `a binary connection stopped for unread answers is closed when its client takes none of them this long (default ${CLIENT_LIMITS_DEFAULT.binaryWriteStallTimeoutMs})`)
    .option('--binary-frame-timeout-ms <ms>', `time for a binary frame to arrive whole once begun; beyond, the connection is closed (default ${CLIENT_LIMITS_DEFAULT.binaryFrameTimeoutMs})`)
    .option('--binary-idle-timeout-ms <ms>', `a binary connection with nothing in flight and no traffic this long is closed (default ${CLIENT_LIMITS_DEFAULT.binaryIdleTimeoutMs})`)
    .option(
      '--heap-growing-percent <n>',
      `V8 grows the heap this many percent past the live data before a full collection (default ${HEAP_GROWING_PERCENT_DEFAULT}; 0: V8's own policy, up to 4x; node's own --heap-growing-percent wins)`,
    )
    .action(async (flags: Record<string, string | undefined>) => {
      const settings = resolveStartSettings(flags, process.env);
      await runStart(settings);
    });
  return cmd;
}

/** Flags, then SYNOD_* variables, then the config file, then defaults. */
export function resolveStartSettings(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): StartSettings {
  const file = flags.config ?? env.SYNOD_CONFIG;
  const fromFile = file ? readConfigFile(file) : {};
  const get = (name: string): string | undefined => {
    if (flags[name] !== undefined) return flags[name];
    const e = env[ENV[name]!];
    if (e !== undefined && e !== '') return e;
    const f = fromFile[name];
    if (f === undefined || f === null) return undefined;
    if (typeof f === 'object') {
      // Address maps may be given as {"1": "h:p", ...} in the file.
      return Object.entries(f as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',');
    }
    return String(f);
  };
  /** Where a setting came from, for messages: the flag, the variable, or the config file's key. */
  const sourceOf = (name: string, flag: string): string => {
    if (flags[name] !== undefined) return `--${flag}`;
    const e = env[ENV[name]!];
    if (e !== undefined && e !== '') return ENV[name]!;
    return `"${name}" in the config file ${file}`;
  };
  const need = (name: string, flag: string): string => {
    const v = get(name);
    if (v === undefined) throw new UsageError(`missing --${flag} (or ${ENV[name]}, or "${name}" in --config)`);
    return v;
  };
  const id = Number(need('id', 'id'));
  if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new UsageError(`--id must be an integer 1..${MAX_REPLICA_ID}, got ${get('id')}`);
  const initialCluster = parseIdMap(need('initialCluster', 'initial-cluster'), '--initial-cluster');
  const peerText = get('peer');
  const joinText = get('join');
  const join = joinText !== undefined && joinText !== 'false' && joinText !== '0';
  const peer = peerText ? parseHostPort(peerText, '--peer') : initialCluster.get(id);
  const advertiseText = get('advertisePeer');
  const advertisePeer = advertiseText ? parseHostPort(advertiseText, '--advertise-peer') : undefined;
  if (join) {
    if (!peer) throw new UsageError('a joining replica needs --peer HOST:PORT (its own peer address)');
    if (initialCluster.has(id)) throw new UsageError(`replica ${id} is already in --initial-cluster: start it without --join`);
  } else {
    if (!peer) throw new UsageError(`replica ${id} is not in --initial-cluster (${[...initialCluster.keys()].join(',')}): add ${id}=HOST:PORT`);
    const listed = initialCluster.get(id);
    if (!listed) throw new UsageError(`replica ${id} is not in --initial-cluster: add ${id}=${peer.host}:${peer.port}, or use --join`);
    if (listed.port !== peer.port) throw new UsageError(`--peer ${peer.host}:${peer.port} does not match --initial-cluster's ${id}=${listed.host}:${listed.port}`);
  }
  const tlsParts = [get('tlsCa'), get('tlsCert'), get('tlsKey')];
  if (tlsParts.some((v) => v !== undefined) && !tlsParts.every((v) => v !== undefined)) {
    throw new UsageError('TLS needs all three of --tls-ca, --tls-cert and --tls-key (make a development set with `synod certs`)');
  }
  const tls = tlsParts[0] !== undefined ? { caFile: tlsParts[0]!, certFile: tlsParts[1]!, keyFile: tlsParts[2]! } : undefined;
  const http = parseHostPort(need('http', 'http'), '--http');
  const initialHttp = get('initialHttp') ? parseIdMap(get('initialHttp')!, '--initial-http') : new Map<number, PeerAddress>();
  initialHttp.set(id, http);
  const binaryText = get('binary');
  const binary = binaryText ? parseHostPort(binaryText, '--binary') : undefined;
  const initialBinary = get('initialBinary') ? parseIdMap(get('initialBinary')!, '--initial-binary') : undefined;
  if (binary && initialBinary) initialBinary.set(id, binary);
  const valueMax = get('valueMaxBytes');
  const valueMaxBytes = valueMax === undefined ? undefined : Number(valueMax);
  if (valueMaxBytes !== undefined && (!Number.isInteger(valueMaxBytes) || valueMaxBytes < 1)) throw new UsageError(`--value-max-bytes must be a positive integer, got ${valueMax}`);
  const sessionsMax = positiveIntFlag(get('sessionsMax'), '--sessions-max');
  const sessionExpiryMs = positiveIntFlag(get('sessionExpiryMs'), '--session-expiry-ms');
  const proposalQueueCommandsMax = positiveIntFlag(get('proposalQueueCommandsMax'), '--proposal-queue-commands-max');
  const proposalQueueBytesMax = positiveIntFlag(get('proposalQueueBytesMax'), '--proposal-queue-bytes-max');
  const snapshotIntervalSlots = positiveIntFlag(get('snapshotIntervalSlots'), '--snapshot-interval-slots');
  const snapshotIntervalBytes = positiveIntFlag(get('snapshotIntervalBytes'), '--snapshot-interval-bytes');
  const sd = get('stateDigestIntervalSlots');
  const stateDigestIntervalSlots = sd === undefined ? undefined : Number(sd);
  if (stateDigestIntervalSlots !== undefined && !(Number.isSafeInteger(stateDigestIntervalSlots) && stateDigestIntervalSlots >= 0)) {
    throw new UsageError(`--state-digest-interval-slots must be an integer >= 0 (0: off), got ${sd}`);
  }
  const lf = get('leaderSnapshotIntervalFactor');
  const leaderSnapshotIntervalFactor = lf === undefined ? undefined : Number(lf);
  if (leaderSnapshotIntervalFactor !== undefined && !(Number.isFinite(leaderSnapshotIntervalFactor) && leaderSnapshotIntervalFactor >= 1)) {
    throw new UsageError(`--leader-snapshot-interval-factor must be a number >= 1, got ${lf}`);
  }
  const leaderSnapshots = (get('leaderSnapshots') ?? 'own') as StartSettings['leaderSnapshots'];
  if (leaderSnapshots !== 'adopt' && leaderSnapshots !== 'own') throw new UsageError(`--leader-snapshots must be adopt or own, got ${leaderSnapshots}`);
  const followerMode = (get('followerMode') ?? 'forward') as StartSettings['followerMode'];
  if (followerMode !== 'forward' && followerMode !== 'redirect') throw new UsageError(`--follower-mode must be forward or redirect, got ${followerMode}`);
  const logBackend = (get('logBackend') ?? 'file') as StartSettings['logBackend'];
  if (logBackend !== 'file' && logBackend !== 'pmem' && logBackend !== 'memory') throw new UsageError(`--log-backend must be file, pmem or memory, got ${logBackend}`);
  // Checked here: pino refuses an unknown level only once the replica starts, with its own words.
  const logLevel = get('logLevel') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`${sourceOf('logLevel', 'log-level')} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  }
  const et = get('electionTimeoutMs');
  const electionTimeoutMs = et === undefined ? undefined : Number(et);
  if (electionTimeoutMs !== undefined && (!Number.isInteger(electionTimeoutMs) || electionTimeoutMs < 50)) throw new UsageError(`--election-timeout-ms must be an integer >= 50, got ${et}`);
  const clientTlsText = get('clientTls');
  if (clientTlsText !== undefined && clientTlsText !== 'on' && clientTlsText !== 'off') throw new UsageError(`--client-tls must be on or off, got ${clientTlsText}`);
  if (clientTlsText === 'on' && !tls) throw new UsageError('--client-tls on needs --tls-ca, --tls-cert and --tls-key (make a development set with `synod certs`)');
  const clientTls = tls !== undefined && clientTlsText !== 'off';
  const clientAuth = (get('clientAuth') ?? 'none') as StartSettings['clientAuth'];
  if (clientAuth !== 'none' && clientAuth !== 'cert') throw new UsageError(`--client-auth must be none or cert, got ${clientAuth}`);
  if (clientAuth === 'cert' && !clientTls) throw new UsageError('--client-auth cert needs TLS on the client ports: give --tls-ca, --tls-cert and --tls-key');
  const clientLimits: Partial<ClientLimits> = {};
  for (const [name, field, flag] of LIMIT_FLAGS) {
    const text = get(name);
    if (text === undefined) continue;
    clientLimits[field] = Number(text);
    try {
      resolveClientLimits({ [field]: Number(text) });
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message.replace(/^\S+ /, '')}`);
    }
  }
  const peerLimits: PeerLimits = {};
  for (const [name, field, flag] of PEER_LIMIT_FLAGS) {
    const text = get(name);
    if (text === undefined) continue;
    peerLimits[field] = Number(text);
    try {
      transportOptions({ replicaId: 1, clusterId: 'check', [field]: Number(text) });
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message}`);
    }
  }
  try {
    transportOptions({ replicaId: 1, clusterId: 'check', ...peerLimits });
  } catch (e) {
    throw new UsageError(`peer limits: ${(e as Error).message}`);
  }
  const hg = get('heapGrowingPercent');
  const heapGrowingPercent = hg === undefined ? HEAP_GROWING_PERCENT_DEFAULT : Number(hg);
  if (!Number.isInteger(heapGrowingPercent) || heapGrowingPercent < 0 || heapGrowingPercent > 1000) {
    throw new UsageError(`--heap-growing-percent must be an integer 0..1000, got ${hg}`);
  }
  return {
    id,
    clusterId: get('clusterId') ?? 'synod',
    data: need('data', 'data'),
    peer,
    ...(advertisePeer ? { advertisePeer } : {}),
    http,
    binary,
    initialCluster,
    join,
    tls,
    initialHttp,
    initialBinary,
    valueMaxBytes,
    sessionsMax,
    sessionExpiryMs,
    proposalQueueCommandsMax,
    proposalQueueBytesMax,
    followerMode,
    logLevel,
    logBackend,
    electionTimeoutMs,
    snapshotIntervalSlots,
    snapshotIntervalBytes,
    stateDigestIntervalSlots,
    leaderSnapshotIntervalFactor,
    leaderSnapshots,
    clientTls,
    clientAuth,
    clientTokenFile: get('clientTokenFile'),
    clientLimits,
    peerLimits,
    heapGrowingPercent,
  };
}

/**
 * Sets V8's heap growing factor for this process (a process-wide setting, read at every full
 * collection, so setting it now works like the command-line flag). The server sets it for itself;
 * SynodReplica, a library, leaves the embedding process's GC policy alone. A
 * --heap-growing-percent given to node itself (command line or NODE_OPTIONS) is left as it is.
 */
export function applyHeapGrowingPercent(percent: number, execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  if (percent === 0) return false;
  const givenToNode = [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => /^--heap[-_]growing[-_]percent\b/.test(a));
  if (givenToNode) return false;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return true;
}

function positiveIntFlag(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got ${text}`);
  return n;
}

/** The client ports' security from the settings: reads the TLS and token files (errors name the flag). */
export function clientSecurityOf(s: StartSettings): ClientSecurity | undefined {
  const out: ClientSecurity = {};
  if (s.clientTls && s.tls) {
    const files = readTlsFiles(s.tls);
    out.tls = { cert: files.cert, key: files.key, ca: files.ca as Buffer };
    out.clientAuth = s.clientAuth;
  }
  if (s.clientTokenFile !== undefined) {
    try {
      out.tokens = readTokenFile(s.clientTokenFile);
    } catch (e) {
      throw new UsageError(`--client-token-file: ${(e as Error).message}`);
    }
  }
  return out.tls || out.tokens ? out : undefined;
}

export async function runStart(s: StartSettings): Promise<void> {
  const log: Logger = pino({ level: s.logLevel, base: { replica: s.id } });
  const hooks = installTestHooks(process.env, log); // test-only, inert without SYNOD_TEST_HOOKS=1
  applyHeapGrowingPercent(s.heapGrowingPercent);
  let node: KvNode;
  try {
    const clientSecurity = clientSecurityOf(s);
    const members = new Map(s.initialCluster);
    if (!s.join) members.set(s.id, s.peer);
    node = await KvNode.start({
      id: s.id,
      clusterId: s.clusterId,
      dataDir: s.data,
      members,
      join: s.join,
      listen: s.peer,
      advertise: s.advertisePeer,
      tls: s.tls,
      httpAddresses: s.initialHttp,
      binary: s.binary,
      binaryAddresses: s.initialBinary,
      valueBytesMax: s.valueMaxBytes,
      sessionsMax: s.sessionsMax,
      sessionExpiryMs: s.sessionExpiryMs,
      proposalQueueCommandsMax: s.proposalQueueCommandsMax,
      proposalQueueBytesMax: s.proposalQueueBytesMax,
      snapshotIntervalSlots: s.snapshotIntervalSlots,
      snapshotIntervalBytes: s.snapshotIntervalBytes,
      stateDigestIntervalSlots: s.stateDigestIntervalSlots,
      leaderSnapshotIntervalFactor: s.leaderSnapshotIntervalFactor,
      leaderAdoptsSnapshots: s.leaderSnapshots === 'adopt',
      followerMode: s.followerMode,
      logBackend: s.logBackend,
      core: s.electionTimeoutMs || hooks.plantedBug ? { ...(s.electionTimeoutMs ? electionCore(s.electionTimeoutMs) : {}), ...(hooks.plantedBug ? { plantedBug: hooks.plantedBug } : {}) } : undefined,
      logger: log,
      clientSecurity,
      clientLimits: s.clientLimits,
      peerLimits: s.peerLimits,
    });
    const loopback = (h: string) => h === 'localhost' || h === '::1' || h.startsWith('127.');
    if (!clientSecurity?.tls && !loopback(s.http.host)) log.warn({ http: s.http, binary: s.binary ?? null }, 'client ports serve plain HTTP/TCP on a non-loopback address: anyone who reaches them can read and write every key (see docs/security.md: --tls-*, --client-token-file)');
    else if (!clientSecurity?.tokens && s.clientAuth !== 'cert' && !loopback(s.http.host)) log.warn({ http: s.http }, 'client ports require no client authentication on a non-loopback address (see docs/security.md: --client-auth cert, --client-token-file)');
  } catch (e) {
    throw explainStartError(e, s);
  }
  const writePath = node.replica.status().log.writePath;
  log.info({ peer: s.peer, http: s.http, binary: s.binary ?? null, data: s.data, cluster: s.clusterId, members: [...s.initialCluster.keys()], logWritePath: writePath }, 'replica ready');
  if (writePath === 'flush-loop') log.warn({ reason: tryLoadNative().reason }, 'the log writes through the JavaScript flush loop, one write and fdatasync at a time: the native addon is not available (reason above; npm rebuild builds it), expect lower write throughput');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => {
      log.error('clean stop took over 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    node.close().then(
      () => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      },
      (e) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Role changes as log events (one line each).
  let lastRole = '';
  let lastLeader: number | null = null;
  setInterval(() => {
    const st = node.replica.status();
    if (st.role !== lastRole || st.leader !== lastLeader) {
      log.info({ role: st.role, leader: st.leader, ballot: st.ballot, commitIndex: st.commitSlot }, 'role');
      lastRole = st.role;
      lastLeader = st.leader;
    }
  }, 100).unref();
}

/** Core timing scaled from one number: election in [t, 2t], lease t*0.8, heartbeats t/6. */
export function electionCore(t: number) {
  const leaseMs = Math.floor(t * 0.8);
  return {
    electionTimeoutMinMs: t,
    electionTimeoutMaxMs: 2 * t,
    leaseMs,
    heartbeatIntervalMs: Math.max(5, Math.floor(t / 6)),
    clockDriftMs: Math.max(1, Math.floor(leaseMs / 10)),
  };
}

/** Whether `path` is `dir` or inside it. */
function inside(path: string | undefined, dir: string): boolean {
  if (path === undefined) return false;
  const rel = relative(resolve(dir), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** What `synod start` listens on, by flag: the addresses a listen error may be about. */
function listenAddresses(s: StartSettings): Array<{ flag: string; what: string; addr: PeerAddress }> {
  const out = [
    { flag: '--peer', what: 'peer port', addr: s.peer },
    { flag: '--http', what: 'HTTP port', addr: s.http },
  ];
  if (s.binary) out.push({ flag: '--binary', what: 'binary client port', addr: s.binary });
  return out;
}

/**
 * Start-up failures as what to change. Everything `synod start` cannot use as given is a usage
 * error (exit 2), naming the flag: a port in use, an address that is not on this machine or does
 * not resolve, a privileged port, a data directory it cannot use. Other failures stay errors (exit 1).
 */
function explainStartError(e: unknown, s: StartSettings): Error {
  const err = e as NodeJS.ErrnoException & { port?: number; address?: string; hostname?: string; flag?: string };
  const listens = listenAddresses(s);
  /** The listen flag an error names by port (and host, when two flags share a port). */
  const byPort = (port: number | undefined, host?: string) => {
    const same = listens.filter((l) => l.addr.port === port);
    return same.find((l) => l.addr.host === host) ?? same[0];
  };
  // The HTTP and binary servers name their flag on a busy port; the peer transport's error does not.
  if (err.code === 'EADDRINUSE') {
    const port = err.port;
    const host = err.address ?? s.peer.host;
    const l = err.flag !== undefined ? listens.find((x) => x.flag === err.flag) : byPort(port, host);
    const which = l ? `${l.what} ${port} (${l.flag})` : `port ${port ?? '?'}`;
    return new UsageError(`${which} is in use on ${host}: stop whatever holds it or pick another port`);
  }
  if (err.syscall === 'getaddrinfo' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
    const host = err.hostname ?? '?';
    const flags = listens.filter((l) => l.addr.host === host).map((l) => l.flag);
    return new UsageError(`cannot listen on ${host}${flags.length ? ` (${flags.join(', ')})` : ''}: the host name does not resolve (${err.code}): use an address or name of this machine`);
  }
  if (err.code === 'EADDRNOTAVAIL') {
    const l = byPort(err.port, err.address);
    return new UsageError(`cannot listen on ${err.address}${err.port !== undefined ? `:${err.port}` : ''}${l ? ` (${l.flag})` : ''}: that address is not on this machine`);
  }
  if (err.code === 'EACCES' && err.syscall === 'listen') {
    const l = byPort(err.port, err.address);
    return new UsageError(`no permission to listen on port ${err.port}${l ? ` (${l.flag})` : ''}: use a port above 1023`);
  }
  if (err.code === 'EACCES' || err.code === 'EROFS') return new UsageError(`cannot write the data directory ${s.data} (${err.code}): pick a writable --data`);
  // A file where the data directory, or a directory in it, should be (mkdir: EEXIST; a file above
  // it: ENOTDIR). A refusal of what was asked, like the errors above.
  if (inside(err.path, s.data)) {
    const notDir = notADirectory('--data', s.data, err);
    if (notDir !== null) return notDir;
  }
  if (e instanceof DataDirError) return new UsageError(e.message);
  if (e instanceof RangeError) return new UsageError(e.message);
  return e instanceof Error ? e : new Error(String(e));
}
