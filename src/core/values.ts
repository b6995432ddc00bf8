import type { Command, Value } from './types.js';

export const NOOP: Value = Object.freeze({ kind: 'noop' }) as Value;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameCommand(a: Command, b: Command): boolean {
  return a.clientId === b.clientId && a.seq === b.seq && a.floor === b.floor && sameBytes(a.payload, b.payload);
}

/** Structural equality of two slot values (used by contracts: an acceptor never changes a value at one ballot). */
export function sameValue(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind) return false;
  if (a.kind === 'noop') return true;
  if (a.kind === 'config') {
    const bm = (b as { members: number[] }).members;
    return a.members.length === bm.length && a.members.every((m, i) => m === bm[i]);
  }
  if (a.last !== (b as { last?: true }).last) return false;
  if (a.timeMs !== (b as { timeMs?: number }).timeMs) return false;
  const bc = (b as { commands: Command[] }).commands;
  if (a.commands.length !== bc.length) return false;
  for (let i = 0; i < bc.length; i++) if (!sameCommand(a.commands[i]!, bc[i]!)) return false;
  return true;
}

/** Payload bytes carried by a value (what batch limits count). */
export function valuePayloadBytes(value: Value): number {
  if (value.kind !== 'batch') return 0;
  let total = 0;
  for (const c of value.commands) total += c.payload.length;
  return total;
}
