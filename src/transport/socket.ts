// How the TCP transport makes its sockets. The transport only needs a byte stream that is a
// net.Socket (tls.TLSSocket is one) and a listener that is a net.Server (tls.Server is one), so a
// TLS variant is a second factory: tls.connect(...) calling onReady on 'secureConnect', and
// tls.createServer(...) calling onSocket on 'secureConnection' (tls.ts).

import * as net from 'node:net';
import type { PeerAddress } from './types.js';

export interface SocketFactory {
  /**
   * Starts a connection to `address`. Calls `onReady` once the stream can carry handshake bytes
   * (plain TCP: 'connect'; TLS: 'secureConnect'). Errors arrive as the socket's 'error' event.
   */
  connect(address: PeerAddress, onReady: () => void): net.Socket;
  /** Makes a (not yet listening) server that calls `onSocket` for each accepted, ready stream. */
  createServer(onSocket: (socket: net.Socket) => void): net.Server;
  /**
   * True when the server's 'connection' event sees raw TCP sockets that `onSocket` gets only after
   * a handshake of the factory's own (TLS): the transport then applies its accept limits there too.
   */
  readonly wrapsConnections?: boolean;
}

export const plainTcpSocketFactory: SocketFactory = {
  connect(address, onReady) {
    const socket = net.connect({ host: address.host, port: address.port });
    socket.once('connect', onReady);
    return socket;
  },
  createServer(onSocket) {
    return net.createServer({ noDelay: true }, onSocket);
  },
};
