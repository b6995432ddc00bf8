// The replicated endpoint book (replicas' client addresses: internal-commands.ts `endpoints`,
// snapshot-body.ts `endpoints`): what the log and snapshots carry decodes back, malformed entries
// are refused (ignored as a command, refused as a snapshot), and a book-less snapshot is written
// byte for byte as before (state digests hash that head; older snapshots must still load).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionTable } from '../../src/core/sessions.js';
import { decodeInternal, encodeEndpointsCommand, encodeInternal, ENDPOINTS_PER_REPLICA_MAX } from '../../src/runtime/internal-commands.js';
import { decodeSnapshotBody, encodeSnapshotBody } from '../../src/runtime/snapshot-body.js';

test('an endpoints command decodes to what was encoded, sorted by name', () => {
  const cmd = decodeInternal(encodeEndpointsCommand(4, [['http', { host: '10.0.0.4', port: 8004 }], ['binary', { host: 'db-4.example', port: 9004 }]]));
  assert.deepEqual(cmd, { op: 'endpoints', id: 4, endpoints: [['binary', { host: 'db-4.example', port: 9004 }], ['http', { host: '10.0.0.4', port: 8004 }]] });
  assert.deepEqual(decodeInternal(encodeEndpointsCommand(4, [])), { op: 'endpoints', id: 4, endpoints: [] });
});

test('a malformed endpoints command is unknown (ignored everywhere alike)', () => {
  const many = Object.fromEntries(Array.from({ length: ENDPOINTS_PER_REPLICA_MAX + 1 }, (_, i) => [`e${i}`, ['h', 1]]));
  for (const body of [
    { op: 'endpoints', id: 4, endpoints: { http: ['h', 0] } },
    { op: 'endpoints', id: 4, endpoints: { http: ['h', 65536] } },
    { op: 'endpoints', id: 4, endpoints: { http: ['', 80] } },
    { op: 'endpoints', id: 4, endpoints: { HTTP: ['h', 80] } },
    { op: 'endpoints', id: 4, endpoints: { http: 'h:80' } },
    { op: 'endpoints', id: 4, endpoints: [['http', 'h', 80]] },
    { op: 'endpoints', id: 0, endpoints: { http: ['h', 80] } },
    { op: 'endpoints', id: 4, endpoints: many },
    { op: 'endpoints', id: 4 },
  ]) {
    assert.deepEqual(decodeInternal(encodeInternal(body)), { op: 'unknown' }, JSON.stringify(body));
  }
});

test('a snapshot body carries the endpoint book; without one it is written as before and decodes to an empty book', () => {
  const base = { slot: 9, configs: [], addresses: [[1, '127.0.0.1', 7001]] as Array<[number, string, number]>, incarnations: [], sessions: new SessionTable<Uint8Array>(), app: new Uint8Array([1, 2, 3]) };
  const endpoints: Array<[number, string, string, number]> = [
    [4, 'http', '127.0.0.1', 8004],
    [4, 'binary', '127.0.0.1', 9004],
  ];
  assert.deepEqual(decodeSnapshotBody(encodeSnapshotBody({ ...base, endpoints })).endpoints, endpoints);
  const without = encodeSnapshotBody(base);
  assert.deepEqual(without, encodeSnapshotBody({ ...base, endpoints: [] }), 'an empty book adds nothing to the head');
  assert.ok(!Buffer.from(without).toString('latin1').includes('endpoints'));
  assert.deepEqual(decodeSnapshotBody(without).endpoints, []);
  assert.throws(() => decodeSnapshotBody(encodeSnapshotBody({ ...base, endpoints: [[4, 'http', '127.0.0.1', 0]] })), /malformed header/);
  assert.throws(() => decodeSnapshotBody(encodeSnapshotBody({ ...base, endpoints: [[0, 'http', '127.0.0.1', 80]] })), /malformed header/);
});
