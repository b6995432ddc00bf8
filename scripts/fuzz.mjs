#!/usr/bin/env node
// Long fuzz pass: the properties of test/security (fuzz-properties.ts, fuzz-http.ts, fuzz-binary.ts)
// with many more runs. Build first (npm run fuzz does). Usage:
//   node scripts/fuzz.mjs [--scale N] [--http-runs N] [--binary-runs N] [--seed S] [filter]
// --scale multiplies each decoder property's short-pass numRuns (default 200: about 60k-100k
// inputs per decoder); prints runs, time and the seed per property; exits 1 on a failure, with
// fast-check's counterexample and the seed/path to replay it.
import fc from 'fast-check';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const [value] = args.splice(i, 2).slice(1);
  return value;
};
const scale = Number(option('--scale', '200'));
const httpRuns = Number(option('--http-runs', '3000'));
const binaryRuns = Number(option('--binary-runs', '1000'));
const seed = Number(option('--seed', String(Date.now() % 2 ** 31)));
const filter = args[0] ?? '';

const { decoderTargets, snapshotUnclearErrors } = await import('../dist/test/security/fuzz-properties.js');
const { httpFuzzTarget } = await import('../dist/test/security/fuzz-http.js');
const { binaryFuzzTarget } = await import('../dist/test/security/fuzz-binary.js');

let failed = false;
const report = [];
for (const target of decoderTargets) {
  if (!target.name.includes(filter)) continue;
  const numRuns = target.runs * scale;
  const started = Date.now();
  try {
    fc.assert(target.property(), { numRuns, seed });
    report.push({ property: target.name, runs: numRuns, seconds: (Date.now() - started) / 1000, result: 'ok' });
  } catch (err) {
    failed = true;
    report.push({ property: target.name, runs: numRuns, seconds: (Date.now() - started) / 1000, result: 'FAILED' });
    console.error(String(err));
  }
}
if ('http'.includes(filter) || 'HTTP API'.includes(filter) || filter === '') {
  const http = await httpFuzzTarget();
  const started = Date.now();
  try {
    await fc.assert(http.property(), { numRuns: httpRuns, seed });
    await http.stillServing();
    report.push({ property: 'http: raw requests to an in-process KV node', runs: httpRuns, seconds: (Date.now() - started) / 1000, result: 'ok' });
  } catch (err) {
    failed = true;
    report.push({ property: 'http: raw requests to an in-process KV node', runs: httpRuns, seconds: (Date.now() - started) / 1000, result: 'FAILED' });
    console.error(String(err));
  } finally {
    console.log(`http statuses: ${JSON.stringify(Object.fromEntries([...http.statuses].sort((a, b) => a[0] - b[0])))}`);
    await http.close();
  }
}
for (const tokens of [true, false]) {
  const name = `binary: first bytes of a connection, ${tokens ? 'with' : 'without'} tokens`;
  if (!('binary'.includes(filter) || name.includes(filter) || filter === '')) continue;
  const bin = await binaryFuzzTarget(tokens);
  const started = Date.now();
  try {
    await fc.assert(bin.property(), { numRuns: binaryRuns, seed });
    await bin.stillServing();
    report.push({ property: name, runs: binaryRuns, seconds: (Date.now() - started) / 1000, result: 'ok' });
  } catch (err) {
    failed = true;
    report.push({ property: name, runs: binaryRuns, seconds: (Date.now() - started) / 1000, result: 'FAILED' });
    console.error(String(err));
  } finally {
    await bin.close();
  }
}
console.log(`seed ${seed}, scale ${scale}`);
console.table(report);
if (snapshotUnclearErrors.size > 0) {
  console.log('decodeSnapshotBody errors without a "snapshot body" message (known, see docs/security.md):');
  for (const [key, count] of snapshotUnclearErrors) console.log(`  ${count}\t${key}`);
}
process.exit(failed ? 1 : 0);
