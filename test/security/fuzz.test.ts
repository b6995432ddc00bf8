// Short fuzz pass (part of `npm test`, well under 30 s): every decoder in fuzz-properties.ts plus
// the HTTP API of an in-process KV cluster. The long pass is `npm run fuzz` (scripts/fuzz.mjs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decoderTargets, snapshotUnclearErrors } from './fuzz-properties.js';
import { httpFuzzTarget, type HttpFuzz } from './fuzz-http.js';
import { binaryFuzzTarget, type BinaryFuzz } from './fuzz-binary.js';

// A fixed seed per run of the suite would hide nothing new; a random one finds more over time.
// fast-check prints the seed and the shrunk counterexample of any failure, so it can be replayed.
describe('decoder fuzzing (short pass)', () => {
  for (const target of decoderTargets) {
    test(target.name, { timeout: 20_000 }, () => {
      fc.assert(target.property(), { numRuns: target.runs });
    });
  }

  test('decodeSnapshotBody: every error is its own "snapshot body: ..." message', () => {
    assert.deepEqual([...snapshotUnclearErrors.keys()], []);
  });
});

describe('HTTP API fuzzing (short pass)', () => {
  let http: HttpFuzz;
  before(async () => {
    http = await httpFuzzTarget();
  });
  after(async () => {
    await http?.close();
  });
  test('random paths, methods, headers, bodies and percent-encodings get well-formed answers; the server keeps serving', { timeout: 25_000 }, async () => {
    await fc.assert(http.property(), { numRuns: 150 });
    await http.stillServing();
  });
});

for (const tokens of [true, false]) {
  describe(`binary port fuzzing, first bytes of a connection, ${tokens ? 'with' : 'without'} tokens (short pass)`, () => {
    let bin: BinaryFuzz;
    before(async () => {
      bin = await binaryFuzzTarget(tokens);
    });
    after(async () => {
      await bin?.close();
    });
    test('random and protocol-shaped first bytes, split at random: well-formed answers or silence, never a crash; the port keeps serving', { timeout: 25_000 }, async () => {
      await fc.assert(bin.property(), { numRuns: 60 });
      await bin.stillServing();
    });
  });
}
