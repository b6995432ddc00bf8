// Stage timings along the write path, for `synod bench --trace`, measured WITHOUT hooks inside
// src/runtime: the tracer wraps methods of one live SynodReplica's collaborators (its core, log
// store, transport and state machine) and of the replica itself. Off means not installed: zero
// cost. The proper home is diagnostics_channel events in the runtime (proposed in
// docs/performance.md); until then this reaches into private fields by name, and if one is
// renamed the tracer says so (TraceUnavailableError) instead of measuring the wrong thing.
//
// Stages (per command unless noted):
//   clientRead  one binary-protocol socket read decoded and its requests started, per request
//               (diagnostics_channel synod:kv:binary:read, published by src/kv/binary-server.ts)
//   batchWait   propose() called -> the command handed to core.propose() (the once-per-turn flush)
//   proposeCpu  duration of core.propose(batch)                         (per batch)
//   readyCpu    duration of core.takeReady()                            (per call returning a Ready)
//   persist     logStore.commit() called -> resolved (write + fdatasync) (per group commit)
//   sendCpu     duration of transport.send(frame)                       (per frame)
//   quorumWait  a slot first in Ready.persist (accepted here) -> in Ready.committed (per slot)
//   apply       duration of stateMachine.apply(command)
//   server      propose() called -> its promise settles (the replica's whole share)
//   replyCpu    one answer encoded and queued for its socket (synod:kv:binary:reply)
//   socketWrite one coalesced socket.write of answers, per write (synod:kv:binary:write)
// Batch shapes: commands per core.propose() batch, commands per slot, records per group commit.

import * as diagnostics from 'node:diagnostics_channel';
import * as hdr from 'hdr-histogram-js';
import type { SynodReplica } from '../runtime/replica.js';
import type { ProposalCallback } from '../runtime/pending.js';

export const TRACE_STAGES = ['clientRead', 'batchWait', 'proposeCpu', 'readyCpu', 'persist', 'sendCpu', 'quorumWait', 'apply', 'server', 'replyCpu', 'socketWrite'] as const;
export type TraceStage = (typeof TRACE_STAGES)[number];
export const TRACE_SHAPES = ['commandsPerBatch', 'commandsPerSlot', 'recordsPerCommit'] as const;
export type TraceShape = (typeof TRACE_SHAPES)[number];

export interface StageQuantiles {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  meanUs: number;
}
export interface ShapeSummary {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}
export interface TraceReport {
  stages: Record<TraceStage, StageQuantiles>;
  shapes: Record<TraceShape, ShapeSummary>;
}

export class TraceUnavailableError extends Error {
  readonly code = 'SYNOD_BENCH_TRACE_UNAVAILABLE';
}

const now = () => performance.now();
const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
type H = ReturnType<typeof histogram>;

type AnyFn = (...args: any[]) => any;
interface Wrappable {
  [name: string]: unknown;
}

function field(owner: unknown, name: string): Wrappable {
  const v = (owner as Record<string, unknown>)[name];
  if (v === null || typeof v !== 'object') throw new TraceUnavailableError(`SynodReplica has no '${name}' field any more: update src/bench/trace.ts`);
  return v as Wrappable;
}

/** Replaces obj[name] with a wrapper; returns the undo. */
function wrap(obj: Wrappable, name: string, make: (orig: AnyFn) => AnyFn): () => void {
  const orig = obj[name];
  if (typeof orig !== 'function') throw new TraceUnavailableError(`no method '${name}' to trace`);
  const own = Object.prototype.hasOwnProperty.call(obj, name);
  obj[name] = make((orig as AnyFn).bind(obj));
  return () => {
    if (own) obj[name] = orig;
    else delete obj[name];
  };
}

export class StageTracer {
  private readonly stages = new Map<string, H>();
  private readonly shapes = new Map<string, H>();
  private readonly undo: Array<() => void> = [];
  /** "clientId:seq" -> propose() time. */
  private readonly proposedAt = new Map<string, number>();
  /** slot -> time it was first accepted here. */
  private readonly acceptedAt = new Map<number, number>();

  constructor(replica: SynodReplica) {
    for (const s of TRACE_STAGES) this.stages.set(s, histogram());
    for (const s of TRACE_SHAPES) this.shapes.set(s, histogram());
    const core = field(replica, 'core');
    const logStore = field(replica, 'logStore');
    const transport = field(replica, 'transport');
    const sm = field(replica, 'sm');
    const stage = (s: TraceStage, us: number) => this.stages.get(s)!.recordValue(Math.max(1, Math.round(us)));
    const shape = (s: TraceShape, n: number) => this.shapes.get(s)!.recordValue(Math.max(1, n));
    let appendsSinceCommit = 0;

    const onRead = (m: unknown) => {
      const { ms, requests } = m as { ms: number; requests: number };
      const per = (ms * 1000) / requests;
      for (let i = 0; i < requests; i++) stage('clientRead', per);
    };
    const onReply = (ms: unknown) => stage('replyCpu', (ms as number) * 1000);
    const onWrite = (m: unknown) => stage('socketWrite', (m as { ms: number }).ms * 1000);
    diagnostics.subscribe('synod:kv:binary:read', onRead);
    diagnostics.subscribe('synod:kv:binary:reply', onReply);
    diagnostics.subscribe('synod:kv:binary:write', onWrite);
    this.undo.push(
      () => diagnostics.unsubscribe('synod:kv:binary:read', onRead),
      () => diagnostics.unsubscribe('synod:kv:binary:reply', onReply),
      () => diagnostics.unsubscribe('synod:kv:binary:write', onWrite),
      // proposeWith: the binary server's path, and propose() calls it too.
      wrap(replica as unknown as Wrappable, 'proposeWith', (orig) => (command: Uint8Array, options: { clientId?: number; seq?: number }, done: ProposalCallback, cookie?: unknown) => {
        const t = now();
        if (options.clientId !== undefined && options.seq !== undefined) this.proposedAt.set(`${options.clientId}:${options.seq}`, t);
        return orig(command, options, (error: Error | null, result: Uint8Array | null) => {
          if (error === null) stage('server', (now() - t) * 1000);
          done(error, result, cookie);
        });
      }),
      wrap(core, 'propose', (orig) => (batch: Array<{ clientId: number; seq: number }>, time: number) => {
        const t = now();
        for (const c of batch) {
          const key = `${c.clientId}:${c.seq}`;
          const at = this.proposedAt.get(key);
          if (at !== undefined) {
            stage('batchWait', (t - at) * 1000);
            this.proposedAt.delete(key);
          }
        }
        shape('commandsPerBatch', batch.length);
        const r = orig(batch, time);
        stage('proposeCpu', (now() - t) * 1000);
        return r;
      }),
      wrap(core, 'takeReady', (orig) => () => {
        const t = now();
        const ready = orig() as null | { persist: Array<{ entries: Array<{ slot: number }> }>; committed: Array<{ slot: number; value: { kind: string; commands?: unknown[] } }> };
        if (!ready) return ready;
        const t1 = now();
        stage('readyCpu', (t1 - t) * 1000);
        for (const op of ready.persist) {
          for (const e of op.entries) if (!this.acceptedAt.has(e.slot)) this.acceptedAt.set(e.slot, t1);
          appendsSinceCommit += op.entries.length;
        }
        for (const c of ready.committed) {
          const at = this.acceptedAt.get(c.slot);
          if (at !== undefined) {
            stage('quorumWait', (t1 - at) * 1000);
            this.acceptedAt.delete(c.slot);
          }
          if (c.value.kind === 'batch') shape('commandsPerSlot', c.value.commands?.length ?? 0);
        }
        return ready;
      }),
      wrap(logStore, 'commit', (orig) => () => {
        const t = now();
        shape('recordsPerCommit', appendsSinceCommit);
        appendsSinceCommit = 0;
        const p = orig() as Promise<number>;
        p.then(
          () => stage('persist', (now() - t) * 1000),
          () => {},
        );
        return p;
      }),
      wrap(transport, 'send', (orig) => (to: number, frame: Uint8Array) => {
        const t = now();
        const r = orig(to, frame);
        stage('sendCpu', (now() - t) * 1000);
        return r;
      }),
      wrap(sm, 'apply', (orig) => (command: Uint8Array, context: unknown) => {
        const t = now();
        const r = orig(command, context);
        stage('apply', (now() - t) * 1000);
        return r;
      }),
    );
  }

  /** Forget what was recorded (at the start of the measured window). */
  reset(): void {
    for (const h of this.stages.values()) h.reset();
    for (const h of this.shapes.values()) h.reset();
  }

  report(): TraceReport {
    const stages = {} as Record<TraceStage, StageQuantiles>;
    for (const s of TRACE_STAGES) {
      const h = this.stages.get(s)!;
      stages[s] = { count: h.totalCount, p50Us: h.getValueAtPercentile(50), p90Us: h.getValueAtPercentile(90), p99Us: h.getValueAtPercentile(99), p999Us: h.getValueAtPercentile(99.9), meanUs: h.totalCount ? Math.round(h.mean) : 0 };
    }
    const shapes = {} as Record<TraceShape, ShapeSummary>;
    for (const s of TRACE_SHAPES) {
      const h = this.shapes.get(s)!;
      shapes[s] = { count: h.totalCount, mean: h.totalCount ? Math.round(h.mean * 10) / 10 : 0, p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), max: h.maxValue };
    }
    return { stages, shapes };
  }

  uninstall(): void {
    while (this.undo.length) this.undo.pop()!();
  }
}
