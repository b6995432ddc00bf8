// Pacing of bulk background writes: a snapshot's file and a new log segment's zero-fill.
//
// Why: they share the disk with the log's group commits, whose fdatasync is on every write's path.
// Written back to back, a few megabytes flushed at a time, they kept the disk busy for whole
// stretches: at the bench's half load every replica's log jobs took 5-10 ms instead of ~1 ms for
// the ~0.75 s of a segment's zero-fill (all three replicas roll at about the same LSN) and for the
// ~0.3 s of each snapshot, and those stretches were most of the p99 (docs/performance.md, "Session
// 12"). Now each step is small (a log commit that arrives behind one waits for at most one step)
// and is followed by a rest as long as the step itself, so bulk writes take at most half the
// disk's time whatever its speed: no rate to tune. A step that took long (a slow disk) rests at
// most REST_MS_MAX, so a bulk write is never slowed more than that per step.

/** Bytes a bulk write writes and flushes in one step. */
export const BULK_STEP_BYTES = 256 * 1024;
/** A rest never exceeds this, however long the step took. */
const REST_MS_MAX = 20;

export interface PacerClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realPacerClock: PacerClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Times the steps of one bulk write and rests after each: `step(work)` runs one step (write and
 * flush), then waits as long as it took (at most REST_MS_MAX) unless `urgent()` says someone
 * waits for the whole write (a log roll that needs the segment now, a close).
 */
export class BulkPacer {
  constructor(
    private readonly urgent: () => boolean = () => false,
    private readonly clock: PacerClock = realPacerClock,
  ) {}

  async step<T>(work: () => Promise<T>): Promise<T> {
    const started = this.clock.now();
    const result = await work();
    if (!this.urgent()) {
      const rest = Math.min(REST_MS_MAX, this.clock.now() - started);
      if (rest > 0) await this.clock.sleep(rest);
    }
    return result;
  }
}
