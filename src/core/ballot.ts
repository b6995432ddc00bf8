import type { Ballot, ReplicaId } from './types.js';

/** Replica ids live in [1, BALLOT_ID_SPAN): the low part of a packed ballot. */
export const BALLOT_ID_SPAN = 1024;
export const MAX_REPLICA_ID = BALLOT_ID_SPAN - 1;
/** Rounds stay below this so that round * span + id is a safe integer. */
export const MAX_ROUND = Math.floor(Number.MAX_SAFE_INTEGER / BALLOT_ID_SPAN) - 1;

export function makeBallot(round: number, replicaId: ReplicaId): Ballot {
  if (!Number.isInteger(round) || round < 0 || round > MAX_ROUND) throw new RangeError(`ballot round out of range: ${round}`);
  if (!Number.isInteger(replicaId) || replicaId < 1 || replicaId > MAX_REPLICA_ID) {
    throw new RangeError(`replica id out of range: ${replicaId}`);
  }
  return round * BALLOT_ID_SPAN + replicaId;
}

export function ballotRound(ballot: Ballot): number {
  return Math.floor(ballot / BALLOT_ID_SPAN);
}

export function ballotReplica(ballot: Ballot): ReplicaId {
  return ballot % BALLOT_ID_SPAN;
}

/** The smallest ballot owned by `replicaId` that is strictly greater than `above`. */
export function nextBallot(above: Ballot, replicaId: ReplicaId): Ballot {
  const round = ballotRound(above);
  const candidate = makeBallot(round, replicaId);
  return candidate > above ? candidate : makeBallot(round + 1, replicaId);
}

export function formatBallot(ballot: Ballot): string {
  return ballot === 0 ? '(0)' : `(${ballotRound(ballot)}.${ballotReplica(ballot)})`;
}
