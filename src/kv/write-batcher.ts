// Coalesces the frames written to one socket in the same tick into a single socket.write().
//
// Why not cork()/uncork(): a corked stream still runs Writable's per-chunk bookkeeping for every
// write() and hands the kernel an iovec entry per frame. Client requests and answers are ~50-100
// bytes and come by the thousand per tick, so one copy into one buffer is cheaper than both
// (docs/performance.md).
//
// reserve(): a client encodes each request straight into the tick's buffer (no buffer per request,
// no second copy at flush). The reserved frames of a tick are one run of a slab, written with one
// socket.write of a view of it; written bytes are never written again (the next tick's run starts
// after them, a full slab is left behind for a new one), so a caller may keep a view of its frame
// (for a retry) as long as it likes.

import * as diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { copyBytes } from './codec.js';

/** synod:kv:binary:write { ms, frames }: one coalesced socket.write (for `synod bench --trace`). */
export const writeChannel = diagnostics.channel('synod:kv:binary:write');

export class WriteBatcher {
  // The tick's frames as parallel lists: a binary-protocol answer is kept as (status, request id,
  // body) and encoded straight into the one buffer at flush (no buffer per answer, no concat); a
  // ready frame has status -1.
  private statuses: number[] = [];
  private ids: number[] = [];
  private bodies: Uint8Array[] = [];
  private bytes = 0;
  private scheduled = false;
  private flushing = false;
  /** The slab reserve() carves frames from; [runStart, slabUsed) is this tick's run (runStart -1: none). */
  private slab: Buffer = EMPTY_SLAB;
  private slabUsed = 0;
  private runStart = -1;
  /** How many runs of reserved frames have started (a caller's cue that a new socket write is being filled). */
  runs = 0;
  /** Frames in this tick's run, and beyond one per run in runs already closed (for the trace's count). */
  private runFrames = 0;
  private closedRunFrames = 0;

  /**
   * `slabBytes`: the size of a fresh slab (a run that outgrows one gets a larger one). Every batcher
   * keeps its current slab while idle, so a server with many connections passes a small one.
   * `written`: called after each socket write (the server checks there how much its client has
   * left unread).
   */
  constructor(
    private readonly socket: Socket,
    private readonly slabBytes = SLAB_BYTES,
    private readonly written: (() => void) | null = null,
  ) {}

  /** Bytes written to this batcher and not yet handed to the socket (they go at the end of the tick). */
  get queuedBytes(): number {
    return this.bytes + (this.runStart >= 0 ? this.slabUsed - this.runStart : 0);
  }

  /** A ready frame. */
  write(frame: Uint8Array): void {
    this.closeRun();
    this.push(-1, 0, frame, frame.length);
  }

  /**
   * Room for a frame of `bytes` bytes, sent in this tick's socket write after the frames before
   * it: returns the offset in `this.buffer` (read it after the call: a full slab is replaced) at
   * which the caller writes all `bytes` bytes before the tick ends. The bytes stay as written
   * (the caller may keep a view of them).
   */
  reserve(bytes: number): number {
    if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError(`reserve of ${bytes} bytes`);
    if (this.runStart < 0) {
      if (this.slab.length - this.slabUsed < bytes) this.newSlab(0, bytes);
      this.runStart = this.slabUsed;
      this.runs++;
      this.schedule();
    } else if (this.slab.length - this.slabUsed < bytes) this.newSlab(this.slabUsed - this.runStart, bytes);
    const at = this.slabUsed;
    this.slabUsed += bytes;
    this.runFrames++;
    return at;
  }

  /** The slab of the last reserve(). */
  get buffer(): Buffer {
    return this.slab;
  }

  /**
   * A slab for a run of `runBytes` so far (copied over: a run is one contiguous write) and `bytes`
   * more. A run that outgrows its slab gets one of at least twice its size: a slab of just enough made every
   * later frame of the tick copy the whole run again (a client with thousands of requests in one
   * tick: quadratic, 18k puts/s at 4,096 in flight against 149k at 512).
   */
  private newSlab(runBytes: number, bytes: number): void {
    const slab = Buffer.allocUnsafe(Math.max(this.slabBytes, 2 * runBytes + bytes));
    if (runBytes > 0) this.slab.copy(slab, 0, this.runStart, this.slabUsed);
    this.slab = slab;
    this.slabUsed = runBytes;
    if (this.runStart >= 0) this.runStart = 0;
  }

  /** This tick's run of reserved frames becomes a ready frame (a frame written after it keeps its place). */
  private closeRun(): void {
    if (this.runStart < 0) return;
    const run = this.slab.subarray(this.runStart, this.slabUsed);
    this.runStart = -1;
    this.closedRunFrames += this.runFrames - 1;
    this.runFrames = 0;
    this.push(-1, 0, run, run.length);
  }

  /**
   * A binary-protocol answer: u32 length | status u8 | request id u32 | body (protocol.ts,
   * encodeResponse). A small one is encoded at once into the tick's run of the slab, as reserve()
   * frames are: nothing kept per answer (three list entries each were ~80 bytes of garbage per
   * write on the leader). A large one is kept and copied at flush, so that one large answer does
   * not leave a slab its size behind.
   */
  writeResponse(status: number, requestId: number, body: Uint8Array): void {
    const bytes = RESPONSE_HEADER_BYTES + body.length;
    if (bytes > SLAB_RESPONSE_BYTES_MAX) {
      this.closeRun();
      this.push(status, requestId, body, bytes);
      return;
    }
    const at = this.reserve(bytes);
    const out = this.slab;
    out.writeUInt32BE(bytes - 4, at);
    out[at + 4] = status;
    out.writeUInt32BE(requestId, at + 5);
    copyBytes(body, 0, body.length, out, at + RESPONSE_HEADER_BYTES);
  }

  private push(status: number, id: number, body: Uint8Array, bytes: number): void {
    this.statuses.push(status);
    this.ids.push(id);
    this.bodies.push(body);
    this.bytes += bytes;
    // Large answers (reads of large values that completed together) go out before the tick ends:
    // one buffer of a whole tick's answers could pass Node's largest Buffer (4 GiB: a RangeError
    // in the flush, an uncaught exception) and would copy them all once more.
    if (this.bytes >= FLUSH_NOW_BYTES && !this.flushing) this.flush();
    else this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    this.flushing = true;
    try {
      this.flushNow();
    } finally {
      this.flushing = false;
    }
  };

  private flushNow(): void {
    if (this.runStart >= 0 && this.bodies.length === 0) {
      // Only reserved frames this tick: one write of the run, no copy.
      const run = this.slab.subarray(this.runStart, this.slabUsed);
      this.runStart = -1;
      if (this.socket.destroyed) return void (this.runFrames = 0);
      const traced = writeChannel.hasSubscribers;
      const t0 = traced ? performance.now() : 0;
      this.socket.write(run);
      if (traced) writeChannel.publish({ ms: performance.now() - t0, frames: this.runFrames });
      this.runFrames = 0;
      if (this.written !== null) this.written();
      return;
    }
    this.closeRun();
    const { statuses, ids, bodies, bytes } = this;
    const frames = bodies.length + this.closedRunFrames;
    this.closedRunFrames = 0;
    this.statuses = [];
    this.ids = [];
    this.bodies = [];
    this.bytes = 0;
    if (this.socket.destroyed || bodies.length === 0) return;
    const traced = writeChannel.hasSubscribers;
    const t0 = traced ? performance.now() : 0;
    if (bodies.length === 1 && statuses[0] === -1) this.socket.write(bodies[0]!);
    else {
      const out = Buffer.allocUnsafe(bytes);
      let at = 0;
      for (let i = 0; i < bodies.length; i++) {
        const body = bodies[i]!;
        const status = statuses[i]!;
        if (status >= 0) {
          out.writeUInt32BE(RESPONSE_HEADER_BYTES - 4 + body.length, at);
          out[at + 4] = status;
          out.writeUInt32BE(ids[i]!, at + 5);
          at += RESPONSE_HEADER_BYTES;
        }
        copyBytes(body, 0, body.length, out, at);
        at += body.length;
      }
      this.socket.write(out);
    }
    if (traced) writeChannel.publish({ ms: performance.now() - t0, frames });
    if (this.written !== null) this.written();
  }
}

const RESPONSE_HEADER_BYTES = 9;
/** reserve()'s slab: a tick's requests of one connection (~130 bytes each, tens per tick) several times over. */
const SLAB_BYTES = 64 * 1024;
/** Answers up to this size go into the slab (writeResponse). */
const SLAB_RESPONSE_BYTES_MAX = 4 * 1024;
const EMPTY_SLAB = Buffer.alloc(0);
/** Answers queued in a tick past this are written at once (push). */
const FLUSH_NOW_BYTES = 16 * 1024 * 1024;
