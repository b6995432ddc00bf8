import { MemoryNetwork, type MemoryTransport } from '../../src/transport/index.js';
import { transportCompliance, type Harness } from './compliance.js';

transportCompliance('memory', (): Harness => {
  const network = new MemoryNetwork();
  const made: MemoryTransport[] = [];
  return {
    async start(id, limits) {
      const transport = network.createTransport({ replicaId: id, ...limits });
      made.push(transport);
      await transport.start();
      return transport;
    },
    address(id) {
      return { host: 'memory', port: id };
    },
    async dispose() {
      await Promise.all(made.map((t) => t.close()));
    },
  };
});
