// Coalesces the frames written to one socket in the same tick into a single socket.write().
//
// Why not cork()/uncork(): a corked stream still runs Writable's per-chunk bookkeeping for every
// write() and hands the kernel an iovec entry per frame. Client requests and answers are ~50-100
// bytes and come by the thousand per tick, so one copy into one buffer is cheaper than both
// (docs/performance.md).

import * as diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

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

  constructor(private readonly socket: Socket) {}

  /** A ready frame. */
  write(frame: Uint8Array): void {
    this.push(-1, 0, frame, frame.length);
  }

  /** A binary-protocol answer: u32 length | status u8 | request id u32 | body (protocol.ts, encodeResponse). */
  writeResponse(status: number, requestId: number, body: Uint8Array): void {
    this.push(status, requestId, body, RESPONSE_HEADER_BYTES + body.length);
  }

  private push(status: number, id: number, body: Uint8Array, bytes: number): void {
    this.statuses.push(status);
    this.ids.push(id);
    this.bodies.push(body);
    this.bytes += bytes;
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const { statuses, ids, bodies, bytes } = this;
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
        if (body.length <= 16) for (let k = 0; k < body.length; k++) out[at + k] = body[k]!;
        else out.set(body, at);
        at += body.length;
      }
      this.socket.write(out);
    }
    if (traced) writeChannel.publish({ ms: performance.now() - t0, frames: bodies.length });
  };
}

const RESPONSE_HEADER_BYTES = 9;
