// Loopback throughput of TcpTransport (not a test: run by hand).
//   npx tsc -p . && node dist/test/transport/bench.js          # real sizes
//   node dist/test/transport/bench.js --small                   # CI-sized, a second or so
// Keeps about 4 MiB in flight, so the bound never drops; reports frames/s and MB/s per frame size.
import { TcpTransport } from '../../src/transport/index.js';

const small = process.argv.includes('--small');
const quiet = () => {};
const a = new TcpTransport({ replicaId: 1, clusterId: 'bench', logger: quiet });
const b = new TcpTransport({ replicaId: 2, clusterId: 'bench', logger: quiet });
await a.start();
await b.start();
let got = 0;
b.onFrame(() => got++);
a.setPeers(new Map([[2, b.address()]]));
a.send(2, new Uint8Array(1));
for (let i = 0; i < 1_000 && got < 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
if (got < 1) throw new Error('no connection');
const inFlightBytesMax = 4 << 20;
for (const size of [100, 1_000, 64 * 1024]) {
  const count = (size >= 65_536 ? 5_000 : 200_000) / (small ? 20 : 1);
  const frame = new Uint8Array(size);
  got = 0;
  let sent = 0;
  const start = performance.now();
  while (got < count) {
    while (sent < count && (sent - got) * size < inFlightBytesMax) {
      a.send(2, frame);
      sent++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const ms = performance.now() - start;
  const stats = a.stats().get(2)!;
  console.log(
    `frame ${size} B: ${count} frames in ${ms.toFixed(0)} ms = ${((count / ms) * 1e3).toFixed(0)} frames/s, ` +
      `${((count * size) / ms / 1e3).toFixed(0)} MB/s, dropped ${stats.droppedFrames}`,
  );
}
await Promise.all([a.close(), b.close()]);
