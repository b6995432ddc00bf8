import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IdList } from '../../src/kv/id-list.js';

type Op = { kind: 'push'; e: number } | { kind: 'drop'; k: number } | { kind: 'clear' } | { kind: 'copy' };

test('property: IdList behaves as an array of ids through growth, drops of a prefix, clears and copies (a copy does not change with the list)', () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 20, arbitrary: fc.record({ kind: fc.constant('push' as const), e: fc.integer({ min: 0, max: 2 ** 31 - 1 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop' as const), k: fc.nat(40) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'copy' as const }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400, size: 'medium' }), (ops) => {
      const list = new IdList();
      let model: number[] = [];
      const copies: [IdList, number[]][] = [];
      for (const o of ops) {
        if (o.kind === 'push') {
          list.push(o.e);
          model.push(o.e);
        } else if (o.kind === 'drop') {
          const k = Math.min(o.k, model.length);
          list.dropFirst(k);
          model = model.slice(k);
        } else if (o.kind === 'clear') {
          list.clear();
          model = [];
        } else copies.push([list.copy(), model.slice()]);
        assert.equal(list.length, model.length);
      }
      assert.deepEqual([...list.view()], model);
      for (const [c, m] of copies) assert.deepEqual([...c.view()], m);
      assert.deepEqual([...IdList.of(new Int32Array(model)).view()], model);
    }),
    { numRuns: 300 },
  );
});
