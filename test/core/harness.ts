// Test harness for the protocol core: drive Replicas by hand, drain their Ready batches, keep
// what each has made durable so a "restart" can rebuild it. No timers, no I/O: every input
// carries an explicit nowMs, randomness is a constant.

import { Replica } from '../../src/core/replica.js';
import { coreOptions, type CoreOptions } from '../../src/core/options.js';
import type {
  Ballot,
  Command,
  CommittedEntry,
  DurableState,
  Entry,
  Message,
  PersistOp,
  ReadGrant,
  ReadRefusal,
  Rejection,
  ReplicaId,
  RoleChange,
  Slot,
  Value,
} from '../../src/core/types.js';

/** Deterministic "random": election timeouts sit in the middle of their range. */
export const RANDOM = (): number => 0.5;

export const MEMBERS3: ReplicaId[] = [1, 2, 3];

export function options(id: ReplicaId, extra: Partial<CoreOptions> = {}, members: ReplicaId[] = MEMBERS3): CoreOptions {
  return coreOptions({ id, members, ...extra });
}

/** Everything a replica emitted over one or more takeReady() calls. */
export interface Outputs {
  persist: PersistOp[];
  send: Message[];
  committed: CommittedEntry[];
  reads: ReadGrant[];
  readRefusals: ReadRefusal[];
  rejected: Rejection[];
  roleChanges: RoleChange[];
  snapshotNeeded: Array<{ from: ReplicaId; slot: Slot }>;
}

export function emptyOutputs(): Outputs {
  return { persist: [], send: [], committed: [], reads: [], readRefusals: [], rejected: [], roleChanges: [], snapshotNeeded: [] };
}

/** Drains takeReady() until it returns null; bounded so a core that never settles fails loudly. */
export function drain(replica: Replica): Outputs {
  const out = emptyOutputs();
  for (let i = 0; ; i++) {
    if (i > 1000) throw new Error('takeReady() never returned null');
    const r = replica.takeReady();
    if (!r) return out;
    out.persist.push(...r.persist);
    out.send.push(...r.send);
    out.committed.push(...r.committed);
    out.reads.push(...r.reads);
    out.readRefusals.push(...r.readRefusals);
    out.rejected.push(...r.rejected);
    out.roleChanges.push(...r.roleChanges);
    if (r.snapshotNeeded) out.snapshotNeeded.push(r.snapshotNeeded);
  }
}

export function ofType<T extends Message['type']>(msgs: readonly Message[], type: T): Array<Extract<Message, { type: T }>> {
  return msgs.filter((m): m is Extract<Message, { type: T }> => m.type === type);
}

export function cmd(clientId: number, seq: number, text = `c${clientId}.${seq}`, floor = 0): Command {
  return { clientId, seq, floor, payload: new TextEncoder().encode(text) };
}

export function batch(...commands: Command[]): Value {
  return { kind: 'batch', commands };
}

/** The entries a list of persist ops writes, in order. */
export function persistedEntries(ops: readonly PersistOp[]): Entry[] {
  return ops.flatMap((op) => op.entries);
}

/** What storage holds after `ops` were made durable, in the shape a restarted Replica reads. */
export function durableStateOf(ops: readonly PersistOp[]): DurableState {
  let promised: Ballot = 0;
  let chosenPrefix: Slot = 0;
  const entries: Entry[] = [];
  for (const op of ops) {
    if (op.promised !== null) promised = op.promised;
    if (op.chosenPrefix !== null) chosenPrefix = op.chosenPrefix;
    entries.push(...op.entries);
  }
  return { promised, entries, chosenPrefix, snapshotSlot: 0, snapshotConfigs: [] };
}

/**
 * One replica and its disk. `step` runs an input and returns what it emitted; persist ops are
 * queued until `persistNext`/`persistAll` reports them durable (and records them for a restart).
 */
export class Node {
  replica: Replica;
  /** Issued, not yet reported durable. */
  unpersisted: PersistOp[] = [];
  /** Reported durable, in order: what survives a crash. */
  durable: PersistOp[] = [];
  nowMs: number;

  constructor(
    readonly opts: CoreOptions,
    nowMs = 0,
    durable?: PersistOp[],
  ) {
    this.nowMs = nowMs;
    if (durable) this.durable = [...durable];
    this.replica = new Replica(opts, RANDOM, nowMs, durable ? durableStateOf(durable) : undefined);
    this.collect(drain(this.replica));
  }

  get id(): ReplicaId {
    return this.replica.id;
  }

  private collect(out: Outputs): Outputs {
    this.unpersisted.push(...out.persist);
    return out;
  }

  private at(nowMs: number | undefined): number {
    if (nowMs !== undefined) this.nowMs = nowMs;
    return this.nowMs;
  }

  step(input: (replica: Replica, nowMs: number) => void, nowMs?: number): Outputs {
    input(this.replica, this.at(nowMs));
    return this.collect(drain(this.replica));
  }

  receive(msg: Message, nowMs?: number): Outputs {
    return this.step((r, now) => r.receive(msg, now), nowMs);
  }

  tick(nowMs?: number): Outputs {
    return this.step((r, now) => r.tick(now), nowMs);
  }

  /** Reports the oldest issued op durable. */
  persistNext(nowMs?: number): Outputs {
    const op = this.unpersisted.shift();
    if (!op) throw new Error(`node ${this.id}: nothing to persist`);
    this.durable.push(op);
    return this.step((r, now) => r.persisted(op.seq, now), nowMs);
  }

  /** Reports every issued op durable (one persisted() call for the newest, as a runtime would). */
  persistAll(nowMs?: number): Outputs {
    if (this.unpersisted.length === 0) return emptyOutputs();
    const ops = this.unpersisted.splice(0);
    this.durable.push(...ops);
    return this.step((r, now) => r.persisted(ops[ops.length - 1]!.seq, now), nowMs);
  }

  /** Crash: unpersisted ops are lost; a new incarnation starts from what was durable. */
  restart(nowMs?: number): Outputs {
    const now = this.at(nowMs);
    this.unpersisted = [];
    this.replica = new Replica(this.opts, RANDOM, now, durableStateOf(this.durable));
    return this.collect(drain(this.replica));
  }
}

/**
 * A few nodes sharing a hand-driven network and one clock. Nothing moves unless the test says
 * so; `stabilize` persists and delivers until quiet (no ticks, so no new heartbeats).
 */
export class Cluster {
  readonly nodes = new Map<ReplicaId, Node>();
  net: Message[] = [];
  committed = new Map<ReplicaId, CommittedEntry[]>();
  /** Everything each node emitted since the last `clear` (tests read reads, rejections...). */
  outputs = new Map<ReplicaId, Outputs>();
  /** Called with every output batch, e.g. to check a property after each step. */
  onOutput: ((id: ReplicaId, out: Outputs) => void) | null = null;
  nowMs = 0;

  constructor(ids: ReplicaId[] = MEMBERS3, extra: Partial<CoreOptions> = {}) {
    for (const id of ids) {
      this.nodes.set(id, new Node(options(id, extra, ids), 0));
      this.committed.set(id, []);
      this.outputs.set(id, emptyOutputs());
    }
  }

  /** Outputs of `id` since the last clear. */
  out(id: ReplicaId): Outputs {
    return this.outputs.get(id)!;
  }

  clear(id?: ReplicaId): void {
    for (const k of id === undefined ? [...this.nodes.keys()] : [id]) this.outputs.set(k, emptyOutputs());
  }

  node(id: ReplicaId): Node {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Records an output batch of `id`: messages onto the network, commits into the log. */
  absorb(id: ReplicaId, out: Outputs): Outputs {
    this.net.push(...out.send);
    this.committed.get(id)!.push(...out.committed);
    const acc = this.outputs.get(id)!;
    for (const k of Object.keys(acc) as Array<keyof Outputs>) (acc[k] as unknown[]).push(...(out[k] as unknown[]));
    this.onOutput?.(id, out);
    return out;
  }

  step(id: ReplicaId, input: (replica: Replica, nowMs: number) => void): Outputs {
    return this.absorb(id, this.node(id).step(input, this.nowMs));
  }

  persistAll(id: ReplicaId): Outputs {
    return this.absorb(id, this.node(id).persistAll(this.nowMs));
  }

  tick(id: ReplicaId): Outputs {
    return this.absorb(id, this.node(id).tick(this.nowMs));
  }

  /** Delivers (and removes) every message in flight that matches `filter`, in order. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const now = this.net.filter(filter);
    this.net = this.net.filter((m) => !filter(m));
    for (const m of now) this.absorb(m.to, this.node(m.to).receive(m, this.nowMs));
    return now.length;
  }

  /** Takes (removes) the messages in flight that match, without delivering them. */
  take(filter: (m: Message) => boolean): Message[] {
    const taken = this.net.filter(filter);
    this.net = this.net.filter((m) => !filter(m));
    return taken;
  }

  stabilize(maxRounds = 100): void {
    for (let i = 0; i < maxRounds; i++) {
      let moved = 0;
      for (const id of this.nodes.keys()) {
        if (this.node(id).unpersisted.length > 0) {
          this.persistAll(id);
          moved++;
        }
      }
      moved += this.deliver();
      if (moved === 0) return;
    }
    throw new Error('cluster did not stabilize');
  }

  /** Elects `id` at the current time and lets slot 1 (its no-op) commit everywhere it can. */
  elect(id: ReplicaId): void {
    this.step(id, (r, now) => r.campaign(now));
    this.stabilize();
    const status = this.node(id).replica.status;
    if (status.role !== 'leader' || !status.leaderReady) throw new Error(`node ${id} did not become a ready leader`);
  }
}
