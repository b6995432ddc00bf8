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
  private frames: Uint8Array[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(private readonly socket: Socket) {}

  write(frame: Uint8Array): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const frames = this.frames;
    const bytes = this.bytes;
    this.frames = [];
    this.bytes = 0;
    if (this.socket.destroyed || frames.length === 0) return;
    const traced = writeChannel.hasSubscribers;
    const t0 = traced ? performance.now() : 0;
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames, bytes));
    if (traced) writeChannel.publish({ ms: performance.now() - t0, frames: frames.length });
  };
}
