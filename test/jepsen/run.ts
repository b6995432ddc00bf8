// One black-box fault run: start a cluster of `synod start` processes behind the proxies, run
// the clients and the nemesis, heal, wait for convergence, then check
//   1. linearizability of the history, per key (src/check), final reads included;
//   2. no acknowledged write lost (the ledger) and every replica's final state equal;
//   3. availability: the share of ops that succeeded and the longest window with no successful
//      write, overall and per fault kind.
// Everything is written to a directory (history.json, report.json, timeline.svg, each replica's
// log); it is kept on failure (or always, with keep: 'always') and its path is printed.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistory, explainResult, historyToJSON, readsOfScans, Recorder, type CheckResult, type OpRecord } from '../../src/check/index.js';
import { Prng } from '../../src/sim/prng.js';
import { Cluster, httpRequest } from './cluster.js';
import { FAULT_KINDS, Nemesis, type FaultKind, type FaultWindow } from './nemesis.js';
import { Network } from './proxy.js';
import { timelineSvg } from './timeline.js';
import { sleep, Workload } from './workload.js';

export interface RunOptions {
  seed: number;
  timeMs: number;
  replicas: number;
  clients: number;
  /** Clients that use the TS client (src/kv/http-client.ts); the others use raw HTTP. */
  tsClients: number;
  /** Clients after those that use the binary protocol (src/kv/client.ts). */
  binaryClients: number;
  kinds: readonly FaultKind[];
  keysPerGeneration: number;
  keyLifetimeMs: number;
  requestTimeoutMs: number;
  thinkMsMax: number;
  ledgerShare: number;
  /** Share of ops that are scans, each checked as reads of the keys it covered. */
  scanShare: number;
  quietMsMin: number;
  quietMsMax: number;
  faultMsMin: number;
  faultMsMax: number;
  electionTimeoutMs?: number;
  convergeTimeoutMs: number;
  budgetMsPerKey: number;
  /** The planted client bug for the "checker bites" test: GETs with ?consistency=local. */
  readConsistency: 'linearizable' | 'local';
  /** A planted server bug (src/core/options.ts PlantedBug), through SYNOD_PLANTED_BUG: tests only. */
  plantedBug?: string;
  /**
   * A scripted nemesis instead of the seeded schedule (the planted-bug tests: a fault sequence
   * that exposes one bug). It gets the cluster and network and returns the fault windows.
   */
  script?: (ctx: ScriptContext) => Promise<FaultWindow[]>;
  keep: 'always' | 'failure';
  log: (line: string) => void;
  /** How to reproduce, printed on failure. */
  command: string;
}

export const RUN_DEFAULTS: Omit<RunOptions, 'seed' | 'command' | 'log'> = {
  timeMs: 60_000,
  replicas: 3,
  clients: 6,
  tsClients: 2,
  binaryClients: 2,
  kinds: FAULT_KINDS,
  keysPerGeneration: 4,
  keyLifetimeMs: 15_000,
  requestTimeoutMs: 5_000,
  thinkMsMax: 20,
  ledgerShare: 0.1,
  scanShare: 0.05,
  quietMsMin: 2_000,
  quietMsMax: 4_000,
  faultMsMin: 2_000,
  faultMsMax: 6_000,
  convergeTimeoutMs: 60_000,
  budgetMsPerKey: 20_000,
  readConsistency: 'linearizable',
  keep: 'failure',
};

export interface ScriptContext {
  cluster: Cluster;
  network: Network;
  nowMs: () => number;
  log: (line: string) => void;
}

export interface Availability {
  ops: number;
  ok: number;
  fail: number;
  info: number;
  /** ok / ops. */
  okShare: number;
  /** Longest span with no successful write (an ok put or CAS) completing, in ms. */
  longestNoWriteMs: number;
}

export interface RunReport {
  ok: boolean;
  failures: string[];
  seed: number;
  command: string;
  dir: string;
  ops: { total: number; ok: number; fail: number; info: number; checked: number; keys: number };
  /** Scans tried and completed; the reads the checker took from the completed ones. */
  scans: { tried: number; ok: number; reads: number };
  /** Ops settled ok by each kind of client: raw HTTP, the TS HTTP client, the binary client. */
  okByClient: { http: number; ts: number; binary: number };
  linearizability: { verdict: string; ms: number; explanation?: string };
  ledger: { acked: number; failed: number; info: number; present: number };
  converged: boolean;
  /** The configuration at the end, and every replica id that ever ran. */
  members: number[];
  replicasUsed: number;
  faults: FaultWindow[];
  faultCounts: Record<string, number>;
  availability: { overall: Availability; byKind: Record<string, Availability>; quiet: Availability };
  snapshotInstalls: number;
  /** Replicas removed while down and started again past their notice window: how each learned it, and when. */
  removedReturns: Array<{ id: number; how: 'told' | 'log'; ms: number }>;
  /** State digests (SAFETY.md): divergence alarms in the replicas' logs, and at the end each replica's newest digest slot and the peers that agreed there. */
  stateDigests: { divergences: number; newest: Array<{ id: number; slot: number; agree: number[] }> };
  wallMs: number;
}

export async function runJepsen(o: RunOptions): Promise<RunReport> {
  const wallStart = Date.now();
  const dir = mkdtempSync(join(tmpdir(), `synod-jepsen-${o.seed}-`));
  const prng = new Prng(o.seed);
  const nowMs = () => performance.now();
  const networkPrng = prng.fork();
  const network = new Network(() => networkPrng.next());
  // Spare slots for the replicas the membership nemesis adds: about one per minute, and a few.
  const spares = o.kinds.includes('members') ? Math.min(20, Math.ceil(o.timeMs / 60_000) + 3) : 0;
  const cluster = await Cluster.create({ size: o.replicas, spares, dir, network, electionTimeoutMs: o.electionTimeoutMs, diskFaults: o.kinds.includes('disk') || o.script !== undefined, plantedBug: o.plantedBug });
  const failures: string[] = [];
  const recorder = new Recorder({ nowMs });
  let nemesis: Nemesis | null = null;
  let workload: Workload | null = null;
  let converged = false;
  let check: CheckResult | null = null;
  const onSignal = () => {
    o.log('interrupted: killing the replicas');
    void cluster.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  try {
    o.log(`jepsen: seed ${o.seed}, ${o.replicas} replicas, ${o.clients} clients, ${o.timeMs / 1000} s, nemesis ${o.script ? 'scripted' : o.kinds.join(',') || 'none'}${o.plantedBug ? `, PLANTED BUG ${o.plantedBug}` : ''}, dir ${dir}`);
    cluster.startAll();
    const leader = await waitFor(async () => cluster.leader(), 30_000);
    if (leader === null) throw new Error('no leader within 30 s of starting the cluster');
    o.log(`jepsen: replica ${leader} leads; starting clients`);
    workload = new Workload({
      recorder,
      prng: prng.fork(),
      // Every running replica: members, and a removed one until it is stopped.
      endpoints: () => cluster.runningIds.map((id) => cluster.endpoint(id)),
      clients: o.clients,
      tsClients: o.tsClients,
      binaryClients: o.binaryClients,
      binaryEndpoints: () => cluster.runningIds.map((id) => cluster.binaryEndpoint(id)),
      keysPerGeneration: o.keysPerGeneration,
      keyLifetimeMs: o.keyLifetimeMs,
      requestTimeoutMs: o.requestTimeoutMs,
      thinkMsMax: o.thinkMsMax,
      ledgerShare: o.ledgerShare,
      scanShare: o.scanShare,
      readConsistency: o.readConsistency,
      nowMs,
    });
    workload.start();
    let scripted: Promise<FaultWindow[]> | null = null;
    if (o.script) scripted = o.script({ cluster, network, nowMs, log: o.log });
    else if (o.kinds.length > 0) {
      nemesis = new Nemesis({ cluster, network, prng: prng.fork(), kinds: o.kinds, nowMs, quietMsMin: o.quietMsMin, quietMsMax: o.quietMsMax, faultMsMin: o.faultMsMin, faultMsMax: o.faultMsMax, removedNoticeWindowMs: 20 * 2 * (o.electionTimeoutMs ?? 300), log: o.log });
      nemesis.start();
    }
    await sleep(o.timeMs);
    await nemesis?.stop();
    const scriptWindows = scripted ? await scripted : [];
    await healAll(cluster, network);
    // A little load on the healed cluster, so that recovery shows in the history.
    await sleep(Math.min(3_000, o.timeMs / 10));
    await workload.stop();
    o.log(`jepsen: ${recorder.size} ops recorded; waiting for convergence`);

    converged = await waitConverged(cluster, o.convergeTimeoutMs);
    // A membership change that timed out may have taken effect since: learn the configuration
    // again (starting any member not running) and converge again if it moved.
    const before = cluster.ids.join(',');
    if ((await cluster.reconcile()) !== null && cluster.ids.join(',') !== before) {
      o.log(`jepsen: members are ${cluster.ids.join(',')}, not ${before}; converging again`);
      converged = await waitConverged(cluster, o.convergeTimeoutMs);
    }
    if (!converged) failures.push(`the replicas did not converge within ${o.convergeTimeoutMs} ms of healing`);

    // Final reads of every key, through the cluster (linearizable), recorded in the history.
    for (const key of workload.keys()) {
      if (!(await finalRead(cluster, recorder, key, o.requestTimeoutMs))) failures.push(`no final read of ${key} succeeded`);
    }
    // Every replica's state, read locally, must be the same.
    const prefixes = ['k', ...Array.from({ length: o.clients }, (_, w) => `L/${w}/`)];
    const finalIds = cluster.ids;
    const states = await Promise.all(finalIds.map((id) => scanAll(cluster.endpoint(id), prefixes, o.requestTimeoutMs)));
    const reference = states[0];
    const newestDigests: RunReport['stateDigests']['newest'] = [];
    for (let i = 0; i < finalIds.length; i++) {
      const id = finalIds[i]!;
      const st = await cluster.status(id, 2_000);
      const scanned = states[i];
      if (st && scanned && st.kv.keys !== scanned.size) failures.push(`replica ${id} holds ${st.kv.keys} keys but the scans found ${scanned.size}: keys no client wrote`);
      if (st?.stateDigest) newestDigests.push({ id, slot: st.stateDigest.slot, agree: st.stateDigest.agree });
    }
    // The replicas compared their state digests all along (every STATE_DIGEST_INTERVAL_SLOTS slots).
    const divergences = cluster.replicas.map((r) => countInLog(r.logFile, 'state divergence')).reduce((a, b) => a + b, 0);
    if (divergences > 0) failures.push(`the replicas logged ${divergences} state divergence alarms (their state digests of a slot differed): see the replica logs`);
    for (let i = 0; i < states.length; i++) {
      const s = states[i];
      if (s === null) failures.push(`could not scan replica ${finalIds[i]}'s state`);
      else if (reference && !sameState(reference, s)) failures.push(`replica ${finalIds[i]}'s state differs from replica ${finalIds[0]}'s: ${diffState(reference, s)}`);
    }

    const history = recorder.history();
    const ledger = checkLedger(history, workload, reference ?? null, failures);
    // Each completed scan becomes a read of every key it covered (ids after the recorder's).
    const scanned = readsOfScans(workload.scans, history.map((r) => r.op.key), history.reduce((m, r) => Math.max(m, r.id), -1) + 1);
    failures.push(...scanned.malformed);
    const checked = [...history, ...scanned.reads];
    o.log(`jepsen: checking ${history.length} ops and ${scanned.reads.length} reads from ${workload.scans.length} scans`);
    check = checkHistory(checked, { budgetMsPerKey: o.budgetMsPerKey });
    if (!check.ok) failures.push(`history is ${check.verdict}`);
    failures.push(...(nemesis?.problems ?? []));

    const windows = [...(nemesis?.windows ?? []), ...scriptWindows];
    const faultCounts: Record<string, number> = {};
    for (const w of windows) faultCounts[w.kind] = (faultCounts[w.kind] ?? 0) + 1;
    const snapshotInstalls = cluster.replicas.map((r) => countInLog(r.logFile, 'installed a snapshot')).reduce((a, b) => a + b, 0);
    const workloadOps = history.filter((r) => r.process !== 'final');
    const report: RunReport = {
      ok: failures.length === 0,
      failures,
      seed: o.seed,
      command: o.command,
      dir,
      ops: {
        total: history.length,
        ok: history.filter((r) => r.outcome === 'ok').length,
        fail: history.filter((r) => r.outcome === 'fail').length,
        info: history.filter((r) => r.outcome === 'info').length,
        checked: check.stats.ops,
        keys: check.stats.keys,
      },
      scans: { tried: workload.scansTried, ok: workload.scans.length, reads: scanned.reads.length },
      okByClient: { ...workload.okByClient },
      linearizability: { verdict: check.verdict, ms: Math.round(check.stats.ms), explanation: check.ok ? undefined : explainResult(check) },
      ledger,
      converged,
      members: cluster.ids,
      replicasUsed: cluster.replicas.filter((r) => r.starts > 0).length,
      faults: windows,
      faultCounts,
      availability: availability(workloadOps, windows),
      snapshotInstalls,
      removedReturns: [...(nemesis?.removedReturns ?? [])],
      stateDigests: { divergences, newest: newestDigests },
      wallMs: Date.now() - wallStart,
    };
    writeOutputs(dir, checked, report, check);
    writeFileSync(join(dir, 'scans.json'), JSON.stringify({ firstReadId: scanned.reads[0]?.id ?? null, scans: workload.scans, readScan: [...scanned.scanOf] }));
    return report;
  } catch (e) {
    failures.push(`harness error: ${(e as Error).stack ?? String(e)}`);
    const history = recorder.history();
    const report: RunReport = {
      ok: false,
      failures,
      seed: o.seed,
      command: o.command,
      dir,
      ops: { total: history.length, ok: 0, fail: 0, info: 0, checked: 0, keys: 0 },
      scans: { tried: workload?.scansTried ?? 0, ok: workload?.scans.length ?? 0, reads: 0 },
      okByClient: workload ? { ...workload.okByClient } : { http: 0, ts: 0, binary: 0 },
      linearizability: { verdict: check?.verdict ?? 'not-checked', ms: 0 },
      ledger: { acked: 0, failed: 0, info: 0, present: 0 },
      converged,
      members: cluster.ids,
      replicasUsed: cluster.replicas.filter((r) => r.starts > 0).length,
      faults: nemesis?.windows ?? [],
      faultCounts: {},
      availability: availability(history, nemesis?.windows ?? []),
      snapshotInstalls: 0,
      removedReturns: [],
      stateDigests: { divergences: 0, newest: [] },
      wallMs: Date.now() - wallStart,
    };
    writeOutputs(dir, history, report, null);
    return report;
  } finally {
    process.off('SIGINT', onSignal);
    await nemesis?.stop().catch(() => {});
    await cluster.destroy();
  }
}

/** Removes the run's directory unless it must be kept; prints the summary. */
export function finishReport(report: RunReport, o: Pick<RunOptions, 'keep' | 'log'>): void {
  o.log(summarize(report));
  if (report.ok && o.keep === 'failure') rmSync(report.dir, { recursive: true, force: true });
  else {
    // Data directories are large and of little use to a reader; logs and history stay.
    rmSync(join(report.dir, 'data'), { recursive: true, force: true });
    o.log(`jepsen: kept ${report.dir} (history.json, report.json, timeline.svg, replica-N.log)`);
  }
  if (!report.ok) o.log(`jepsen: FAILED. Reproduce with: ${report.command}`);
}

export function summarize(r: RunReport): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `jepsen: ${r.ok ? 'PASS' : 'FAIL'} seed ${r.seed} in ${(r.wallMs / 1000).toFixed(0)} s`,
    `  ops: ${r.ops.total} (${r.ops.ok} ok, ${r.ops.fail} fail, ${r.ops.info} info); checked ${r.ops.checked} over ${r.ops.keys} keys: ${r.linearizability.verdict} in ${r.linearizability.ms} ms`,
    `  ok by client: raw HTTP ${r.okByClient.http}, TS HTTP client ${r.okByClient.ts}, binary client ${r.okByClient.binary}`,
    `  scans: ${r.scans.ok} of ${r.scans.tried} completed, checked as ${r.scans.reads} reads of the keys they covered`,
    `  ledger: ${r.ledger.acked} acknowledged writes, all present: ${r.failures.some((f) => f.startsWith('ledger')) ? 'NO' : 'yes'}; converged: ${r.converged}`,
    `  faults: ${Object.entries(r.faultCounts).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; snapshot installs: ${r.snapshotInstalls}; members at the end ${r.members.join(',')} (${r.replicasUsed} replicas ran)` +
      (r.removedReturns.length > 0 ? `; removed while down and back: ${r.removedReturns.map((x) => `${x.id} ${x.how} in ${x.ms} ms`).join(', ')}` : ''),
    `  state digests: ${r.stateDigests.divergences} divergences; newest per replica: ${r.stateDigests.newest.map((d) => `${d.id}@${d.slot} agreed by [${d.agree.join(',')}]`).join(', ') || 'none'}`,
    `  availability: overall ${pct(r.availability.overall.okShare)} ok, longest no-write ${(r.availability.overall.longestNoWriteMs / 1000).toFixed(1)} s; quiet ${pct(r.availability.quiet.okShare)}`,
  ];
  for (const [k, a] of Object.entries(r.availability.byKind)) {
    lines.push(`    during ${k}: ${a.ops} ops, ${pct(a.okShare)} ok (${a.fail} fail, ${a.info} info), longest no-write ${(a.longestNoWriteMs / 1000).toFixed(1)} s`);
  }
  for (const f of r.failures) lines.push(`  FAILURE: ${f}`);
  if (r.linearizability.explanation) lines.push(r.linearizability.explanation);
  return lines.join('\n');
}

// ---------------------------------------------------------------- steps

async function waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number): Promise<T | null> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = await probe();
    if (v !== null) return v;
    await sleep(200);
  }
  return null;
}

async function healAll(cluster: Cluster, network: Network): Promise<void> {
  network.heal();
  for (const r of cluster.replicas) if (r.paused) cluster.resume(r.id);
  for (const id of cluster.ids) if (!cluster.running(id)) cluster.start(id);
  // The configuration as the leader sees it (a change that timed out may have taken effect).
  await waitFor(async () => cluster.reconcile(), 20_000);
}

/** All replicas up, one leader they agree on, the same commit point, everything applied; twice in a row. */
async function waitConverged(cluster: Cluster, timeoutMs: number): Promise<boolean> {
  let stable = 0;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const all = await Promise.all(cluster.ids.map((id) => cluster.status(id, 2_000)));
    const ok =
      all.every((s) => s !== null) &&
      all.every((s) => s!.leader !== null && s!.leader === all[0]!.leader) &&
      all.every((s) => s!.commitIndex === all[0]!.commitIndex && s!.appliedIndex === s!.commitIndex);
    stable = ok ? stable + 1 : 0;
    if (stable >= 2) return true;
    await sleep(300);
  }
  return false;
}

const FINAL_ATTEMPTS = 10;

async function finalRead(cluster: Cluster, recorder: Recorder, key: string, timeoutMs: number): Promise<boolean> {
  for (let attempt = 0; attempt < FINAL_ATTEMPTS; attempt++) {
    const ids = cluster.ids;
    const id = ids[attempt % ids.length]!;
    const h = recorder.invoke('final', { f: 'get', key });
    try {
      const a = await httpRequest(cluster.endpoint(id), 'GET', `/v1/kv/${encodeURIComponent(key)}`, undefined, timeoutMs);
      if (a.status === 200) h.http(200, { value: a.body });
      else h.http(a.status);
      if (a.status === 200 || a.status === 404) return true;
    } catch (e) {
      h.error(e);
    }
    await sleep(300);
  }
  return false;
}

type State = Map<string, string>;

/**
 * A replica's whole state, read locally. One scan returns at most 10,000 entries and has no start
 * key, so the keyspace is read by prefixes that each stay under it: the register keys ("k") and
 * each worker's ledger ("L/3/"). A key outside them (one no client wrote) shows as a difference
 * between the replica's key count in /v1/status and the keys scanned (checked by the caller).
 */
async function scanAll(endpoint: string, prefixes: readonly string[], timeoutMs: number): Promise<State | null> {
  const state: State = new Map();
  for (const prefix of prefixes) {
    const a = await httpRequest(endpoint, 'GET', `/v1/scan?prefix=${encodeURIComponent(prefix)}&limit=10000&consistency=local`, undefined, timeoutMs).catch(() => null);
    if (!a || a.status !== 200) return null;
    const body = JSON.parse(a.body) as { entries: Array<{ key: string; value: string }>; more: boolean };
    if (body.more) throw new Error(`more than 10,000 keys under ${JSON.stringify(prefix)}: shorten the run or add clients`);
    for (const e of body.entries) state.set(e.key, e.value);
  }
  return state;
}

function sameState(a: State, b: State): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function diffState(a: State, b: State): string {
  const diffs: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) !== b.get(k)) diffs.push(`${k}: ${JSON.stringify(a.get(k) ?? null)} vs ${JSON.stringify(b.get(k) ?? null)}`);
    if (diffs.length >= 5) break;
  }
  return diffs.join('; ');
}

/** Acknowledged ledger puts must be present; certainly failed ones absent; nothing unasked for. */
function checkLedger(history: readonly OpRecord[], workload: Workload, state: State | null, failures: string[]): RunReport['ledger'] {
  const out = { acked: 0, failed: 0, info: 0, present: 0 };
  if (state === null) return out;
  const attempted = new Set<string>();
  const lost: string[] = [];
  const appliedDespiteFail: string[] = [];
  for (const e of workload.ledger) {
    const r = history[e.opId]!;
    attempted.add(e.key);
    const present = state.has(e.key);
    if (present) out.present++;
    if (r.outcome === 'ok') {
      out.acked++;
      if (!present) lost.push(e.key);
    } else if (r.outcome === 'fail') {
      out.failed++;
      if (present) appliedDespiteFail.push(e.key);
    } else out.info++;
  }
  const unasked = [...state.keys()].filter((k) => k.startsWith('L/') && !attempted.has(k));
  if (lost.length) failures.push(`ledger: ${lost.length} acknowledged writes lost: ${lost.slice(0, 10).join(', ')}`);
  if (appliedDespiteFail.length) failures.push(`ledger: ${appliedDespiteFail.length} writes answered as certainly failed (503/refused) were applied: ${appliedDespiteFail.slice(0, 10).join(', ')}`);
  if (unasked.length) failures.push(`ledger: ${unasked.length} keys present that no client wrote: ${unasked.slice(0, 10).join(', ')}`);
  return out;
}

function isWrite(r: OpRecord): boolean {
  return r.op.f === 'put' || r.op.f === 'cas';
}

/** Ops counted by outcome, and the longest gap between successful writes inside [fromMs, toMs]. */
function availabilityOf(ops: readonly OpRecord[], fromMs: number, toMs: number): Availability {
  const a: Availability = { ops: ops.length, ok: 0, fail: 0, info: 0, okShare: 0, longestNoWriteMs: 0 };
  const writes: number[] = [];
  for (const r of ops) {
    a[r.outcome]++;
    if (r.outcome === 'ok' && isWrite(r) && r.completeMs !== null) writes.push(r.completeMs);
  }
  a.okShare = ops.length === 0 ? 1 : a.ok / ops.length;
  writes.sort((x, y) => x - y);
  let last = fromMs;
  for (const t of writes) {
    if (t < fromMs || t > toMs) continue;
    a.longestNoWriteMs = Math.max(a.longestNoWriteMs, t - last);
    last = t;
  }
  a.longestNoWriteMs = Math.round(Math.max(a.longestNoWriteMs, toMs - last));
  return a;
}

function availability(ops: readonly OpRecord[], windows: readonly FaultWindow[]): RunReport['availability'] {
  if (ops.length === 0) {
    const empty = availabilityOf([], 0, 0);
    return { overall: empty, byKind: {}, quiet: empty };
  }
  const t0 = ops[0]!.invokeMs;
  const t1 = Math.max(...ops.slice(-1000).map((r) => r.completeMs ?? r.invokeMs));
  const overall = availabilityOf(ops, t0, t1);
  const byKind: Record<string, Availability> = {};
  const inAny = (t: number, ws: readonly FaultWindow[]) => ws.some((w) => t >= w.startMs && t <= w.endMs);
  for (const kind of new Set(windows.map((w) => w.kind))) {
    const ws = windows.filter((w) => w.kind === kind);
    const inside = ops.filter((r) => inAny(r.invokeMs, ws));
    // The longest no-write gap within any one window of this kind (plus what follows it until
    // the first write: recovery time belongs to the fault that caused it).
    let longest = 0;
    const writes = ops.filter((r) => r.outcome === 'ok' && isWrite(r) && r.completeMs !== null).map((r) => r.completeMs!).sort((x, y) => x - y);
    for (const w of ws) {
      let last = w.startMs;
      for (const t of writes) {
        if (t < w.startMs) continue;
        longest = Math.max(longest, t - last);
        last = t;
        if (t > w.endMs) break;
      }
    }
    byKind[kind] = { ...availabilityOf(inside, 0, 0), longestNoWriteMs: Math.round(longest) };
  }
  const quietOps = ops.filter((r) => !inAny(r.invokeMs, windows));
  const quiet = { ...availabilityOf(quietOps, 0, 0), longestNoWriteMs: 0 };
  return { overall, byKind, quiet };
}

function countInLog(file: string, needle: string): number {
  try {
    return readFileSync(file, 'utf8').split(needle).length - 1;
  } catch {
    return 0;
  }
}

function writeOutputs(dir: string, history: readonly OpRecord[], report: RunReport, check: CheckResult | null): void {
  const highlight = new Set<number>();
  for (const op of check?.counterexample?.ops ?? []) highlight.add(op.id);
  writeFileSync(join(dir, 'history.json'), historyToJSON(history));
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2));
  writeFileSync(join(dir, 'timeline.svg'), timelineSvg(history, report.faults, { title: `synod jepsen seed ${report.seed}: ${report.ok ? 'PASS' : 'FAIL'} (${report.linearizability.verdict})`, highlight }));
}
