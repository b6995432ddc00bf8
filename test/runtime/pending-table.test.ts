// The runtime's table of proposals waiting for their result (src/runtime/pending.ts): entries by
// (clientId, seq), deadlines, and a client's SeqMap kept across bursts until a sweep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PendingEntry, PendingTable } from '../../src/runtime/pending.js';

const noop = () => {};

test('property: PendingTable agrees with a Map of (clientId, seq) across adds, settles and sweeps; a sweep drops only clients with nothing pending', () => {
  const op = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('add' as const), client: fc.integer({ min: 1, max: 4 }), seq: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 1500 }) }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const table = new PendingTable();
      const model = new Map<string, PendingEntry>();
      let nowMs = 0;
      let sweptAt = -Infinity;
      const clientsWithMap = new Set<number>();
      for (const o of ops) {
        if (o.kind === 'add') {
          if (table.get(o.client, o.seq) !== undefined) continue; // the runtime joins a retry instead
          const e = new PendingEntry(table, o.client, o.seq, 100_000, 0, null, noop, null);
          table.add(e);
          table.date([e], 1, nowMs);
          model.set(`${o.client}:${o.seq}`, e);
          clientsWithMap.add(o.client);
        } else if (o.kind === 'settle') {
          if (model.size === 0) continue;
          const [k, e] = [...model][o.pick % model.size]!;
          e.resolve(new Uint8Array(0));
          model.delete(k);
        } else {
          nowMs += o.ms;
          assert.deepEqual(table.expired(nowMs), []);
          if (nowMs - sweptAt >= 1000) {
            sweptAt = nowMs;
            for (const c of [...clientsWithMap]) if (![...model.values()].some((e) => e.clientId === c)) clientsWithMap.delete(c);
          }
        }
        assert.equal(table.size, model.size);
        assert.equal(table.clients, clientsWithMap.size, 'clients keep their map until a sweep');
        for (const [k, e] of model) {
          const [c, s] = k.split(':').map(Number);
          assert.equal(table.get(c!, s!), e);
        }
        assert.deepEqual(new Set(table.values()), new Set(model.values()));
      }
    }),
    { numRuns: 300 },
  );
});

test('an entry past its deadline is expired once; a client emptied by settles is swept at the next sweep', () => {
  const table = new PendingTable();
  const a = new PendingEntry(table, 7, 1, 50, 0, null, noop, null);
  const b = new PendingEntry(table, 7, 2, 5_000, 0, null, noop, null);
  table.add(a);
  table.add(b);
  table.date([a, b], 2, 0);
  assert.equal(table.clients, 1);
  assert.deepEqual(table.expired(10), []);
  assert.deepEqual(table.expired(60), [a]);
  a.reject(new Error('timeout'));
  b.resolve(new Uint8Array(0));
  assert.equal(table.size, 0);
  assert.equal(table.clients, 1, 'kept: the next burst of client 7 reuses its map');
  const c = new PendingEntry(table, 7, 3, 5_000, 0, null, noop, null);
  table.add(c);
  assert.equal(table.get(7, 3), c);
  c.resolve(new Uint8Array(0));
  assert.deepEqual(table.expired(500), []); // within a second of the last sweep (at 10)
  assert.equal(table.clients, 1);
  assert.deepEqual(table.expired(1010), []);
  assert.equal(table.clients, 0, 'swept');
});
