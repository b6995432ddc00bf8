#!/usr/bin/env node
// Builds the optional pmem addon (native/pmem) with the node-gyp bundled in npm. Never fails the install:
// on failure it prints one line saying why and writes the log to native/pmem/build-error.txt; the file
// backend works without the addon, and `--log-backend pmem` then explains that it is unavailable.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'pmem');
const errorFile = join(here, 'build-error.txt');
function findNodeGyp() {
  const npmDirs = [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'), '/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm'];
  for (const dir of npmDirs) {
    const bin = join(dir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bin)) return bin;
  }
  return null;
}
try {
  const gyp = findNodeGyp();
  if (!gyp) throw new Error("node-gyp not found next to npm");
  const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir || '/usr' };
  const result = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: here, env, encoding: 'utf8' });
  if (result.status !== 0) {
    const log = `${result.stdout}\n${result.stderr}`;
    const line = log.split('\n').find((l) => /error/i.test(l)) ?? `node-gyp exited with ${result.status}`;
    throw new Error(line.trim());
  }
  rmSync(errorFile, { force: true });
  console.log('synod: pmem addon built (native/pmem/build/Release/synod_pmem.node)');
} catch (error) {
  writeFileSync(errorFile, `${error.message}\n`);
  console.log(`synod: pmem addon not built (${error.message}); the file log works without it`);
}
process.exit(0);
