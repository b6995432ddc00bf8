// Arrays made ahead of need, their memory faulted in a few pages at a time.
//
// Why: a fresh typed array of a few MiB is untouched memory, and the first write to each 4 KiB
// page costs a page fault and zeroing. On this project's VM that is 0.35-0.8 ms per MiB idle and
// several times more in a loaded replica, ten times a warm copy: a 1,000,000-key table's snapshot
// clone into new arrays stopped the event loop for 150-400 ms, and the doubling of its entry
// fields and hash index for 130-150 ms. A table that knows it will need an array (the next size
// of a growing one, the next clone's copy) makes it early and has it touched here, a page or two
// per insert, so that when the array is needed using it is a memcpy only.
//
// An array in the queue must hold zeros only and have no other writer: `step` writes zeros into
// it. Take it out with `remove` before handing it to its user.

const PAGE_BYTES = 4096;

export class Prefaulter {
  private readonly queue: Uint8Array[] = [];
  /** The next byte of queue[0] to touch. */
  private at = 0;

  get pending(): boolean {
    return this.queue.length > 0;
  }

  /** Queues a fresh (all-zero) array to be touched; returns it. */
  add<T extends ArrayBufferView>(array: T): T {
    this.queue.push(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return array;
  }

  /** Stops touching `array` (call before its owner writes it). No-op if it is not queued. */
  remove(array: ArrayBufferView): void {
    const i = this.indexOf(array);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (i === 0) this.at = 0;
  }

  /** remove(), then the array: for handing it to its user. */
  take<T extends ArrayBufferView>(array: T): T {
    this.remove(array);
    return array;
  }

  /** Is `array` queued (contracts: an array in use must not be)? */
  has(array: ArrayBufferView): boolean {
    return this.indexOf(array) >= 0;
  }

  private indexOf(array: ArrayBufferView): number {
    return this.queue.findIndex((q) => q.buffer === array.buffer && q.byteOffset === array.byteOffset);
  }

  /** Touches up to `pages` pages of the queued arrays, oldest first. */
  step(pages: number): void {
    while (pages > 0 && this.queue.length > 0) {
      const bytes = this.queue[0]!;
      // A write, not a read: a read fault would map the shared zero page and fault again later.
      // The array is all zeros and nobody else writes it, so writing a zero changes nothing.
      bytes[this.at] = 0;
      pages--;
      this.at += PAGE_BYTES;
      if (this.at >= bytes.length) {
        if (bytes.length > 0) bytes[bytes.length - 1] = 0; // the last page, if the array starts mid-page
        this.queue.shift();
        this.at = 0;
      }
    }
  }

  /** Forgets every queued array. */
  clear(): void {
    this.queue.length = 0;
    this.at = 0;
  }
}
