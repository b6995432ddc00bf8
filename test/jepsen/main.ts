// `npm run jepsen -- [--time S] [--nemesis all|kill,pause,...] [--seed N] [--replicas 3|5]
//   [--clients N] [--binary-clients N] [--runs N] [--keep] [--local-reads] [--planted-bug NAME]`
// Runs the black-box fault test (run.ts) and exits non-zero on any failure. Several --runs use
// seeds seed, seed+1, ...

import { parseKinds } from './nemesis.js';
import { finishReport, RUN_DEFAULTS, runJepsen, type RunOptions } from './run.js';

function usage(message: string): never {
  console.error(`${message}\nusage: npm run jepsen -- [--time SECONDS] [--nemesis all|none|kill,pause,partition,delay,loss,transfer,members,disk] [--seed N] [--replicas 3|5] [--clients N] [--binary-clients N] [--runs N] [--keep] [--local-reads] [--planted-bug NAME (src/core/options.ts: to see a check fail)]`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flags = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
    if (a === '--keep' || a === '--local-reads') switches.add(a);
    else {
      const v = args[++i];
      if (v === undefined) usage(`${a} needs a value`);
      flags.set(a, v);
    }
  }
  const known = ['--time', '--nemesis', '--seed', '--replicas', '--clients', '--binary-clients', '--runs', '--planted-bug'];
  for (const k of flags.keys()) if (!known.includes(k)) usage(`unknown flag ${k}`);
  const num = (name: string, dflt: number, min: number, max: number): number => {
    const t = flags.get(name);
    if (t === undefined) return dflt;
    const v = Number(t);
    if (!Number.isInteger(v) || v < min || v > max) usage(`${name} must be an integer in ${min}..${max}, got ${t}`);
    return v;
  };
  const timeS = num('--time', 60, 5, 24 * 3600);
  const seed0 = num('--seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1);
  const replicas = num('--replicas', 3, 3, 9);
  const clients = num('--clients', RUN_DEFAULTS.clients, 1, 64);
  const runs = num('--runs', 1, 1, 1000);
  // Of the clients: the TS HTTP client's first, then the binary client's, the rest raw HTTP.
  const tsClients = Math.min(RUN_DEFAULTS.tsClients, clients);
  const binaryClients = num('--binary-clients', Math.min(RUN_DEFAULTS.binaryClients, clients - tsClients), 0, clients - tsClients);
  const nemesisText = flags.get('--nemesis') ?? 'all';
  let kinds;
  try {
    kinds = nemesisText === 'none' ? [] : parseKinds(nemesisText);
  } catch (e) {
    usage((e as Error).message);
  }
  let failed = 0;
  for (let run = 0; run < runs; run++) {
    const seed = (seed0 + run) >>> 0;
    const command = `npm run jepsen -- --time ${timeS} --nemesis ${nemesisText} --seed ${seed} --replicas ${replicas} --clients ${clients} --binary-clients ${binaryClients}${switches.has('--local-reads') ? ' --local-reads' : ''}${flags.has('--planted-bug') ? ` --planted-bug ${flags.get('--planted-bug')}` : ''}`;
    const o: RunOptions = {
      ...RUN_DEFAULTS,
      seed,
      timeMs: timeS * 1000,
      replicas,
      clients,
      tsClients,
      binaryClients,
      // Enough keys per generation to spread the contention of more clients.
      keysPerGeneration: Math.max(RUN_DEFAULTS.keysPerGeneration, Math.ceil(clients / 2)),
      kinds,
      readConsistency: switches.has('--local-reads') ? 'local' : 'linearizable',
      keep: switches.has('--keep') ? 'always' : 'failure',
      ...(flags.has('--planted-bug') ? { plantedBug: flags.get('--planted-bug') } : {}),
      log: (line) => console.log(line),
      command,
    };
    const report = await runJepsen(o);
    finishReport(report, o);
    if (!report.ok) failed++;
  }
  if (runs > 1) console.log(`jepsen: ${runs - failed}/${runs} runs passed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
