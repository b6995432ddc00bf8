#!/usr/bin/env node
// Holds the line for src/core: no Node imports, no clock, no randomness, no timers, no await.
// The simulator can replay a seed only if the core takes all of these as inputs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../src/core/', import.meta.url).pathname;
const banned = [
  [/from\s+['"]node:/, 'imports a node: module'],
  [/from\s+['"](fs|net|os|path|crypto|timers|child_process)['"]/, 'imports a Node module'],
  [/\bDate\.now\b|\bnew Date\b/, 'reads the wall clock'],
  [/\bperformance\.now\b|\bprocess\.hrtime\b/, 'reads a clock'],
  [/\bMath\.random\b/, 'uses unseeded randomness'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'uses timers'],
  [/\bawait\b|\basync\s/, 'is asynchronous'],
  [/\bprocess\./, 'reads process state'],
];
let bad = 0;
for (const name of readdirSync(dir)) {
  if (!name.endsWith('.ts')) continue;
  const lines = readFileSync(join(dir, name), 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (/^\s*(\/\/|\*)/.test(line)) return; // comments may talk about what is banned
    for (const [re, why] of banned) {
      if (re.test(line)) {
        console.error(`src/core/${name}:${i + 1}: ${why}: ${line.trim()}`);
        bad++;
      }
    }
  });
}
if (bad) {
  console.error(`core purity check failed: ${bad} line(s)`);
  process.exit(1);
}
console.log('core purity check: ok');
