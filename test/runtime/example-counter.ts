// A complete Synod application: a replicated counter. Three replicas run in this process, talking
// TCP over loopback, each with its own temporary data directory. It starts them, waits for a
// leader, proposes increments with exactly-once sessions, reads the total linearizably, prints,
// and closes. docs/api.md walks through it; test/runtime/example.test.ts runs it, so it cannot rot.
//
// Run it:   npx tsc -p . && node dist/test/runtime/example-counter.js
// In an application, import from 'synod' instead of '../../src/index.js'.
// (It lives under test/ because tsconfig.json compiles src/, test/ and bench/ only.)

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NotLeaderError,
  OutcomeUnknownError,
  SynodReplica,
  type ApplyContext,
  type PeerAddress,
  type StateMachine,
} from '../../src/index.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The application: deterministic, no clocks, no randomness, no I/O in apply().
 * Commands are "add <n>" in UTF-8; queries return the total.
 */
export class Counter implements StateMachine {
  total = 0;
  commands = 0;

  apply(command: Uint8Array, _context: ApplyContext): Uint8Array {
    // `command` may alias a network or log buffer: decoding copies what we keep.
    const [verb, amount] = decoder.decode(command).split(' ');
    if (verb !== 'add' || !Number.isSafeInteger(Number(amount))) return encoder.encode('error: bad command');
    this.total += Number(amount);
    this.commands++;
    return encoder.encode(String(this.total)); // a fresh array: the replica keeps it in the session table
  }

  query(_request: Uint8Array): Uint8Array {
    return encoder.encode(String(this.total));
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ total: this.total, commands: this.commands }));
  }

  restore(snapshot: Uint8Array): void {
    const state = JSON.parse(decoder.decode(snapshot)) as { total: number; commands: number };
    this.total = state.total;
    this.commands = state.commands;
  }
}

export interface ExampleResult {
  /** The total read linearizably from the leader. */
  total: number;
  /** Each replica's local total after it applied everything. */
  totals: number[];
  leader: number;
  /** What the example printed. */
  lines: string[];
}

/** Runs the example. `print` receives every line (default: console.log). */
export async function main(print: (line: string) => void = console.log): Promise<ExampleResult> {
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    print(line);
  };
  const dataRoot = await mkdtemp(join(tmpdir(), 'synod-example-'));
  const members = new Map<number, PeerAddress>();
  for (const id of [1, 2, 3]) members.set(id, { host: '127.0.0.1', port: await freePort() });
  const counters = [new Counter(), new Counter(), new Counter()];
  const replicas: SynodReplica[] = [];
  try {
    // 1. Start three replicas. Each listens on its own address from `members`.
    for (const id of [1, 2, 3]) {
      replicas.push(
        await SynodReplica.start({
          id,
          clusterId: 'example-counter',
          dataDir: join(dataRoot, `replica-${id}`),
          members,
          stateMachine: counters[id - 1]!,
          logBackend: 'file',
          logger: () => {}, // quiet: the default logger prints warnings (peers not up yet) to stderr
        }),
      );
    }
    say('started 3 replicas on ' + [...members.values()].map((a) => `${a.host}:${a.port}`).join(', '));

    // 2. Open a client session (registered through the log: every replica knows it by the same id),
    //    then propose ten increments through it (clientId, seq, floor): a retry after an unknown
    //    outcome reuses the same seq, so each increment is applied at most once.
    const clientId = await openSessionWithRetries(replicas);
    let leaderId = 0;
    for (let seq = 1; seq <= 10; seq++) {
      const { result, replica } = await proposeWithRetries(replicas, encoder.encode(`add ${seq}`), { clientId, seq, floor: seq });
      leaderId = replica.id;
      if (seq === 1 || seq === 10) say(`add ${seq} -> total ${decoder.decode(result)} (via replica ${replica.id})`);
    }

    // 3. A linearizable read (read-index: the leader confirms it still leads, then answers).
    const leader = replicas.find((r) => r.id === leaderId)!;
    const read = await leader.read(new Uint8Array(0), { consistency: 'linearizable' });
    const total = Number(decoder.decode(read.result));
    say(`linearizable read on replica ${leader.id}: total ${total} at slot ${read.appliedSlot}`);

    // 4. Every replica applies the same commands: a follower's local read with minSlot waits for it.
    for (const replica of replicas) {
      const local = await replica.read(new Uint8Array(0), { consistency: 'local', minSlot: read.appliedSlot, maxWaitMs: 5000 });
      say(`replica ${replica.id} (${replica.status().role}): total ${decoder.decode(local.result)}`);
    }
    return { total, totals: counters.map((c) => c.total), leader: leader.id, lines };
  } finally {
    // 5. Close: pending requests end with ShuttingDownError or OutcomeUnknownError; files are released.
    await Promise.all(replicas.map((r) => r.close()));
    await rm(dataRoot, { recursive: true, force: true });
    say('closed');
  }
}

/**
 * Sends a command to the leader, following NotLeaderError's hint (certain failure: never
 * proposed, safe to send anywhere) and retrying OutcomeUnknownError with the same session (the
 * session table makes the retry at-most-once). Gives up after `deadlineMs`.
 */
async function proposeWithRetries(
  replicas: SynodReplica[],
  command: Uint8Array,
  session: { clientId: number; seq: number; floor: number },
  deadlineMs = 10_000,
): Promise<{ result: Uint8Array; replica: SynodReplica }> {
  const deadline = Date.now() + deadlineMs;
  let target = replicas[0]!;
  for (;;) {
    try {
      return { result: await target.propose(command, { ...session, timeoutMs: 2000 }), replica: target };
    } catch (error) {
      if (Date.now() > deadline) throw error;
      if (error instanceof NotLeaderError) {
        const hinted = replicas.find((r) => r.id === error.leaderHint);
        target = hinted ?? replicas[(replicas.indexOf(target) + 1) % replicas.length]!;
        if (!hinted) await sleep(50); // no leader yet: an election is under way
      } else if (!(error instanceof OutcomeUnknownError)) {
        throw error;
      }
    }
  }
}

/** Opens a session on the leader, following NotLeaderError's hint as proposeWithRetries does. */
async function openSessionWithRetries(replicas: SynodReplica[], deadlineMs = 10_000): Promise<number> {
  const deadline = Date.now() + deadlineMs;
  let target = replicas[0]!;
  for (;;) {
    try {
      return await target.openSession({ timeoutMs: 2000 });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      if (error instanceof NotLeaderError) {
        const hinted = replicas.find((r) => r.id === error.leaderHint);
        target = hinted ?? replicas[(replicas.indexOf(target) + 1) % replicas.length]!;
        if (!hinted) await sleep(50); // no leader yet: an election is under way
      } else if (!(error instanceof OutcomeUnknownError)) {
        throw error; // (an unknown outcome may have opened a session that then just idles: try again)
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port that was free a moment ago (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// Run as a program (node dist/test/runtime/example-counter.js), not when imported by the test.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
