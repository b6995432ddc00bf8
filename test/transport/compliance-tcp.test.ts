import { TcpTransport, type PeerAddress, type ReplicaId } from '../../src/transport/index.js';
import { transportCompliance, type Harness } from './compliance.js';
import { collectingLogger, seededRandom } from './helpers.js';

transportCompliance('tcp', (): Harness => {
  const addresses = new Map<ReplicaId, PeerAddress>();
  const made: TcpTransport[] = [];
  return {
    async start(id, limits) {
      const transport = new TcpTransport({
        replicaId: id,
        clusterId: 'compliance',
        listenHost: '127.0.0.1',
        listenPort: addresses.get(id)?.port ?? 0, // a restart listens where the peers expect it
        frameBytesMax: limits.frameBytesMax,
        peerQueueBytesMax: limits.peerQueueBytesMax,
        reconnectDelayMinMs: 10,
        reconnectDelayMaxMs: 100,
        random: seededRandom(id),
        logger: collectingLogger().logger,
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
