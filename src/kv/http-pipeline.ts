// How many requests of one HTTP connection are served at once, and how much of their answers
// waits for the client (docs/security.md, "Client-port limits").
//
// Design note
// -----------
// Node parses every request in a socket read (64 KiB: ~2,400 small pipelined GETs) before it can
// stop reading, and emits each one. Served as they came, a client that pipelines GETs of a large
// value and never reads made the server hold every answer: +175 MiB with 64 KiB values, ~2.4 GiB
// per connection with 1 MiB values, kept past every timeout (Node's timeouts do not apply while a
// response is pending). Here a connection's requests start in order, and only while
//
//   - fewer than httpPipelineMax of them are open (started, and their answer not yet handed to the
//     kernel: a response's 'finish'), and
//   - the connection's answer bytes still in this process (the socket's buffer and the answers
//     queued behind it) are at most httpUnsentBytesMax;
//
// the first request of a connection with nothing open always starts. The others wait, and the
// socket is not read meanwhile (Node may resume it when its own buffers drain: the 'resume'
// listener pauses it again while requests wait). So one connection holds at most about
// httpUnsentBytesMax + httpPipelineMax answers and one socket read of parsed requests.
//
// A client that stops reading is then cut off: a connection with answer bytes waiting and no
// progress (an answer finished, or the socket's buffer shrank) for httpWriteStallTimeoutMs is
// destroyed, by one timer over all connections with open requests (KvHttpServer). Progress is
// seen a socket write at a time: an answer's body is one write, so a client must take a whole
// answer (up to a value or a scan page) within that time.

import type * as http from 'node:http';
import type { Socket } from 'node:net';

export interface PipelineLimits {
  httpPipelineMax: number;
  httpUnsentBytesMax: number;
  httpWriteStallTimeoutMs: number;
}

export class PipelineGate {
  /** Requests started whose response has not finished (or closed). */
  private readonly open = new Set<http.ServerResponse>();
  /** Requests parsed but not started, in order. */
  private readonly waiting: Array<{ res: http.ServerResponse; start: () => void }> = [];
  private pausedHere = false;
  private closing = false;
  private ended = false;
  /** Responses finished or closed so far: progress for the stall check. */
  private finished = 0;
  private lastFinished = 0;
  private lastWritable = 0;
  /** Since when answers have waited without progress (NaN: nothing waits). */
  private stalledSince = NaN;

  constructor(
    readonly socket: Socket,
    private readonly limits: PipelineLimits,
    /** Told when the gate has open requests (true) and when it has none left (false): the stall watch's set. */
    private readonly watch: (gate: PipelineGate, active: boolean) => void,
  ) {
    // Node resumes reading when its own output drains; while requests wait, this socket stays paused.
    socket.on('resume', () => {
      if (this.pausedHere) socket.pause();
    });
    socket.once('close', () => {
      this.waiting.length = 0;
      this.open.clear();
      this.watch(this, false);
    });
  }

  /** Starts the request now, or once the connection has room (in arrival order). */
  admit(res: http.ServerResponse, start: () => void): void {
    if (this.waiting.length === 0 && !this.closing && this.hasRoom()) return this.begin(res, start);
    this.waiting.push({ res, start });
    if (!this.pausedHere) {
      this.pausedHere = true;
      this.socket.pause();
    }
  }

  /** Requests parsed and waiting to start. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Whether a request has started and its answer has not been handed to the kernel, or waits to start. */
  get pending(): boolean {
    return this.open.size > 0 || this.waiting.length > 0;
  }

  /** closeAfterPending() was called: nothing more is read from this connection. */
  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * After malformed bytes behind whole requests: answer those, then close, instead of an error
   * answer that the client would take for the answer to one of them. Nothing more is read.
   */
  closeAfterPending(): void {
    this.closing = true;
    if (!this.pausedHere) {
      this.pausedHere = true;
      this.socket.pause();
    }
    this.pump();
  }

  /** Answer bytes of this connection still in this process: the socket's buffer and the answers queued behind the one it sends. */
  unsentBytes(): number {
    let n = this.socket.writableLength;
    // A queued response buffers its output until the socket is assigned to it.
    for (const res of this.open) if (res.socket === null) n += res.writableLength;
    return n;
  }

  /** True once answers have waited with no progress for httpWriteStallTimeoutMs (the caller destroys the socket). */
  stalled(now: number): boolean {
    const writable = this.socket.writableLength;
    const progress = this.finished !== this.lastFinished || writable < this.lastWritable;
    this.lastFinished = this.finished;
    this.lastWritable = writable;
    if (this.unsentBytes() === 0) {
      this.stalledSince = NaN;
      return false;
    }
    if (progress || Number.isNaN(this.stalledSince)) this.stalledSince = now;
    return now - this.stalledSince >= this.limits.httpWriteStallTimeoutMs;
  }

  private hasRoom(): boolean {
    if (this.open.size === 0) return true;
    return this.open.size < this.limits.httpPipelineMax && this.unsentBytes() <= this.limits.httpUnsentBytesMax;
  }

  private begin(res: http.ServerResponse, start: () => void): void {
    this.open.add(res);
    if (this.open.size === 1) this.watch(this, true);
    const done = () => {
      if (!this.open.delete(res)) return;
      this.finished++;
      this.pump();
    };
    res.once('finish', done);
    res.once('close', done);
    start();
  }

  private pump(): void {
    if (this.socket.destroyed) return;
    while (this.waiting.length > 0 && this.hasRoom()) {
      const w = this.waiting.shift()!;
      this.begin(w.res, w.start);
    }
    if (this.waiting.length > 0) return;
    if (this.open.size === 0) this.watch(this, false);
    if (this.closing) {
      // Every answer is with the kernel: a FIN after them, then let go of the socket.
      if (this.open.size === 0 && !this.ended) {
        this.ended = true;
        this.socket.end(() => this.socket.destroy());
      }
      return;
    }
    if (this.pausedHere) {
      this.pausedHere = false;
      this.socket.resume();
    }
  }
}
