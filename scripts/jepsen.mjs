#!/usr/bin/env node
// `npm run jepsen -- ...`: builds, then runs the black-box fault test (test/jepsen/main.ts).
import { spawnSync } from 'node:child_process';

const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const main = new URL('../dist/test/jepsen/main.js', import.meta.url).pathname;
const run = spawnSync(process.execPath, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
