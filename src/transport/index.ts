// The peer transport: frames between replica ids. See docs/transport.md.
export {
  TransportError,
  type FrameHandler,
  type LogLevel,
  type PeerAddress,
  type PeerStats,
  type PeerTransport,
  type ReplicaId,
  type TransportErrorCode,
  type TransportEvent,
  type TransportEventHandler,
  type TransportLogger,
} from './types.js';
export { TcpTransport } from './tcp.js';
export { MemoryNetwork, MemoryTransport, type DropFilter, type MemoryTransportOptions } from './memory.js';
export {
  ConfigError,
  DEFAULT_TRANSPORT_OPTIONS,
  reconnectDelayMs,
  transportOptions,
  validateTransportOptions,
  type TransportOptions,
  type TransportOptionsInput,
} from './options.js';
export { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame, writeFrameHeader } from './frame.js';
export {
  HANDSHAKE_MAGIC,
  HandshakeReader,
  encodeHello,
  encodeRefuse,
  encodeWelcome,
  negotiateVersion,
  parseHandshake,
  type HandshakeMessage,
  type Hello,
  type Refuse,
  type RefuseCode,
  type Welcome,
} from './handshake.js';
export { plainTcpSocketFactory, type SocketFactory } from './socket.js';
