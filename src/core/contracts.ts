// Code contracts: preconditions, postconditions and invariants.
//
// One switch, CONTRACTS, decides whether they run. Call sites guard every check with it,
// `if (CONTRACTS) requires(...)`, because JavaScript evaluates arguments before the call:
// behind the guard, a disabled contract costs one load of a module binding and a branch.
// Tests and the simulator switch it on (setContracts(true)); production leaves it off.

export let CONTRACTS = false;

export function setContracts(on: boolean): void {
  CONTRACTS = on;
}

export class ContractViolation extends Error {
  readonly code = 'SYNOD_CONTRACT_VIOLATION';
  constructor(
    readonly kind: 'requires' | 'ensures' | 'invariant',
    message: string,
  ) {
    super(`${kind} failed: ${message}`);
    this.name = 'ContractViolation';
  }
}

/** A precondition: what a handler assumes of its caller and its input. */
export function requires(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ContractViolation('requires', message);
}

/** A postcondition: what a handler promises once it returns. */
export function ensures(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ContractViolation('ensures', message);
}

/** An invariant: what holds between any two steps. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ContractViolation('invariant', message);
}
