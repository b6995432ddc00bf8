import type { StateMachine } from '../../src/runtime/api.js';

/** A replicated counter with a log of applied commands: the test application. */
export class CounterMachine implements StateMachine {
  total = 0;
  applied: string[] = [];
  apply(command: Uint8Array): Uint8Array {
    const text = new TextDecoder().decode(command);
    this.applied.push(text);
    this.total += Number(text.split(':')[1] ?? 1);
    return new TextEncoder().encode(String(this.total));
  }
  query(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ total: this.total, applied: this.applied }));
  }
  restore(bytes: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(bytes)) as { total: number; applied: string[] };
    this.total = s.total;
    this.applied = s.applied;
  }
}
