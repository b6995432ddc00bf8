import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Socket } from 'node:net';
import { encodeResponse } from '../../src/kv/protocol.js';
import { WriteBatcher } from '../../src/kv/write-batcher.js';

/** A socket that records what is written to it. */
function fakeSocket(): { socket: Socket; written: Buffer[] } {
  const written: Buffer[] = [];
  const socket = { destroyed: false, write: (b: Uint8Array) => written.push(Buffer.from(b)) } as unknown as Socket;
  return { socket, written };
}

test('property: a tick of answers and ready frames is written as one buffer, byte for byte what encodeResponse and the frames give', async () => {
  const item = fc.oneof(
    fc.record({ kind: fc.constant('response' as const), status: fc.integer({ min: 0, max: 255 }), id: fc.integer({ min: 0, max: 0xffffffff }), body: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ kind: fc.constant('frame' as const), body: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 30 }), async (items) => {
      const { socket, written } = fakeSocket();
      const out = new WriteBatcher(socket);
      const expected: Uint8Array[] = [];
      for (const it of items) {
        if (it.kind === 'response') {
          out.writeResponse(it.status, it.id, it.body);
          expected.push(encodeResponse(it.status, it.id, it.body));
        } else {
          out.write(it.body);
          expected.push(it.body);
        }
      }
      assert.equal(written.length, 0); // nothing before the tick ends
      await new Promise((r) => process.nextTick(r));
      assert.equal(written.length, 1);
      assert.deepEqual(written[0], Buffer.concat(expected));
    }),
    { numRuns: 200 },
  );
});
