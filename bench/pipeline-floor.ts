// The floor of the benchmark's process topology on this machine: what a write costs when the
// replicas do nothing but pass bytes along. Four processes, as `synod bench`: an open-loop load
// generator (this process) → a "leader" → two "followers" → the leader → the generator, over
// loopback TCP with the same framing (u32 length + payload), the same request size and the same
// 1 ms generator tick; latency from each request's intended send time, as the bench counts it.
// The leader batches what each event-loop turn read into one "slot", sends it to both followers
// and answers the slot's requests at the first follower's ack (a majority of three with itself).
// No consensus state, no log, no state machine, no snapshots: the difference between this and
// `synod bench` at the same rate is what Synod's own work costs. It is a plain implementation (a
// buffer per reply, one slot at a time in the leader's log), a reference rather than a lower bound.
//
// `--disk`: each follower writes the slot durably (O_DSYNC) before acking, and the leader writes
// its own copy (one slot in its log at a time, as Synod's leader), through libuv's thread pool.
//
// npm run bench:floor -- --rate 150000 [--duration 10] [--warmup 2] [--connections 16] [--disk] [--json]
import { fork, type ChildProcess } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync, write as fsWrite, writeSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleProcess } from '../src/bench/cluster.js';
import { othersBetween, othersText, sampleMachine, type MachineSample } from '../src/bench/machine-others.js';
import { LATENCY_US_MAX, LatencyCounts } from '../src/bench/latency.js';
import { putU32be, u32be } from '../src/kv/codec.js';
import { FrameDecoder } from '../src/transport/frame.js';
import { numberArg } from './args.js';

const hasFlag = (name: string) => process.argv.includes(name);
const stringArg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? null : (process.argv[i + 1] ?? null);
};

const REQUEST_BYTES = 4 + 1 + 16 + 64; // request id, op, 16-byte key, 64-byte value: a PUT's size
const FRAME_BYTES_MAX = 64 << 20;
const TICK_MS = 1;
/** --sync-writes: a replica writes on its own thread (blocking its loop) instead of through the thread pool. */
const SYNC_WRITES = hasFlag('--sync-writes');
/** --work-us N: each replica spins N µs per request it handles (a stand-in for a state machine's CPU). */
const WORK_US = numberArg('work-us', 0);
// A calibrated loop, not a clock: spinning until a time would burn less CPU when the process is
// preempted mid-spin, and the point is to add CPU.
let sink = 0;
const loop = (n: number) => {
  let x = sink | 1;
  for (let i = 0; i < n; i++) x = Math.imul(x, 1103515245) + 12345;
  sink = x;
};
const LOOPS_PER_US = (() => {
  if (WORK_US === 0) return 0;
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    loop(1_000_000);
    best = Math.min(best, performance.now() - t);
  }
  return 1_000_000 / (best * 1000);
})();
const spin = (requests: number) => {
  if (WORK_US !== 0) loop(Math.round(requests * WORK_US * LOOPS_PER_US));
};

/** A frame whose payload is one u32 (a follower's ack of a slot, the leader's answer to a request id). */
function u32Frame(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  putU32be(b, 0, 4);
  putU32be(b, 4, v);
  return b;
}

/** Frames a payload: u32 big-endian length, then the bytes. */
function frameInto(out: Buffer, at: number, payload: Uint8Array, from: number, to: number): number {
  putU32be(out, at, to - from);
  out.set(payload.subarray(from, to), at + 4);
  return at + 4 + (to - from);
}

/** Reads every complete frame of a socket's stream: onFrame(bytes, start, end). */
function onFrames(socket: Socket, onFrame: (bytes: Uint8Array, start: number, end: number) => void): void {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  socket.on('data', (chunk: Buffer) => {
    const error = decoder.pushRanges(chunk, onFrame);
    if (error !== null) throw new Error(`bad frame: ${error.message}`);
  });
}

const listen = (onSocket: (s: Socket) => void) =>
  new Promise<number>((resolve) => {
    const server = createServer((s) => {
      s.setNoDelay(true);
      onSocket(s);
    });
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });

const connect = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ port, host: '127.0.0.1' }, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });

/**
 * A durable copy of each slot: one write through the thread pool to a file opened O_DSYNC (the
 * write returns once the data is on the disk, as write + fdatasync, in one hop instead of two).
 */
class SlotFile {
  private readonly fd: number;
  private at = 0;
  constructor(dir: string, name: string) {
    this.fd = openSync(join(dir, name), constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC);
  }
  append(bytes: Uint8Array, done: () => void): void {
    const at = this.at;
    this.at = (this.at + bytes.length) % (64 << 20); // a ring: no file growth beyond 64 MiB
    if (SYNC_WRITES) {
      writeSync(this.fd, bytes, 0, bytes.length, at);
      done();
      return;
    }
    fsWrite(this.fd, bytes, 0, bytes.length, at, (e) => {
      if (e) throw e;
      done();
    });
  }
}

/** How late a 1 ms timer fires in this process (as `synod bench` reports for its processes), over the window. */
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
loopDelay.enable();
const loopDelayP99Ms = () => loopDelay.percentile(99) / 1e6;

/** A replica's answer to the driver: 'start' resets its loop delay, 'end' reports it (and the leader its slots). */
function answerDriver(slots: () => number): void {
  process.on('message', (m) => {
    if (m === 'start') loopDelay.reset();
    process.send!({ slots: slots(), loopDelayP99Ms: loopDelayP99Ms() });
  });
}

async function follower(dir: string | null): Promise<void> {
  answerDriver(() => 0);
  const file = dir === null ? null : new SlotFile(dir, `follower-${process.pid}`);
  const port = await listen((s) => {
    const ack = (slot: number) => s.write(u32Frame(slot));
    onFrames(s, (bytes, start, end) => {
      const slot = u32be(bytes, start);
      spin((end - start - 4) / REQUEST_BYTES);
      if (file === null) ack(slot);
      else file.append(bytes.slice(start, end), () => ack(slot));
    });
  });
  process.send!({ port });
}

interface Slot {
  conns: Socket[];
  ids: number[];
  durable: boolean;
  acked: boolean;
}

async function leader(followerPorts: number[], dir: string | null): Promise<void> {
  const file = dir === null ? null : new SlotFile(dir, `leader-${process.pid}`);
  const followers = await Promise.all(followerPorts.map(connect));
  let open: { conns: Socket[]; ids: number[]; bytes: Buffer[] } = { conns: [], ids: [], bytes: [] };
  const slots = new Map<number, Slot>();
  let nextSlot = 0;
  let committed = 0; // every slot below is answered
  let logBusy = false;
  let scheduled = false;
  const replies = new Map<Socket, Buffer[]>();

  const commitReady = () => {
    for (;;) {
      const s = slots.get(committed);
      if (s === undefined || !s.durable || !s.acked) break;
      slots.delete(committed++);
      spin(s.ids.length);
      for (let i = 0; i < s.ids.length; i++) {
        let list = replies.get(s.conns[i]!);
        if (list === undefined) replies.set(s.conns[i]!, (list = []));
        list.push(u32Frame(s.ids[i]!));
      }
    }
    for (const [conn, list] of replies) conn.write(Buffer.concat(list));
    replies.clear();
  };
  for (const f of followers) {
    onFrames(f, (bytes, start) => {
      const slot = u32be(bytes, start);
      const s = slots.get(slot);
      if (s === undefined || s.acked) return;
      s.acked = true;
      commitReady();
    });
  }
  const propose = () => {
    scheduled = false;
    if (open.ids.length === 0 || logBusy) return;
    const slot = nextSlot++;
    const body = Buffer.concat([Buffer.alloc(4), ...open.bytes]);
    putU32be(body, 0, slot);
    const s: Slot = { conns: open.conns, ids: open.ids, durable: file === null, acked: false };
    slots.set(slot, s);
    open = { conns: [], ids: [], bytes: [] };
    const framed = Buffer.allocUnsafe(4 + body.length);
    frameInto(framed, 0, body, 0, body.length);
    for (const f of followers) f.write(framed);
    if (file !== null) {
      logBusy = true;
      file.append(body, () => {
        logBusy = false;
        s.durable = true;
        commitReady();
        if (open.ids.length > 0 && !scheduled) {
          scheduled = true;
          setImmediate(propose);
        }
      });
    }
  };
  answerDriver(() => nextSlot);
  const port = await listen((s) => {
    onFrames(s, (bytes, start, end) => {
      const id = u32be(bytes, start);
      open.conns.push(s);
      open.ids.push(id);
      open.bytes.push(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start));
      if (!scheduled) {
        scheduled = true;
        setImmediate(propose);
      }
    });
  });
  process.send!({ port });
}

const cpuSecondsOf = (pid: number) => sampleProcess('', pid).cpuS;

const spawnRole = (args: string[]) =>
  new Promise<{ child: ChildProcess; port: number }>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve({ child, port: (m as { port: number }).port }));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });

async function driver(): Promise<void> {
  const rate = numberArg('rate', 150_000, 1);
  const durationS = numberArg('duration', 10, 1);
  const warmupS = numberArg('warmup', 2);
  const connections = numberArg('connections', 16, 1);
  const disk = hasFlag('--disk');
  const dir = disk ? mkdtempSync(join(stringArg('--dir') ?? tmpdir(), 'synod-floor-')) : null;
  const dirArgs = dir === null ? [] : ['--dir', dir];
  const workArgs = ['--work-us', String(numberArg('work-us', 0)), ...(SYNC_WRITES ? ['--sync-writes'] : [])];
  const f1 = await spawnRole(['--role', 'follower', ...dirArgs, ...workArgs]);
  const f2 = await spawnRole(['--role', 'follower', ...dirArgs, ...workArgs]);
  const l = await spawnRole(['--role', 'leader', '--followers', `${f1.port},${f2.port}`, ...dirArgs, ...workArgs]);
  const children = [l.child, f1.child, f2.child];
  const conns = await Promise.all(Array.from({ length: connections }, () => connect(l.port)));

  const RING = 1 << 22;
  const intendedMs = new Float64Array(RING);
  const latency = new LatencyCounts();
  const startMs = performance.now();
  const measureFromMs = startMs + warmupS * 1000;
  const measureToMs = measureFromMs + durationS * 1000;
  let sent = 0;
  let sentInWindow = 0;
  let measuredOps = 0;
  const out = conns.map(() => Buffer.allocUnsafe(1 << 20));
  const outAt = conns.map(() => 0);
  const payload = Buffer.alloc(REQUEST_BYTES, 0x61);
  for (const c of conns) {
    onFrames(c, (bytes, start) => {
      const intended = intendedMs[u32be(bytes, start) % RING]!;
      if (intended >= measureFromMs && intended < measureToMs) {
        latency.record(Math.min(LATENCY_US_MAX, Math.max(1, Math.round((performance.now() - intended) * 1000))));
        measuredOps++;
      }
    });
  }
  let cpuAtStart: number[] = [];
  let machineAtStart: MachineSample | null = null;
  let machineAtEnd: MachineSample | null = null;
  let cpuAtEnd: number[] = [];
  type Stats = { slots: number; loopDelayP99Ms: number };
  const ask = (child: ChildProcess, what: 'start' | 'end') =>
    new Promise<Stats>((resolve) => {
      child.once('message', (m) => resolve(m as Stats));
      child.send(what);
    });
  const asked: Promise<Stats[]>[] = [];
  const askAll = (what: 'start' | 'end') => {
    if (what === 'start') loopDelay.reset();
    asked.push(Promise.all(children.map((c) => ask(c, what))));
  };
  const pids = () => [process.pid, ...children.map((c) => c.pid!)];
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      // The machine's other tasks are read just outside the window: a scan of /proc takes a few ms
      // of this thread, which sends the load.
      if (machineAtStart === null && now >= measureFromMs - 100) machineAtStart = sampleMachine();
      if (cpuAtStart.length === 0 && now >= measureFromMs) {
        cpuAtStart = pids().map(cpuSecondsOf);
        askAll('start');
      }
      if (now >= measureToMs) {
        cpuAtEnd = pids().map(cpuSecondsOf);
        askAll('end');
        clearInterval(tick);
        machineAtEnd = sampleMachine();
        setTimeout(resolve, 500); // the last answers
        return;
      }
      const due = Math.floor(((now - startMs) * rate) / 1000);
      for (; sent < due; sent++) {
        const c = sent % connections;
        if (outAt[c]! + 4 + REQUEST_BYTES > out[c]!.length) break; // the next tick sends the rest
        putU32be(payload, 0, sent);
        const intended = startMs + (sent * 1000) / rate;
        intendedMs[sent % RING] = intended;
        if (intended >= measureFromMs && intended < measureToMs) sentInWindow++;
        outAt[c] = frameInto(out[c]!, outAt[c]!, payload, 0, REQUEST_BYTES);
      }
      for (let c = 0; c < connections; c++) {
        if (outAt[c] === 0) continue;
        conns[c]!.write(Buffer.from(out[c]!.subarray(0, outAt[c]!)));
        outAt[c] = 0;
      }
    }, TICK_MS);
  });
  const q = latency.quantiles();
  const cpu = cpuAtEnd.map((e, i) => e - cpuAtStart[i]!);
  const generatorLoopDelayP99Ms = loopDelayP99Ms();
  const [atStart, atEnd] = await Promise.all(asked);
  const slotsFrom = atStart![0]!.slots;
  const slotsTo = atEnd![0]!.slots;
  const result = {
    rateRequested: rate,
    sent: sentInWindow,
    answered: measuredOps,
    opsPerSec: Math.round(measuredOps / durationS),
    slotsPerSec: Math.round((slotsTo - slotsFrom) / durationS),
    p50Ms: q.p50Ms,
    p99Ms: q.p99Ms,
    p999Ms: q.p999Ms,
    maxMs: q.maxMs,
    disk,
    connections,
    cpuUsPerOp: { generator: (cpu[0]! * 1e6) / measuredOps, leader: (cpu[1]! * 1e6) / measuredOps, followers: [(cpu[2]! * 1e6) / measuredOps, (cpu[3]! * 1e6) / measuredOps] },
    cores: cpu.reduce((a, b) => a + b, 0) / durationS,
    /** p99 of how late a 1 ms timer fired: generator, leader, followers. */
    loopDelayP99Ms: [generatorLoopDelayP99Ms, ...atEnd!.map((x) => x.loopDelayP99Ms)],
    /** What else ran on the machine meanwhile (kernel threads, other programs, interrupts, steal). */
    others: machineAtStart && machineAtEnd ? othersBetween(machineAtStart, machineAtEnd, new Set(pids())) : null,
  };
  for (const c of conns) c.destroy();
  for (const c of children) c.kill();
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  if (hasFlag('--json')) console.log(JSON.stringify(result));
  else {
    const us = result.cpuUsPerOp;
    console.log(`pipeline floor (${disk ? 'each replica writes every slot durably' : 'no disk'}, ${connections} connections): ${rate.toLocaleString()} ops/s requested, ${result.opsPerSec.toLocaleString()} answered (${measuredOps} of ${sentInWindow} sent in the window)`);
    console.log(`  ${result.slotsPerSec.toLocaleString()} slots/s (${(measuredOps / (slotsTo - slotsFrom)).toFixed(1)} requests each)`);
    console.log(`  latency p50 ${q.p50Ms.toFixed(2)} ms, p99 ${q.p99Ms.toFixed(2)} ms, p99.9 ${q.p999Ms.toFixed(2)} ms, max ${q.maxMs.toFixed(1)} ms`);
    console.log(`  CPU per op: generator ${us.generator.toFixed(2)} µs, leader ${us.leader.toFixed(2)}, followers ${us.followers.map((x) => x.toFixed(2)).join(' / ')}; ${result.cores.toFixed(2)} cores busy`);
    if (result.others) console.log(`  other tasks on the machine: ${othersText(result.others)}`);
    console.log(`  event loops late (p99 of a 1 ms timer): generator ${result.loopDelayP99Ms[0]!.toFixed(1)} ms, leader ${result.loopDelayP99Ms[1]!.toFixed(1)}, followers ${result.loopDelayP99Ms.slice(2).map((x) => x.toFixed(1)).join(' / ')}`);
  }
}

const role = stringArg('--role');
const roleDir = stringArg('--dir');
if (role === 'follower') await follower(roleDir);
else if (role === 'leader') await leader((stringArg('--followers') ?? '').split(',').map(Number), roleDir);
else await driver();
