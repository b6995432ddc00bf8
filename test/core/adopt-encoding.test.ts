// Replica.adoptEncoding: the runtime hands the leader back a slot it proposed, in flight, as the
// same value in another representation (its encoding: codec/values.ts, encodedBatchOf). The slot
// is then held and committed as that; a different value is a contract violation; a slot no longer
// in flight, or another ballot, is left as it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeValue, DecodedBatch, encodedBatchOf, encodeEntry, encodeValue } from '../../src/codec/values.js';
import { ContractViolation, setContracts } from '../../src/core/contracts.js';
import { sameValue } from '../../src/core/values.js';
import { batch, Cluster, cmd } from './harness.js';

setContracts(true);

test('adoptEncoding: the slot is held and committed by its encoding; a different value is refused; a slot no longer in flight is left alone', () => {
  const c = new Cluster();
  c.elect(1);
  const out = c.step(1, (r, now) => r.propose([cmd(7, 1), cmd(7, 2), cmd(7, 3), cmd(7, 4)], now));
  const e = out.persist.flatMap((op) => op.entries).find((x) => x.value.kind === 'batch' && x.value.commands.length === 4)!;
  assert.ok(e, 'the four commands were proposed in one slot');
  encodeEntry(e); // as the runtime's log record does: the encoding is cached
  const encoded = encodedBatchOf(e.value);
  assert.ok(encoded instanceof DecodedBatch);
  const leader = c.node(1).replica;
  const other = decodeValue(encodeValue(batch(cmd(7, 1), cmd(7, 2), cmd(7, 3), cmd(7, 5))));

  assert.throws(() => leader.adoptEncoding(e.slot, e.ballot, other), ContractViolation, 'a different value');
  leader.adoptEncoding(e.slot, e.ballot + 1, other); // another ballot: not this slot's proposal, ignored
  leader.adoptEncoding(e.slot + 1, e.ballot, other); // nothing in flight there, ignored
  leader.adoptEncoding(e.slot, e.ballot, encoded);

  c.stabilize();
  const committed = c.committed.get(1)!.find((x) => x.slot === e.slot)!;
  assert.equal(committed.value, encoded, 'the leader commits the slot as it holds it now');
  for (const id of [2, 3]) {
    const theirs = c.committed.get(id)!.find((x) => x.slot === e.slot);
    if (theirs) assert.ok(sameValue(theirs.value, encoded), `replica ${id} committed the same value`);
  }
  leader.adoptEncoding(e.slot, e.ballot, other); // chosen, no longer in flight: ignored, no contract check
});
