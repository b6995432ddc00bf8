// The nemesis: faults on a seeded schedule, one at a time, each healed before the next.
//
// A cycle visits every enabled fault kind once in a seeded random order, so even a short run
// sees each of them; between faults the cluster gets a quiet spell. The schedule (which kind,
// how long, the random draws) derives from the seed; which replica leads at a given moment does
// not (real processes, real time), so a seed replays the schedule, not the exact interleaving.
//
// Kinds:
//   kill        SIGKILL a replica (the leader half of the time), restart it when the fault ends
//   pause       SIGSTOP a replica (the leader half of the time), SIGCONT at the end: it wakes
//               up with stale beliefs about its leadership and lease
//   partition   one of: a random minority cut off from the majority; the leader isolated; the
//               leader unable to send (one-way: it still hears the others); a bridge (5 replicas)
//   delay       every peer link delays its bytes by 20..200 ms
//   loss        every peer link resets its connection on 2..10% of chunks (burst loss)
//   transfer    a leadership transfer to a random other member (POST /v1/leader/transfer)
//   members     a membership change through the leader (POST/DELETE /v1/members): add a fresh
//               replica (a new id started with --join), remove a member (the leader, at times),
//               or replace one (add a new one, then remove an old one). Membership stays within
//               [initial size, initial size + 2]; with one fault at a time every other member is
//               up, and the runtime refuses a removal that leaves no live quorum (409). A removed
//               replica keeps running (clients may still reach it) until the fault ends. After
//               the change, or a failed one, the harness learns the configuration from the leader.
//               Or remove a member while it is down (killed first), and at the end of the fault,
//               kept past the window in which the others still send it commit notices, start it
//               again: it comes back taking itself for a member and campaigns, and must learn
//               that it is not one (a member's notMember answer: status `removal`) within 15 s
//               and before it leads; else the run fails. Then it is stopped.
//   disk        a replica's disk fills (ENOSPC on writes) or fails (EIO on fsync; the write
//               reached the page cache): through the SYNOD_TEST_DISK_FAULT hook. The replica must
//               stop voting; at the end the fault clears and the replica is restarted (the
//               operator's move) and must catch up.

import type { Prng } from '../../src/sim/prng.js';
import type { Cluster } from './cluster.js';
import { httpRequest } from './cluster.js';
import type { Network } from './proxy.js';
import { sleep } from './workload.js';

export const FAULT_KINDS = ['kill', 'pause', 'partition', 'delay', 'loss', 'transfer', 'members', 'disk'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultWindow {
  kind: FaultKind;
  detail: string;
  startMs: number;
  endMs: number;
}

export interface NemesisOptions {
  cluster: Cluster;
  network: Network;
  prng: Prng;
  kinds: readonly FaultKind[];
  nowMs: () => number;
  /** Quiet spell before each fault. */
  quietMsMin: number;
  quietMsMax: number;
  /** How long a fault lasts. */
  faultMsMin: number;
  faultMsMax: number;
  /** How long the members still send a removed replica commit notices (20 longest election timeouts). */
  removedNoticeWindowMs: number;
  log: (line: string) => void;
}

export class Nemesis {
  readonly windows: FaultWindow[] = [];
  /** What the run must fail for: the nemesis saw the cluster misbehave (a removed replica that never learned it). */
  readonly problems: string[] = [];
  /** Replicas removed while down and started again past their notice window: how each learned it (`told` or `log`). */
  readonly removedReturns: Array<{ id: number; how: 'told' | 'log'; ms: number }> = [];
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly o: NemesisOptions) {
    if (o.kinds.length === 0) throw new Error('the nemesis needs at least one fault kind');
  }

  start(): void {
    this.loop = this.run();
  }

  /** Ends the fault under way (healing it) and the schedule. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  private async nap(ms: number): Promise<void> {
    if (this.stopping) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = null;
  }

  private async run(): Promise<void> {
    const { prng } = this.o;
    const cyclesMax = 100_000;
    for (let cycle = 0; cycle < cyclesMax && !this.stopping; cycle++) {
      const order = [...this.o.kinds];
      for (let i = order.length - 1; i > 0; i--) {
        const j = prng.int(0, i);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const kind of order) {
        await this.nap(prng.int(this.o.quietMsMin, this.o.quietMsMax));
        if (this.stopping) return;
        await this.fault(kind, prng.int(this.o.faultMsMin, this.o.faultMsMax));
      }
    }
  }

  private async pickTarget(): Promise<{ id: number; leader: boolean }> {
    const { cluster, prng } = this.o;
    const wantLeader = prng.chance(0.5);
    const random = prng.pick(cluster.ids);
    const leader = wantLeader ? await cluster.leader() : null;
    return leader === null ? { id: random, leader: false } : { id: leader, leader: true };
  }

  /** One membership change (see the header); `heal` stops a removed replica. */
  private async changeMembers(): Promise<MembershipChange> {
    const { cluster, prng } = this.o;
    const members = cluster.ids;
    const variants: string[] = [];
    if (members.length < cluster.initialSize + 2 && cluster.hasSpare()) variants.push('add');
    if (members.length > cluster.initialSize) variants.push('remove', 'remove-down');
    if (cluster.hasSpare()) variants.push('replace');
    const leader = await cluster.leader();
    if (variants.length === 0 || leader === null) return { detail: `membership change skipped: ${leader === null ? 'no leader' : 'no spare replica slot'}`, heal: async () => {} };
    const v = prng.pick(variants);
    const steps: string[] = [];
    let ok = true;
    let added = 0;
    if (v === 'add' || v === 'replace') {
      const spare = cluster.takeSpare()!;
      added = spare.id;
      cluster.start(spare.id);
      const a = await this.memberRequest('POST', '/v1/members', JSON.stringify({ id: spare.id, peer: cluster.peerAddressOf(spare.id) }));
      steps.push(`add ${spare.id}: ${a.status}${a.status === 200 ? '' : ` ${a.body.slice(0, 120)}`}`);
      ok = a.status === 200;
    }
    if (v === 'remove-down') return this.removeWhileDown();
    if ((v === 'remove' || v === 'replace') && ok) {
      const current = (await cluster.reconcile()) ?? cluster.ids;
      const lead = await cluster.leader();
      // Half the time the leader itself (it hands over once the change applies).
      const candidates = current.filter((id) => id !== added);
      const victim = lead !== null && candidates.includes(lead) && prng.chance(0.5) ? lead : prng.pick(candidates);
      const a = await this.memberRequest('DELETE', `/v1/members?id=${victim}`, '');
      steps.push(`remove ${victim}${victim === lead ? ' (leader)' : ''}: ${a.status}${a.status === 200 ? '' : ` ${a.body.slice(0, 120)}`}`);
    }
    // Whatever happened (a timeout may still take effect later), learn the configuration; a
    // replica left out keeps running until the fault ends (heal), then is stopped.
    const after = await this.reconcileSoon(false);
    return {
      detail: `members ${v}: ${steps.join('; ')}; members now ${after?.join(',') ?? '?'}`,
      heal: async () => {
        await this.reconcileSoon(true);
      },
    };
  }

  /** The remove-down variant (see the header). */
  private async removeWhileDown(): Promise<MembershipChange> {
    const { cluster, prng } = this.o;
    const current = (await cluster.reconcile()) ?? cluster.ids;
    const lead = await cluster.leader();
    const victim = prng.pick(current.filter((id) => id !== lead));
    await cluster.kill(victim);
    const downAtMs = this.o.nowMs();
    const a = await this.memberRequest('DELETE', `/v1/members?id=${victim}`, '');
    const after = await this.reconcileSoon(false); // a refused removal starts it again here
    const removed = a.status === 200 && after !== null && !after.includes(victim);
    return {
      detail: `members remove-down: SIGKILL ${victim}, remove it: ${a.status}${a.status === 200 ? '' : ` ${a.body.slice(0, 120)}`}; members now ${after?.join(',') ?? '?'}`,
      heal: async () => {
        if (removed) {
          // Past the window (plus a margin), so that no member sends it commit notices any more.
          const waitMs = downAtMs + this.o.removedNoticeWindowMs + 2_000 - this.o.nowMs();
          if (waitMs > 0) await sleep(waitMs);
          cluster.start(victim);
          await this.checkRemovedReturn(victim);
        }
        await this.reconcileSoon(true);
      },
    };
  }

  /** A removed replica started again must learn that it is no member, and must not lead meanwhile. */
  private async checkRemovedReturn(id: number): Promise<void> {
    const { cluster } = this.o;
    const startMs = this.o.nowMs();
    for (;;) {
      const ms = Math.round(this.o.nowMs() - startMs);
      const st = await cluster.status(id);
      if (st?.role === 'leader') {
        this.problems.push(`replica ${id}, removed while down, leads after its return (${ms} ms)`);
        return;
      }
      if (st?.removal) {
        this.removedReturns.push({ id, how: 'told', ms });
        this.o.log(`nemesis: replica ${id}, removed while down, was told by replica ${st.removal.by} after ${ms} ms`);
        return;
      }
      if (st && st.members.find((m) => m.id === id)?.member === false) {
        this.removedReturns.push({ id, how: 'log', ms });
        this.o.log(`nemesis: replica ${id}, removed while down, learned it from the log after ${ms} ms`);
        return;
      }
      if (ms > 15_000) {
        this.problems.push(`replica ${id}, removed while down, still takes itself for a member ${ms} ms after its return (role ${st?.role ?? '?'})`);
        return;
      }
      await sleep(100);
    }
  }

  /** Learn the configuration from the leader (retrying while there is none); with `stop`, stop non-members. */
  private async reconcileSoon(stop: boolean): Promise<number[] | null> {
    const { cluster } = this.o;
    for (let i = 0; i < 20; i++) {
      const st = await cluster.leaderStatus();
      if (st) {
        const members = st.members.filter((m) => m.member).map((m) => m.id);
        if (stop) return cluster.reconcile();
        cluster.members = members;
        for (const id of members) if (!cluster.running(id)) cluster.start(id);
        return members;
      }
      await sleep(250);
    }
    return null;
  }

  /** A membership request to the leader (the change may take a while: catch-up, then the new configuration must govern). */
  private async memberRequest(method: string, path: string, body: string): Promise<{ status: number; body: string }> {
    const { cluster } = this.o;
    for (let attempt = 0; attempt < 5; attempt++) {
      const leader = await cluster.leader();
      if (leader === null) {
        await sleep(500);
        continue;
      }
      const a = await httpRequest(cluster.endpoint(leader), method, path, body, MEMBERSHIP_TIMEOUT_MS).catch((e: Error) => ({ status: 0, body: e.message }));
      // 503: not the leader any more (nothing was done); try the new one.
      if (a.status !== 503) return a;
      await sleep(300);
    }
    return { status: 503, body: 'no leader took the request' };
  }

  private async fault(kind: FaultKind, durationMs: number): Promise<void> {
    const { cluster, network, prng } = this.o;
    const startMs = this.o.nowMs();
    let detail = '';
    let heal: () => Promise<void> = async () => {};
    switch (kind) {
      case 'kill': {
        const t = await this.pickTarget();
        detail = `SIGKILL replica ${t.id}${t.leader ? ' (leader)' : ''}`;
        await cluster.kill(t.id);
        heal = async () => cluster.start(t.id);
        break;
      }
      case 'pause': {
        const t = await this.pickTarget();
        detail = `SIGSTOP replica ${t.id}${t.leader ? ' (leader)' : ''}`;
        cluster.pause(t.id);
        heal = async () => cluster.resume(t.id);
        break;
      }
      case 'partition': {
        const ids = cluster.ids;
        const leader = await cluster.leader();
        const variants = ['minority', 'isolate-leader', 'leader-cannot-send'];
        if (ids.length >= 5) variants.push('bridge');
        const v = prng.pick(variants);
        if (v === 'minority' || leader === null) {
          const shuffled = [...ids].sort(() => prng.next() - 0.5);
          const minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2));
          const majority = ids.filter((id) => !minority.includes(id));
          network.partition(minority, majority);
          detail = `partition ${minority.join(',')} | ${majority.join(',')}`;
        } else if (v === 'isolate-leader') {
          network.partition([leader], ids.filter((id) => id !== leader));
          detail = `partition: leader ${leader} isolated`;
        } else if (v === 'leader-cannot-send') {
          for (const id of ids) if (id !== leader) network.set(leader, id, { blocked: true });
          detail = `one-way: leader ${leader} cannot send (still hears the others)`;
        } else {
          // Bridge: two halves that only the bridge replica connects.
          const others = ids.filter((id) => id !== leader);
          const bridge = prng.pick(others);
          const rest = others.filter((id) => id !== bridge);
          const half = Math.floor(rest.length / 2);
          const a = [leader, ...rest.slice(0, half)];
          const b = rest.slice(half);
          network.partition(a, b);
          detail = `bridge ${bridge}: ${a.join(',')} | ${b.join(',')}`;
        }
        heal = async () => network.heal();
        break;
      }
      case 'delay': {
        const ms = prng.int(20, 200);
        for (const a of cluster.ids) for (const b of cluster.ids) if (a !== b) network.set(a, b, { delayMs: ms });
        detail = `delay ${ms} ms on every link`;
        heal = async () => network.heal();
        break;
      }
      case 'loss': {
        const rate = prng.int(2, 10) / 100;
        for (const a of cluster.ids) for (const b of cluster.ids) if (a !== b) network.set(a, b, { lossRate: rate });
        detail = `loss: reset on ${Math.round(rate * 100)}% of chunks, every link`;
        heal = async () => network.heal();
        break;
      }
      case 'members': {
        const r = await this.changeMembers();
        detail = r.detail;
        heal = r.heal;
        break;
      }
      case 'disk': {
        const t = await this.pickTarget();
        const mode = prng.chance(0.5) ? 'ENOSPC' : 'EIO';
        cluster.setDiskFault(t.id, mode);
        detail = `disk ${mode === 'ENOSPC' ? 'full (ENOSPC on writes)' : 'failing (EIO on fsync)'} on replica ${t.id}${t.leader ? ' (leader)' : ''}`;
        heal = async () => {
          cluster.setDiskFault(t.id, null);
          // The replica stopped itself when its storage failed; the operator restarts it.
          if (cluster.running(t.id)) {
            await cluster.kill(t.id);
            await sleep(100); // past the hook's poll of the control file (a fresh process reads it at start anyway)
            cluster.start(t.id);
          }
        };
        break;
      }
      case 'transfer': {
        const leader = await cluster.leader();
        if (leader === null) {
          detail = 'transfer skipped: no leader';
          break;
        }
        const to = prng.pick(cluster.ids.filter((id) => id !== leader));
        const a = await httpRequest(cluster.endpoint(leader), 'POST', `/v1/leader/transfer?to=${to}`, '', 2_000).catch((e: Error) => ({ status: 0, body: e.message }));
        detail = `leader transfer ${leader} -> ${to}: ${a.status}`;
        durationMs = Math.min(durationMs, 1_000);
        break;
      }
    }
    this.o.log(`nemesis: ${detail} for ${durationMs} ms`);
    await this.nap(durationMs);
    await heal();
    const endMs = this.o.nowMs();
    this.windows.push({ kind, detail, startMs, endMs });
    this.o.log(`nemesis: healed ${kind}`);
  }
}

const MEMBERSHIP_TIMEOUT_MS = 40_000;

export interface MembershipChange {
  detail: string;
  heal: () => Promise<void>;
}

export function parseKinds(text: string): FaultKind[] {
  if (text === 'all') return [...FAULT_KINDS];
  const kinds = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of kinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown nemesis ${JSON.stringify(k)}: use ${FAULT_KINDS.join(', ')} or all`);
  return kinds as FaultKind[];
}

export { sleep };
