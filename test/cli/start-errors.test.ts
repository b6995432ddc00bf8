// `synod start` (and `synod certs`) refuse what they cannot use with exit 2 and a message naming
// the flag, as they do for the other data-directory and port errors.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { join } from 'node:path';
import { freePorts } from '../../src/cli/cluster-procs.js';
import { UsageError } from '../../src/cli/config.js';
import { LOG_LEVELS, resolveStartSettings } from '../../src/cli/start.js';
import { synod } from './helpers.js';

let dir: string;
let aFile: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'synod-start-errors-'));
  aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'x');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** `synod start` of a one-replica cluster on ports the system picks, with `extra` flags. */
const start = (extra: string[], env?: Record<string, string>) => synod(['start', '--id', '1', '--initial-cluster', '1=127.0.0.1:0', '--http', '127.0.0.1:0', ...extra], { env, timeoutMs: 20_000 });

// Before: "error: EEXIST: file already exists, mkdir '...'" (or ENOTDIR), exit 1.
test('--data naming a file, or a path under a file: exit 2, "--data ... is not a directory"', { timeout: 60_000 }, async () => {
  for (const data of [aFile, join(aFile, 'sub')]) {
    const r = await start(['--data', data, '--log-level', 'warn']);
    assert.equal(r.code, 2, JSON.stringify(r));
    assert.match(r.stderr, new RegExp(`^error: --data ${data.replace(/[.\\/]/g, '\\$&')} is not a directory \\(.*(EEXIST|ENOTDIR)\\)`));
  }
});

test('synod certs --dir naming a file, or a path under a file: exit 2, "--dir ... is not a directory"', { timeout: 60_000, skip: spawnSync('openssl', ['version']).status !== 0 ? 'no openssl' : false }, async () => {
  for (const d of [aFile, join(aFile, 'sub')]) {
    const r = await synod(['certs', '--dir', d, '--replicas', '1']);
    assert.equal(r.code, 2, JSON.stringify(r));
    assert.match(r.stderr, /^error: --dir .* is not a directory \(.*(EEXIST|ENOTDIR)\)/);
  }
});

// Before: pino's "default level:verbose must be included in custom levels", exit 1, once the
// replica started; --log-level itself was checked by commander, the variable and the file were not.
test('a log level from SYNOD_LOG_LEVEL or --config outside --log-level\'s choices: exit 2 naming the variable or key', { timeout: 60_000 }, async () => {
  const data = join(dir, 'log-level-data');
  const env = await start(['--data', data], { SYNOD_LOG_LEVEL: 'verbose' });
  assert.equal(env.code, 2, JSON.stringify(env));
  assert.match(env.stderr, /^error: SYNOD_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "verbose"/);
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ id: 1, data, http: '127.0.0.1:0', initialCluster: { 1: '127.0.0.1:0' }, logLevel: 'bogus' }));
  const file = await synod(['start', '--config', config]);
  assert.equal(file.code, 2, JSON.stringify(file));
  assert.match(file.stderr, /^error: "logLevel" in the config file .*config\.json must be one of .*, got "bogus"/);
  assert.equal(existsSync(data), false, 'refused before anything was made');
  const base = { id: '1', initialCluster: '1=127.0.0.1:7001', http: '127.0.0.1:8001', data: '/tmp/unused' };
  assert.equal(resolveStartSettings(base, {}).logLevel, 'info');
  assert.equal(resolveStartSettings(base, { SYNOD_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  assert.equal(resolveStartSettings({ ...base, logLevel: 'error' }, { SYNOD_LOG_LEVEL: 'verbose' }).logLevel, 'error', 'the flag wins over the variable');
  for (const level of LOG_LEVELS) assert.equal(resolveStartSettings(base, { SYNOD_LOG_LEVEL: level }).logLevel, level);
  assert.throws(() => resolveStartSettings(base, { SYNOD_LOG_LEVEL: 'INFO' }), (e: unknown) => e instanceof UsageError && /^SYNOD_LOG_LEVEL must be one of/.test(e.message));
});

// Before: a busy HTTP or binary port exited 1 (while a busy peer port exited 2), and a host name
// that does not resolve printed "getaddrinfo ENOTFOUND nonexistent.invalid", exit 1, naming no flag.
test('ports and addresses it cannot listen on: exit 2 naming the flag, whichever port it is', { timeout: 120_000 }, async () => {
  const blockers: net.Server[] = [];
  const busyPort = async () => {
    const b = net.createServer();
    await new Promise<void>((r) => b.listen(0, '127.0.0.1', r));
    blockers.push(b);
    return (b.address() as net.AddressInfo).port;
  };
  try {
    const [peer, http, binary] = await freePorts(3);
    const busy = await busyPort();
    const args = (o: { peer?: string; http?: string; binary?: string }, n: number) => [
      'start', '--id', '1', '--log-level', 'warn', '--data', join(dir, `ports-${n}`),
      '--initial-cluster', `1=${o.peer ?? `127.0.0.1:${peer}`}`, '--http', o.http ?? `127.0.0.1:${http}`,
      ...(o.binary ? ['--binary', o.binary] : []),
    ];
    const cases: Array<[{ peer?: string; http?: string; binary?: string }, RegExp]> = [
      [{ peer: `127.0.0.1:${busy}` }, new RegExp(`^error: peer port ${busy} \\(--peer\\) is in use on 127\\.0\\.0\\.1: stop whatever holds it or pick another port`)],
      [{ http: `127.0.0.1:${busy}` }, new RegExp(`^error: HTTP port ${busy} \\(--http\\) is in use on 127\\.0\\.0\\.1: stop whatever holds it or pick another port`)],
      [{ binary: `127.0.0.1:${busy}` }, new RegExp(`^error: binary client port ${busy} \\(--binary\\) is in use on 127\\.0\\.0\\.1: stop whatever holds it`)],
      [{ http: `nonexistent.invalid:${http}` }, /^error: cannot listen on nonexistent\.invalid \(--http\): the host name does not resolve \((ENOTFOUND|EAI_AGAIN)\)/],
      [{ binary: `nonexistent.invalid:${binary}` }, /^error: cannot listen on nonexistent\.invalid \(--binary\): the host name does not resolve/],
      // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
      [{ http: `192.0.2.1:${http}` }, new RegExp(`^error: cannot listen on 192\\.0\\.2\\.1:${http} \\(--http\\): that address is not on this machine`)],
    ];
    let n = 0;
    for (const [o, err] of cases) {
      const r = await synod(args(o, n++), { timeoutMs: 30_000 });
      assert.equal(r.code, 2, `${JSON.stringify(o)}: ${JSON.stringify(r)}`);
      assert.match(r.stderr, err, JSON.stringify(o));
    }
  } finally {
    await Promise.all(blockers.map((b) => new Promise((r) => b.close(r))));
  }
});
