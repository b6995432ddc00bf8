// A list filled during an event-loop turn and emptied once per turn (the runtime's queued
// proposals, and their pending entries waiting to be dated). Its array keeps its length between
// turns: `length = 0` gave the backing store up, and it grew again by push every turn (~34 bytes
// per write: docs/performance.md, "Session 15").

/** Longer than this, the array is dropped when the list is emptied (after a burst): not kept that large. */
const KEPT_LENGTH_MAX = 16384;

export class TurnList<T> {
  /** The list is the first `count`; the rest are null. */
  items: Array<T | null> = [];
  count = 0;

  push(item: T): void {
    this.items[this.count++] = item;
  }

  /** The list as an array of its own, exactly `count` long. */
  copy(): T[] {
    return this.items.slice(0, this.count) as T[];
  }

  /** Removes the items `remove` names, keeping the others in order; returns the removed ones. */
  removeWhere(remove: (item: T) => boolean): T[] {
    const removed: T[] = [];
    let kept = 0;
    for (let i = 0; i < this.count; i++) {
      const item = this.items[i] as T;
      if (remove(item)) removed.push(item);
      else this.items[kept++] = item;
    }
    this.items.fill(null, kept, this.count);
    this.count = kept;
    return removed;
  }

  /** Empties it, keeping nothing alive (what it held may be settled long before the array is reused). */
  clear(): void {
    this.items.fill(null, 0, this.count);
    this.count = 0;
    if (this.items.length > KEPT_LENGTH_MAX) this.items = [];
  }
}
