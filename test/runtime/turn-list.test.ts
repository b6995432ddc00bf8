// The runtime's per-turn lists (src/runtime/turn-list.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnList } from '../../src/runtime/turn-list.js';

test('TurnList: a copy is exactly the list; cleared, it keeps its array but nothing in it, except after a burst', () => {
  const list = new TurnList<{ n: number }>();
  for (let n = 0; n < 5; n++) list.push({ n });
  const array = list.items;
  assert.deepEqual(list.copy(), [0, 1, 2, 3, 4].map((n) => ({ n })));
  assert.notEqual(list.copy(), array);
  list.clear();
  assert.equal(list.count, 0);
  assert.equal(list.items, array, 'the array is kept for the next turn');
  assert.ok(array.every((x) => x === null), 'and holds nothing');
  list.push({ n: 9 });
  assert.deepEqual(list.copy(), [{ n: 9 }]);
  list.clear();
  for (let n = 0; n < 20_000; n++) list.push({ n });
  const burst = list.items;
  list.clear();
  assert.notEqual(list.items, burst, 'a burst\'s array is not kept');
  assert.equal(list.items.length, 0);
});
