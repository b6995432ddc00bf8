// The deterministic simulator: one process, one seed, N replicas running the real core over a
// simulated clock, network and disk, with faults, a client workload and safety checks after
// every event. Model: TigerBeetle's VOPR (a safety phase with faults, then a liveness phase on a
// healed cluster). Everything random derives from the seed, so `--seed S` replays exactly.

import { CONTRACTS, ContractViolation, setContracts } from '../core/contracts.js';
import { Replica } from '../core/replica.js';
import { isRegisterCommand, REGISTER_CLIENT_ID, REGISTER_PAYLOAD, SessionTable, type SessionLimits } from '../core/sessions.js';
import type { Command, DurableState, Entry, Message, PersistOp, Ready, ReplicaId, Slot } from '../core/types.js';
import { Checker, Violation } from './checker.js';
import { EventHeap } from './heap.js';
import { commandKey, describeMessage, describeValue, valueKey } from './keys.js';
import type { SimOptions } from './options.js';
import { Prng } from './prng.js';
import { leaderEncoding } from './wire.js';

interface SimEvent {
  atMs: number;
  order: number;
  run: () => void;
}

interface DiskOp {
  op: PersistOp;
  doneAtMs: number;
}

/** One replica's durable state, and the writes not yet durable. */
class SimDisk {
  promised = 0;
  entries: Entry[] = [];
  chosenPrefix: Slot = 0;
  inflight: DiskOp[] = [];
  slowUntilMs = 0;

  snapshot: SimSnapshot | null = null;

  durableState(): DurableState {
    return {
      promised: this.promised,
      entries: [...this.entries],
      chosenPrefix: this.chosenPrefix,
      snapshotSlot: this.snapshot?.slot ?? 0,
      snapshotConfigs: this.snapshot?.configs ?? [],
    };
  }

  apply(op: PersistOp, entriesKept = op.entries.length): void {
    if (op.promised !== null && op.promised > this.promised) this.promised = op.promised;
    for (let i = 0; i < entriesKept; i++) this.entries.push(op.entries[i]!);
    if (entriesKept === op.entries.length && op.chosenPrefix !== null && op.chosenPrefix > this.chosenPrefix) {
      this.chosenPrefix = op.chosenPrefix;
    }
  }
}

interface PendingClientRequest {
  clientId: number;
  seq: number;
}

/** The application a simulated replica runs: a counter of executed commands, with sessions. */
class SimStateMachine {
  executedCount = 0;
  executed = new Map<string, number>();
  sessions: SessionTable<number>;
  hash = 0x811c9dc5;
  constructor(readonly limits: SessionLimits) {
    this.sessions = new SessionTable<number>(limits);
  }

  clone(): SimStateMachine {
    const c = new SimStateMachine(this.limits);
    c.executedCount = this.executedCount;
    c.executed = new Map(this.executed);
    c.sessions = SessionTable.fromJSON(this.sessions.toJSON());
    c.hash = this.hash;
    return c;
  }
}

/** A durable snapshot: the state machine as of `slot`, and the configurations. */
interface SimSnapshot {
  slot: Slot;
  configs: import('../core/types.js').ConfigEpoch[];
  sm: SimStateMachine;
}

class SimNode {
  core!: Replica;
  sm: SimStateMachine;
  up = true;
  incarnation = 0;
  readonly disk = new SimDisk();
  /** Client requests received here and not yet answered, by command key. */
  pendingRequests = new Map<string, PendingClientRequest>();
  /** Granted reads waiting for the state machine to reach their slot. */
  pendingReads: Array<{ readId: number; slot: Slot }> = [];
  clockRate = 1;
  pausedUntilMs = 0;
  clockOffsetMs = 0;
  constructor(readonly id: ReplicaId, readonly prng: Prng, limits: SessionLimits) {
    this.sm = new SimStateMachine(limits);
  }
  localNow(globalMs: number): number {
    return this.clockOffsetMs + globalMs * this.clockRate;
  }
}

interface ClientOp {
  seq: number;
  command: Command;
  target: ReplicaId;
  deadlineMs: number;
  refused: boolean;
}

interface ClientRead {
  readId: number;
  invokedAtMs: number;
  target: ReplicaId;
  deadlineMs: number;
  mode: 'linearizable' | 'lease';
}

/** A session registration in flight: a register command (client 0, seq = a run-wide nonce). */
interface ClientRegistration {
  command: Command;
  target: ReplicaId;
  deadlineMs: number;
}

class SimClient {
  nextSeq = 1;
  /** The session new commands go out under (0: none; one is being registered). */
  session = 0;
  registration: ClientRegistration | null = null;
  readonly outstanding = new Map<number, ClientOp>();
  read: ClientRead | null = null;
  leaderGuess: ReplicaId;
  constructor(readonly id: number, readonly prng: Prng, firstGuess: ReplicaId) {
    this.leaderGuess = firstGuess;
  }
  floor(): number {
    let min = this.nextSeq;
    for (const seq of this.outstanding.keys()) if (seq < min) min = seq;
    return min;
  }
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation: Violation | null;
  steps: number;
  simulatedMs: number;
  committedSlots: number;
  ackedWrites: number;
  /** Commands answered SESSION_EXPIRED (their session expired or was evicted). */
  expiredWrites: number;
  /** Sessions registered by clients (registrations answered). */
  sessions: number;
  reads: number;
  crashes: number;
  /** Leadership transfers asked of a leader (faults.transfers). */
  transfers: number;
  partitions: number;
  leaderChanges: number;
  /** Configuration values chosen after one at a higher slot (the checker orders them by slot). */
  configsOutOfOrder: number;
  /** notMember answers delivered (a member telling a candidate it does not know of its configuration). */
  notMemberDelivered: number;
  /** ... of which a replica took as news of its removal (status.removal became set). */
  removalsNoticed: number;
  trace: string[];
}

const CLIENT_TIMEOUT_MS = 500;
const CLIENT_LATENCY_MS = 1;
const TICK_MS = 10;
const TRACE_RING = 400;
const STEPS_MAX = 2_000_000;

export class Simulation {
  private readonly prng: Prng;
  private readonly heap = new EventHeap<SimEvent>();
  private order = 0;
  private nowMs = 0;
  private steps = 0;
  readonly nodes: SimNode[] = [];
  private readonly clients: SimClient[] = [];
  private readonly checker: Checker;
  /** blocked.has(`${a}>${b}`): messages from a to b are dropped. */
  private readonly blocked = new Set<string>();
  private healed = false;
  private readonly trace: string[] = [];
  private nextReadId = 1;
  private readonly readOwner = new Map<number, number>();
  private crashes = 0;
  private transfers = 0;
  private notMemberDelivered = 0;
  private removalsNoticed = 0;
  private partitions = 0;
  private expiredWrites = 0;
  private sessionsRegistered = 0;
  private nextRegisterNonce = 1;
  /** Which client a session id or a registration nonce belongs to. */
  private readonly clientBySession = new Map<number, SimClient>();
  private readonly clientByNonce = new Map<number, SimClient>();
  private leaderChanges = 0;
  private readonly members: ReplicaId[];
  private readonly wire: ((m: Message) => Message) | null;

  constructor(
    readonly options: SimOptions,
    private readonly traceAll = false,
    wire: ((m: Message) => Message) | null = null,
  ) {
    this.prng = new Prng(options.seed);
    this.members = Array.from({ length: options.replicas }, (_, i) => i + 1);
    this.checker = new Checker(this.members, options.core.pipelineWindowSlots);
    this.wire = options.wireCodec ? wire : null;
    for (const id of this.members) {
      const node = new SimNode(id, this.prng.fork(), { sessionsMax: options.sessionsMax, sessionExpiryMs: options.sessionExpiryMs });
      const explicitRate = options.clockRates?.[id - 1];
      if (explicitRate !== undefined) node.clockRate = explicitRate;
      else if (options.faults.clockDrift) {
        node.clockRate = 1 + (node.prng.next() * 2 - 1) * options.clockRateBound;
        node.clockOffsetMs = node.prng.int(0, 10_000);
      }
      this.nodes.push(node);
    }
    for (const node of this.nodes) this.bootNode(node, false);
    const first = options.initialLeader !== undefined ? this.nodes[options.initialLeader - 1] : undefined;
    if (first) {
      first.core.campaign(first.localNow(0));
      this.drain(first);
    }
    for (let i = 0; i < options.clients; i++) {
      const client = new SimClient(1000 + i, this.prng.fork(), this.prng.pick(this.members));
      this.clients.push(client);
      this.at(this.prng.int(0, 50), () => this.clientStep(client));
    }
    if (options.faults.partitions || options.faults.crashes || options.faults.slowDisk) this.at(this.prng.int(100, 600), () => this.injectFault());
    this.at(options.faultPhaseMs, () => this.heal());
  }

  // ------------------------------------------------------------ running

  run(): SimResult {
    const endMs = this.options.faultPhaseMs + this.options.livenessBoundMs;
    let violation: Violation | null = null;
    const contractsBefore = CONTRACTS;
    setContracts(this.options.contracts);
    try {
      while (this.heap.size > 0) {
        const ev = this.heap.pop()!;
        if (ev.atMs > endMs) break;
        this.nowMs = ev.atMs;
        this.steps++;
        // A healthy seed takes ~10^4 events; a runaway (a message storm, a retry loop) is a bug to
        // report, not a hang.
        if (this.steps > STEPS_MAX) this.checker.fail('liveness', `runaway: more than ${STEPS_MAX} events by t=${this.nowMs.toFixed(1)} ms (a message storm?)`);
        ev.run();
        if (this.healed && this.converged()) break;
      }
      if (!this.converged()) this.checker.fail('liveness', this.livenessReport());
      else this.finalChecks();
    } catch (e) {
      if (e instanceof Violation) violation = e;
      else if (e instanceof ContractViolation) violation = new Violation('contract', e.message);
      else violation = new Violation('crash', e instanceof Error ? (e.stack ?? e.message) : String(e));
    } finally {
      setContracts(contractsBefore);
    }
    return {
      seed: this.options.seed,
      ok: violation === null,
      violation,
      steps: this.steps,
      simulatedMs: this.nowMs,
      committedSlots: this.checker.maxAppliedSlot,
      ackedWrites: this.checker.ackedWrites,
      expiredWrites: this.expiredWrites,
      sessions: this.sessionsRegistered,
      reads: this.checker.readsChecked,
      crashes: this.crashes,
      transfers: this.transfers,
      partitions: this.partitions,
      leaderChanges: this.leaderChanges,
      configsOutOfOrder: this.checker.configsOutOfOrder,
      notMemberDelivered: this.notMemberDelivered,
      removalsNoticed: this.removalsNoticed,
      trace: this.trace,
    };
  }

  private at(delayMs: number, run: () => void): void {
    this.heap.push({ atMs: this.nowMs + delayMs, order: this.order++, run });
  }

  /**
   * An event in a replica's process. While the process is paused (a GC pause, SIGSTOP) its
   * events wait, in order, until it resumes; then it sees them all at once with its clock moved on.
   */
  private atNode(node: SimNode, delayMs: number, run: () => void): void {
    const event = () => {
      if (node.pausedUntilMs > this.nowMs) this.heap.push({ atMs: node.pausedUntilMs, order: this.order++, run: event });
      else run();
    };
    this.at(delayMs, event);
  }

  private log(line: string): void {
    const entry = `${this.nowMs.toFixed(2).padStart(9)} ${line}`;
    if (this.traceAll) this.trace.push(entry);
    else {
      if (this.trace.length >= TRACE_RING) this.trace.shift();
      this.trace.push(entry);
    }
  }

  // ------------------------------------------------------------ replicas

  private bootNode(node: SimNode, restart: boolean): void {
    node.incarnation++;
    node.up = true;
    node.sm = restart && node.disk.snapshot ? node.disk.snapshot.sm.clone() : new SimStateMachine(node.sm.limits);
    node.pendingRequests.clear();
    node.pendingReads = [];
    const coreOptions = { ...this.options.core, id: node.id, members: this.members, plantedBug: this.options.plantedBug };
    const random = () => node.prng.next();
    node.core = new Replica(coreOptions, random, node.localNow(this.nowMs), restart ? node.disk.durableState() : undefined);
    this.log(`n${node.id} ${restart ? 'restarts' : 'boots'} (promised=${node.disk.promised}, ${node.disk.entries.length} entries)`);
    this.drain(node);
    const inc = node.incarnation;
    const tick = () => {
      if (!node.up || node.incarnation !== inc) return;
      const local = node.localNow(this.nowMs);
      node.core.tick(local, local); // the wall clock: the replica's own (drifting, offset) clock
      this.drain(node);
      this.atNode(node, TICK_MS, tick);
    };
    this.atNode(node, node.prng.int(1, TICK_MS), tick);
  }

  private crash(node: SimNode): void {
    node.up = false;
    this.crashes++;
    // Writes in flight: a random prefix of them reached the platter (the last one perhaps torn).
    const disk = node.disk;
    const keep = node.prng.int(0, disk.inflight.length);
    for (let i = 0; i < keep; i++) {
      const { op } = disk.inflight[i]!;
      const torn = i === keep - 1 && node.prng.chance(0.5);
      const entriesKept = torn ? node.prng.int(0, op.entries.length) : op.entries.length;
      disk.apply(op, entriesKept);
      if (op.promised !== null) this.checker.durablePromise(node.id, op.promised);
      this.checker.durable(node.id, op.entries.slice(0, entriesKept));
    }
    disk.inflight = [];
    this.log(`n${node.id} CRASH (kept ${keep} in-flight writes)`);
  }

  private drain(node: SimNode): void {
    for (;;) {
      const ready = node.core.takeReady();
      if (!ready) break;
      this.handleReady(node, ready);
    }
    // After every input: the configurations this replica acts on are the ones the chosen log prescribes.
    this.checker.replicaConfigs(node.id, node.core.configs, node.core.chosenSlot);
  }

  private handleReady(node: SimNode, ready: Ready): void {
    for (const op of ready.persist) this.diskWrite(node, op);
    // With the codec on, a leader holds its own batches by their encoding from here, as the runtime does.
    if (this.wire && node.core.isLeader) {
      for (const op of ready.persist) {
        for (const e of op.entries) {
          const encoded = leaderEncoding(e.value);
          if (encoded !== null) node.core.adoptEncoding(e.slot, e.ballot, encoded);
        }
      }
    }
    for (const msg of ready.send) {
      this.checker.replySent(node.id, msg);
      this.netSend(msg);
    }
    for (const c of ready.committed) this.apply(node, c.slot, c.value);
    for (const rc of ready.roleChanges) {
      this.log(`n${node.id} becomes ${rc.role} (ballot ${rc.ballot}, leader ${rc.leader ?? '-'})`);
      if (rc.role === 'leader') this.leaderChanges++;
    }
    for (const rej of ready.rejected) {
      for (const cmd of rej.commands) {
        const key = commandKey(cmd);
        if (node.pendingRequests.delete(key)) this.replyToClient(cmd.clientId, cmd.seq, { kind: 'rejected', hint: rej.leaderHint });
      }
    }
    for (const g of ready.reads) {
      node.pendingReads.push(g);
    }
    for (const ref of ready.readRefusals) this.replyRead(node, ref.readId, null, ref.leaderHint);
    if (ready.snapshotNeeded) this.shipSnapshot(ready.snapshotNeeded.from, node, ready.snapshotNeeded.slot);
    this.serveReads(node);
  }

  private diskWrite(node: SimNode, op: PersistOp): void {
    const disk = node.disk;
    const slow = disk.slowUntilMs > this.nowMs;
    const latency = slow ? node.prng.int(5, 60) : node.prng.next() * 1.5 + 0.1;
    const last = disk.inflight[disk.inflight.length - 1];
    const doneAtMs = Math.max(this.nowMs + latency, last ? last.doneAtMs : 0);
    disk.inflight.push({ op, doneAtMs });
    const inc = node.incarnation;
    this.atNode(node, doneAtMs - this.nowMs, () => {
      if (!node.up || node.incarnation !== inc) return;
      const head = disk.inflight.shift();
      if (!head || head.op !== op) throw new Error('sim disk: completions out of order');
      disk.apply(op);
      if (op.promised !== null) this.checker.durablePromise(node.id, op.promised);
      this.checker.durable(node.id, op.entries);
      node.core.persisted(op.seq, node.localNow(this.nowMs));
      this.drain(node);
    });
  }

  private apply(node: SimNode, slot: Slot, value: import('../core/types.js').Value): void {
    const sm = node.sm;
    let outcome = '';
    if (value.kind === 'batch') {
      sm.sessions.advance(value.timeMs);
      // The planted session bug runs commands of unknown sessions, as the pre-registration rule did.
      const unknownRuns = this.options.sessionBug === 'execute-unknown-sessions';
      for (const cmd of value.commands) {
        this.checker.proposedCheck(cmd);
        const key = commandKey(cmd);
        if (isRegisterCommand(cmd)) {
          const id = sm.sessions.register();
          outcome += `${key}=s${id};`;
          if (node.pendingRequests.delete(key)) this.replyToClient(cmd.clientId, cmd.seq, { kind: 'ok', result: id });
          continue;
        }
        const checked = sm.sessions.check(cmd);
        const s = unknownRuns && checked.kind === 'expired' ? EXECUTE_ANYWAY : checked;
        let result: number;
        if (s.kind === 'execute') {
          sm.executedCount++;
          result = sm.executedCount;
          if (sm.executed.has(key)) this.checker.fail('at-most-once', `n${node.id} executed ${key} twice (slot ${slot})`);
          sm.executed.set(key, result);
          sm.sessions.record(cmd, result);
          outcome += `${key}=${result};`;
        } else if (s.kind === 'duplicate') {
          result = s.result;
          outcome += `${key}~;`;
        } else {
          // Stale or expired: not executed (SESSION_EXPIRED to the client, which gives up on it).
          outcome += `${key}!;`;
          if (node.pendingRequests.delete(key)) this.replyToClient(cmd.clientId, cmd.seq, { kind: 'expired' });
          continue;
        }
        if (node.pendingRequests.delete(key)) this.replyToClient(cmd.clientId, cmd.seq, { kind: 'ok', result });
      }
    }
    sm.hash = fnv(sm.hash, valueKey(value) + '/' + outcome);
    this.checker.applied(node.id, slot, valueKey(value), sm.hash);
    this.maybeSnapshot(node, slot);
    if (this.traceAll) this.log(`n${node.id} applies ${slot}: ${describeValue(value)}`);
  }

  /** Every snapshotEverySlots applied slots: a durable snapshot, then the log below it (less a margin) is released. */
  private maybeSnapshot(node: SimNode, slot: Slot): void {
    const every = this.options.snapshotEverySlots;
    if (every <= 0 || slot - (node.disk.snapshot?.slot ?? 0) < every) return;
    node.disk.snapshot = { slot, configs: node.core.configs, sm: node.sm.clone() };
    const compactTo = slot - this.options.compactionMarginSlots;
    if (compactTo > 0) node.core.compact(compactTo);
    if (this.traceAll) this.log(`n${node.id} snapshot at ${slot}, log released below ${compactTo + 1}`);
  }

  /** A lagging replica fetches `source`'s snapshot over the (faulty) network. */
  private shipSnapshot(sourceId: ReplicaId, target: SimNode, slot: Slot): void {
    const source = this.nodes[sourceId - 1]!;
    const snap = source.up ? source.disk.snapshot : null;
    if (!snap || snap.slot < slot || this.blocked.has(`${sourceId}>${target.id}`)) return; // it asks again later
    const copy: SimSnapshot = { slot: snap.slot, configs: snap.configs.map((e) => ({ fromSlot: e.fromSlot, members: [...e.members] })), sm: snap.sm.clone() };
    const inc = target.incarnation;
    this.atNode(target, 5 + this.prng.next() * 20, () => {
      if (!target.up || target.incarnation !== inc) return;
      if (copy.slot <= target.core.status.appliedPrefix) return;
      target.disk.snapshot = copy; // durable before it is relied on
      target.sm = copy.sm.clone();
      target.core.installSnapshot(copy.slot, copy.configs, target.localNow(this.nowMs));
      this.log(`n${target.id} installs n${sourceId}'s snapshot of slot ${copy.slot}`);
      this.drain(target);
      this.serveReads(target);
    });
  }

  private serveReads(node: SimNode): void {
    if (node.pendingReads.length === 0) return;
    const applied = node.core.status.appliedPrefix;
    const still: typeof node.pendingReads = [];
    for (const g of node.pendingReads) {
      if (applied >= g.slot) this.replyRead(node, g.readId, node.sm.executedCount, null);
      else still.push(g);
    }
    node.pendingReads = still;
  }

  // ------------------------------------------------------------ network

  private netSend(msg: Message): void {
    const f = this.options.faults;
    const faulty = !this.healed;
    if (this.blocked.has(`${msg.from}>${msg.to}`)) return;
    if (faulty && this.prng.chance(f.loss)) return;
    const copies = faulty && this.prng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let delay = 0.2 + this.prng.next() * f.jitterMs;
      if (faulty && this.prng.chance(f.delaySpike)) delay += this.prng.int(100, 1500);
      const wired = this.wire ? this.wire(msg) : msg;
      this.atNode(this.nodes[msg.to - 1]!, delay, () => this.deliver(wired));
    }
  }

  private deliver(msg: Message): void {
    const node = this.nodes[msg.to - 1]!;
    if (!node.up) return;
    if (this.blocked.has(`${msg.from}>${msg.to}`)) return; // a partition that formed in flight
    if (this.traceAll) this.log(`deliver ${describeMessage(msg)}`);
    const before = msg.type === 'notMember' ? node.core.removalNotice() : null;
    node.core.receive(msg, node.localNow(this.nowMs));
    if (msg.type === 'notMember') {
      this.notMemberDelivered++;
      const after = node.core.removalNotice();
      if (after !== null && after !== before) {
        this.removalsNoticed++;
        this.checker.removalNotice(node.id, after);
        this.log(`n${node.id} told of its removal by n${msg.from}: [${after.members.join(',')}] from slot ${after.configFromSlot}`);
      }
    }
    this.drain(node);
  }

  // ------------------------------------------------------------ faults

  private injectFault(): void {
    if (this.healed) return;
    const f = this.options.faults;
    const kinds: string[] = [];
    if (f.partitions) kinds.push('partition');
    if (f.crashes) kinds.push('crash');
    if (f.slowDisk) kinds.push('slowDisk');
    if (f.pauses) kinds.push('pause');
    if (f.reconfig && this.members.length >= 5) kinds.push('reconfig');
    if (f.transfers === true) kinds.push('transfer');
    const kind = this.prng.pick(kinds);
    const upNodes = this.nodes.filter((n) => n.up);
    if (kind === 'crash') {
      const node = upNodes.length > 0 ? this.prng.pick(upNodes) : null;
      if (node) {
        this.crash(node);
        this.at(this.prng.int(50, 1500), () => {
          if (!node.up && !this.healed) this.bootNode(node, true);
        });
      }
    } else if (kind === 'partition') {
      this.partition();
    } else if (kind === 'reconfig') {
      // The leader (if any) proposes a new member set of 3..N replicas; one change at a time
      // (the core refuses while one is pending, as it should).
      const leader = this.nodes.find((n) => n.up && n.core.status.role === 'leader' && n.pausedUntilMs <= this.nowMs);
      if (leader) {
        const size = this.prng.int(3, this.members.length);
        const next = [...this.members].sort(() => this.prng.next() - 0.5).slice(0, size).sort((a, b) => a - b);
        const refusal = leader.core.proposeConfig(next, leader.localNow(this.nowMs));
        this.log(`n${leader.id} RECONFIG to [${next.join(',')}]${refusal ? ` refused: ${refusal}` : ''}`);
        this.drain(leader);
      }
    } else if (kind === 'transfer') {
      const leader = this.nodes.find((n) => n.up && n.core.status.role === 'leader' && n.pausedUntilMs <= this.nowMs);
      if (leader) {
        const target = this.prng.pick(this.members.filter((m) => m !== leader.id));
        const refusal = leader.core.transferLeadership(target, leader.localNow(this.nowMs));
        this.transfers++;
        this.log(`n${leader.id} TRANSFER to n${target}${refusal ? ` refused: ${refusal}` : ''}`);
        this.drain(leader);
      }
    } else if (kind === 'pause') {
      const node = upNodes.length > 0 ? this.prng.pick(upNodes) : null;
      if (node) {
        node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + this.prng.int(200, 2000));
        this.log(`n${node.id} PAUSED until ${node.pausedUntilMs}`);
      }
    } else {
      const node = this.prng.pick(this.nodes);
      node.disk.slowUntilMs = this.nowMs + this.prng.int(100, 1000);
      this.log(`n${node.id} disk slow until ${node.disk.slowUntilMs}`);
    }
    this.at(this.prng.int(100, 800), () => this.injectFault());
  }

  private partition(): void {
    this.partitions++;
    const shuffled = [...this.members].sort(() => this.prng.next() - 0.5);
    const cut = this.prng.int(1, this.members.length - 1);
    const side = new Set(shuffled.slice(0, cut));
    const oneWay = this.prng.chance(0.3);
    const added: string[] = [];
    for (const a of this.members) {
      for (const b of this.members) {
        if (a === b || side.has(a) === side.has(b)) continue;
        if (oneWay && !side.has(a)) continue; // only side -> rest is cut
        const key = `${a}>${b}`;
        if (!this.blocked.has(key)) {
          this.blocked.add(key);
          added.push(key);
        }
      }
    }
    this.log(`PARTITION ${[...side].join(',')} | rest${oneWay ? ' (one-way)' : ''}`);
    this.at(this.prng.int(200, 2000), () => {
      for (const k of added) this.blocked.delete(k);
      this.log(`partition healed: ${[...side].join(',')}`);
    });
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    for (const node of this.nodes) {
      node.disk.slowUntilMs = 0;
      if (!node.up) this.bootNode(node, true);
    }
    this.log('HEAL: all partitions removed, all replicas up; liveness phase begins');
  }

  // ------------------------------------------------------------ clients

  private clientStep(client: SimClient): void {
    const inFault = !this.healed;
    // Retry whatever timed out.
    for (const op of client.outstanding.values()) {
      if (this.nowMs >= op.deadlineMs) {
        // A silent target is abandoned; after a refusal, op.target already holds the next try.
        if (!op.refused) op.target = this.pickTarget(client, op.target);
        op.refused = false;
        this.sendClientRequest(client, op);
      }
    }
    if (client.read && this.nowMs >= client.read.deadlineMs) client.read = null; // abandoned: no answer to check
    // New commands need a session: register one (again, after it expired), through the log.
    if (inFault && client.session === 0) {
      const reg = client.registration;
      if (reg === null || this.nowMs >= reg.deadlineMs) this.register(client, reg);
    }
    if (inFault && client.session !== 0 && client.outstanding.size < this.options.clientInflight) {
      const seq = client.nextSeq++;
      const payload = new Uint8Array(4);
      new DataView(payload.buffer).setUint32(0, client.prng.nextU32());
      const command: Command = { clientId: client.session, seq, floor: client.floor(), payload };
      // Mostly the replica we believe leads; sometimes any replica, as a load-balanced client would.
      const target = client.prng.chance(0.2) ? client.prng.pick(this.members) : client.leaderGuess;
      const op: ClientOp = { seq, command, target, deadlineMs: 0, refused: false };
      client.outstanding.set(seq, op);
      this.checker.proposed(command);
      this.sendClientRequest(client, op);
    }
    if (inFault && !client.read && this.options.readMode !== 'none' && client.prng.chance(0.3)) {
      const mode = this.options.readMode === 'mixed' ? client.prng.pick(['linearizable', 'lease'] as const) : this.options.readMode;
      // Readers are load-balanced: half of them ask any replica (a stale ex-leader included).
      const target = client.prng.chance(0.5) ? client.prng.pick(this.members) : client.leaderGuess;
      const read: ClientRead = { readId: this.nextReadId++, invokedAtMs: this.nowMs, target, deadlineMs: this.nowMs + CLIENT_TIMEOUT_MS, mode };
      client.read = read;
      this.readOwner.set(read.readId, client.id);
      this.checker.readInvoked(read.readId, this.nowMs);
      this.sendClientRead(client, read);
    }
    const think = Math.max(1, client.prng.next() * 2 * this.options.clientThinkMs);
    if (inFault || client.outstanding.size > 0) this.at(think, () => this.clientStep(client));
  }

  /**
   * Sends a register command (a new one each try: an unanswered one may still register a session,
   * which then idles until it expires or is evicted, as a real client's lost registration would).
   */
  private register(client: SimClient, previous: ClientRegistration | null): void {
    const nonce = this.nextRegisterNonce++;
    const command: Command = { clientId: REGISTER_CLIENT_ID, seq: nonce, floor: 0, payload: REGISTER_PAYLOAD };
    const target = previous === null ? client.leaderGuess : this.pickTarget(client, previous.target);
    const reg: ClientRegistration = { command, target, deadlineMs: this.nowMs + CLIENT_TIMEOUT_MS };
    client.registration = reg;
    this.clientByNonce.set(nonce, client);
    this.checker.proposed(command);
    const node = this.nodes[target - 1]!;
    this.log(`client ${client.id} registers (${commandKey(command)}) at n${node.id}`);
    this.atNode(node, CLIENT_LATENCY_MS, () => {
      if (!node.up) return;
      node.pendingRequests.set(commandKey(command), { clientId: REGISTER_CLIENT_ID, seq: nonce });
      const local = node.localNow(this.nowMs);
      node.core.propose([command], local, local);
      this.drain(node);
    });
  }

  private pickTarget(client: SimClient, previous: ReplicaId): ReplicaId {
    if (client.leaderGuess !== previous) return client.leaderGuess;
    const others = this.members.filter((m) => m !== previous);
    client.leaderGuess = client.prng.pick(others);
    return client.leaderGuess;
  }

  private sendClientRequest(client: SimClient, op: ClientOp): void {
    op.deadlineMs = this.nowMs + CLIENT_TIMEOUT_MS;
    const command: Command = { ...op.command, floor: client.floor() };
    op.command = command;
    const node = this.nodes[op.target - 1]!;
    this.log(`client ${client.id} sends ${commandKey(command)} to n${node.id}`);
    this.atNode(node, CLIENT_LATENCY_MS, () => {
      if (!node.up) return;
      const key = commandKey(command);
      node.pendingRequests.set(key, { clientId: client.id, seq: command.seq });
      // Already executed here (a retry of something that committed): answer from the session.
      const cached = node.sm.sessions.check(command);
      if (cached.kind === 'duplicate' && node.core.status.role === 'leader') {
        node.pendingRequests.delete(key);
        this.replyToClient(command.clientId, command.seq, { kind: 'ok', result: cached.result });
        return;
      }
      const local = node.localNow(this.nowMs);
      node.core.propose([command], local, local);
      this.drain(node);
    });
  }

  private replyToClient(clientId: number, seq: number, reply: ClientReply): void {
    const client = clientId === REGISTER_CLIENT_ID ? this.clientByNonce.get(seq) : this.clientBySession.get(clientId);
    if (client === undefined) return; // a session no client holds (a lost registration's)
    this.at(CLIENT_LATENCY_MS, () => {
      this.log(`client ${client.id} gets ${reply.kind === 'ok' ? `ok ${reply.result}` : reply.kind === 'rejected' ? `rejected (hint ${reply.hint})` : 'SESSION_EXPIRED'} for ${clientId}.${seq}`);
      if (clientId === REGISTER_CLIENT_ID) return this.registrationReply(client, seq, reply);
      const op = client.outstanding.get(seq);
      if (!op) return; // answered already (a duplicate reply)
      if (reply.kind === 'expired') {
        // Not executed now; an earlier try may have been: the outcome stays unknown, the client
        // gives up on it and registers a new session for what comes next.
        client.outstanding.delete(seq);
        this.expiredWrites++;
        if (op.command.clientId === client.session) client.session = 0;
        return;
      }
      if (reply.kind === 'ok') {
        client.outstanding.delete(seq);
        this.checker.acked(commandKey(op.command), reply.result, this.nowMs);
      } else {
        if (reply.hint !== null) client.leaderGuess = reply.hint;
        op.deadlineMs = this.nowMs + 20; // certain failure: retry soon, elsewhere
        op.refused = true;
        if (reply.hint === null || reply.hint === op.target) op.target = this.pickTarget(client, op.target);
        else op.target = reply.hint;
      }
    });
  }

  private registrationReply(client: SimClient, nonce: number, reply: ClientReply): void {
    const reg = client.registration;
    if (reg === null || reg.command.seq !== nonce) return; // an abandoned try: its session just idles
    if (reply.kind === 'ok') {
      client.registration = null;
      client.session = reply.result;
      this.sessionsRegistered++;
      this.clientBySession.set(reply.result, client);
    } else if (reply.kind === 'rejected') {
      if (reply.hint !== null) client.leaderGuess = reply.hint;
      reg.deadlineMs = this.nowMs + 20; // certain failure: retry soon
    }
  }

  private sendClientRead(client: SimClient, read: ClientRead): void {
    const node = this.nodes[read.target - 1]!;
    this.atNode(node, CLIENT_LATENCY_MS, () => {
      if (!node.up) return;
      node.core.read(read.readId, read.mode, node.localNow(this.nowMs));
      this.drain(node);
    });
  }

  private replyRead(_node: SimNode, readId: number, observed: number | null, hint: ReplicaId | null): void {
    const clientId = this.readOwner.get(readId);
    if (clientId === undefined) return;
    const client = this.clients[clientId - 1000]!;
    this.at(CLIENT_LATENCY_MS, () => {
      const read = client.read;
      if (!read || read.readId !== readId) return;
      client.read = null;
      this.readOwner.delete(readId);
      if (observed === null) {
        if (hint !== null) client.leaderGuess = hint;
        return;
      }
      this.checker.readCompleted(readId, observed, read.mode);
    });
  }

  // ------------------------------------------------------------ end of run

  private converged(): boolean {
    if (!this.healed) return false;
    for (const c of this.clients) if (c.outstanding.size > 0) return false;
    const target = this.checker.maxChosenSlot;
    // Replicas removed by a configuration change need not follow the log any more.
    const members = this.finalMembers();
    for (const n of members) {
      if (!n.up) return false;
      if (n.core.status.appliedPrefix < target) return false;
    }
    const leaders = members.filter((n) => n.core.status.role === 'leader');
    return leaders.length === 1;
  }

  private finalMembers(): SimNode[] {
    const ids = this.checker.latestMembers;
    return this.nodes.filter((n) => ids.includes(n.id));
  }

  private livenessReport(): string {
    const nodes = this.nodes.map((n) => {
      const s = n.core.status;
      return `n${n.id}: ${n.up ? s.role : 'down'} applied=${s.appliedPrefix} promised=${s.promised} leader=${s.leader ?? '-'}`;
    });
    const pending = this.clients.map((c) => `${c.id}:[${[...c.outstanding.keys()].join(',')}]`).join(' ');
    return `not converged ${this.options.livenessBoundMs} ms after healing; max chosen slot ${this.checker.maxChosenSlot}; ${nodes.join('; ')}; outstanding ${pending}`;
  }

  private finalChecks(): void {
    for (const n of this.finalMembers()) this.checker.finalNode(n.id, n.sm.executed);
  }
}

const EXECUTE_ANYWAY = { kind: 'execute' as const };

type ClientReply = { kind: 'ok'; result: number } | { kind: 'rejected'; hint: ReplicaId | null } | { kind: 'expired' };

function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function runSeed(options: SimOptions, traceAll = false, wire: ((m: Message) => Message) | null = null): SimResult {
  return new Simulation(options, traceAll, wire).run();
}
