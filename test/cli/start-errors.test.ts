// `synod start` (and `synod certs`) refuse what they cannot use with exit 2 and a message naming
// the flag, as they do for the other data-directory and port errors.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
const start = (extra: string[], env?: Record<string, string>) => synod(['start', '--id', '1', '--initial-cluster', '1=127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'warn', ...extra], { env, timeoutMs: 20_000 });

// Before: "error: EEXIST: file already exists, mkdir '...'" (or ENOTDIR), exit 1.
test('--data naming a file, or a path under a file: exit 2, "--data ... is not a directory"', { timeout: 60_000 }, async () => {
  for (const data of [aFile, join(aFile, 'sub')]) {
    const r = await start(['--data', data]);
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
