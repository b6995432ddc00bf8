// Transport options, their defaults and their validation (one place, checked at construction).

import { MAX_REPLICA_ID } from '../core/ballot.js';
import { ConfigError } from '../core/options.js';
import type { ReplicaId } from '../core/types.js';
import { FRAME_BYTES_LIMIT, FRAME_HEADER_BYTES } from './frame.js';
import { CLUSTER_ID_BYTES_MAX, isValidVersionRange } from './handshake.js';
import type { LogLevel, TransportLogger } from './types.js';
import type { SocketFactory } from './socket.js';

export { ConfigError };

export const MIB = 1024 * 1024;

export interface TransportOptions {
  /** This replica. */
  replicaId: ReplicaId;
  /** Peers from another cluster are refused at the handshake. 1..255 utf-8 bytes. */
  clusterId: string;
  /** Largest frame payload accepted inbound and outbound. Default 16 MiB. */
  frameBytesMax: number;
  /** Most bytes queued for one peer (ours + the socket's buffer); beyond, sends to it are dropped. Default 64 MiB. */
  peerQueueBytesMax: number;
  /** Reconnect backoff: the first retry waits about this long, doubling up to the max. Defaults 50 ms, 5 s. */
  reconnectDelayMinMs: number;
  reconnectDelayMaxMs: number;
  /** A dial that has not connected after this long is abandoned (then backoff). Default 3 s. */
  connectTimeoutMs: number;
  /** A connection whose handshake has not completed after this long is closed. Default 3 s. */
  handshakeTimeoutMs: number;
  /**
   * Inbound connections still in their handshake, at most (beyond: closed at once). Bounds what
   * anyone who can reach the peer port makes a replica hold before it knows who they are. Default 64.
   */
  inboundHandshakingMax: number;
  /** Inbound connections from one IP address, at most, handshaking or open. Default 16 (a peer needs 1, plus a replacement while reconnecting). */
  inboundPerAddressMax: number;
  /** TCP keep-alive probe delay, to notice dead peers on idle connections; 0 disables. Default 10 s. */
  keepAliveMs: number;
  /**
   * Protocol versions this replica speaks; the peers agree on the highest common one. Default [1, 2]:
   * 2 adds hello extensions (the incarnation id); a version-1 peer is dialed without them.
   */
  protocolVersionMin: number;
  protocolVersionMax: number;
  /** Where to listen (TCP). Defaults 127.0.0.1 and port 0 (any free port; see address()). */
  listenHost: string;
  listenPort: number;
  /** Source of jitter for the backoff, in [0, 1). Default Math.random; tests inject a seeded one. */
  random: () => number;
  /** Logger hook. Default: warn and error to console.error, debug and info dropped. */
  logger: TransportLogger;
  /** How sockets and the listener are made (plain TCP by default; TLS slots in here later). */
  socketFactory?: SocketFactory;
}

export type TransportOptionsInput = Partial<TransportOptions> & Pick<TransportOptions, 'replicaId' | 'clusterId'>;

const consoleLogger: TransportLogger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
  if (level === 'warn' || level === 'error') console.error(`[synod transport] ${level}: ${msg}`, fields ?? '');
};

export const DEFAULT_TRANSPORT_OPTIONS: Omit<TransportOptions, 'replicaId' | 'clusterId'> = {
  frameBytesMax: 16 * MIB,
  peerQueueBytesMax: 64 * MIB,
  reconnectDelayMinMs: 50,
  reconnectDelayMaxMs: 5_000,
  connectTimeoutMs: 3_000,
  handshakeTimeoutMs: 3_000,
  inboundHandshakingMax: 64,
  inboundPerAddressMax: 16,
  keepAliveMs: 10_000,
  protocolVersionMin: 1,
  protocolVersionMax: 2,
  listenHost: '127.0.0.1',
  listenPort: 0,
  random: Math.random,
  logger: consoleLogger,
};

/** Fills in defaults and checks every option; throws ConfigError naming the first problem. */
export function transportOptions(input: TransportOptionsInput): TransportOptions {
  const options: TransportOptions = { ...DEFAULT_TRANSPORT_OPTIONS, replicaId: input.replicaId, clusterId: input.clusterId };
  // Copy only defined values, so that { frameBytesMax: undefined } keeps the default.
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  }
  return validateTransportOptions(options);
}

export function validateTransportOptions(options: TransportOptions): TransportOptions {
  const integerIn = (name: keyof TransportOptions, value: number, low: number, high: number) => {
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new ConfigError(`${name} must be an integer in ${low}..${high}, got ${value}`);
    }
  };
  integerIn('replicaId', options.replicaId, 1, MAX_REPLICA_ID);
  const clusterBytes = new TextEncoder().encode(options.clusterId ?? '').length;
  if (typeof options.clusterId !== 'string' || clusterBytes < 1 || clusterBytes > CLUSTER_ID_BYTES_MAX) {
    throw new ConfigError(`clusterId must be a string of 1..${CLUSTER_ID_BYTES_MAX} utf-8 bytes`);
  }
  integerIn('frameBytesMax', options.frameBytesMax, 1, Math.min(FRAME_BYTES_LIMIT, 2 ** 31 - 1 - FRAME_HEADER_BYTES));
  integerIn('peerQueueBytesMax', options.peerQueueBytesMax, 1, Number.MAX_SAFE_INTEGER);
  if (options.peerQueueBytesMax < options.frameBytesMax + FRAME_HEADER_BYTES) {
    // Otherwise a frame of the allowed size could never be queued.
    throw new ConfigError('peerQueueBytesMax must be >= frameBytesMax + 4 (one largest frame and its header)');
  }
  integerIn('reconnectDelayMinMs', options.reconnectDelayMinMs, 1, 2 ** 31 - 1);
  integerIn('reconnectDelayMaxMs', options.reconnectDelayMaxMs, options.reconnectDelayMinMs, 2 ** 31 - 1);
  integerIn('connectTimeoutMs', options.connectTimeoutMs, 1, 2 ** 31 - 1);
  integerIn('handshakeTimeoutMs', options.handshakeTimeoutMs, 1, 2 ** 31 - 1);
  integerIn('inboundHandshakingMax', options.inboundHandshakingMax, 1, 1_000_000);
  integerIn('inboundPerAddressMax', options.inboundPerAddressMax, 1, 1_000_000);
  integerIn('keepAliveMs', options.keepAliveMs, 0, 2 ** 31 - 1);
  if (!isValidVersionRange(options.protocolVersionMin, options.protocolVersionMax)) {
    throw new ConfigError(
      `protocol version range must satisfy 1 <= min <= max <= 65535, got [${options.protocolVersionMin}, ${options.protocolVersionMax}]`,
    );
  }
  if (typeof options.listenHost !== 'string' || options.listenHost.length === 0) throw new ConfigError('listenHost must be a host name or address');
  integerIn('listenPort', options.listenPort, 0, 65535);
  if (typeof options.random !== 'function') throw new ConfigError('random must be a function returning [0, 1)');
  if (typeof options.logger !== 'function') throw new ConfigError('logger must be a function (level, msg, fields)');
  return options;
}

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): exponential, capped, with
 * "equal jitter" — half the step is fixed, half random — so that replicas that lost a peer at
 * the same moment do not redial in lockstep, yet no retry comes sooner than half its step.
 */
export function reconnectDelayMs(attempt: number, options: Pick<TransportOptions, 'reconnectDelayMinMs' | 'reconnectDelayMaxMs' | 'random'>): number {
  const step = Math.min(options.reconnectDelayMaxMs, options.reconnectDelayMinMs * 2 ** Math.min(attempt, 30));
  const r = options.random();
  const jitter = r >= 0 && r < 1 ? r : 0.5; // a faulty random source must not produce NaN timers
  return Math.max(1, Math.round(step / 2 + (jitter * step) / 2));
}
