// Errors an application sees from a replica. Each has a stable code. Two failure kinds differ
// (SAFETY.md): NotLeaderError / ShuttingDownError / OverloadedError mean the command was certainly never proposed
// (retry anywhere); OutcomeUnknownError means it may or may not have been applied (retry with
// the same session id, and the session table makes the retry at-most-once).

import type { ReplicaId } from '../core/types.js';

export class SynodError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SynodError';
  }
}

/** Certain failure: this replica does not lead (or no leader yet). Never proposed. */
export class NotLeaderError extends SynodError {
  readonly certain = true;
  constructor(readonly leaderHint: ReplicaId | null) {
    super('SYNOD_NOT_LEADER', leaderHint === null ? 'no leader is known yet; retry shortly' : `not the leader; replica ${leaderHint} leads`);
    this.name = 'NotLeaderError';
  }
}

/** Certain failure: the replica is closing. Never proposed. */
export class ShuttingDownError extends SynodError {
  readonly certain = true;
  constructor() {
    super('SYNOD_SHUTTING_DOWN', 'the replica is shutting down');
    this.name = 'ShuttingDownError';
  }
}

/**
 * Certain failure: the replica set stopped at a "last request" (propose({last: true}), RSL's
 * isLastDecree) chosen at `stoppedAtSlot` (null: one is being proposed on this leader). This
 * command was never executed anywhere, and never will be.
 */
export class StoppedError extends SynodError {
  readonly certain = true;
  constructor(readonly stoppedAtSlot: number | null) {
    super('SYNOD_STOPPED', stoppedAtSlot === null ? 'the replica set is stopping: a last request was proposed before this one' : `the replica set stopped at the last request in slot ${stoppedAtSlot}`);
    this.name = 'StoppedError';
  }
}

/**
 * Certain failure: the leader has too much waiting to be proposed (proposalQueueCommandsMax or
 * proposalQueueBytesMax), or the command waited past its timeout without being handed to the
 * protocol. Never proposed: retry after a pause, anywhere.
 */
export class OverloadedError extends SynodError {
  readonly certain = true;
  constructor(reason: string) {
    super('SYNOD_OVERLOADED', `overloaded: ${reason}; not proposed, retry after a pause`);
    this.name = 'OverloadedError';
  }
}

/** Unknown outcome: proposed, but no result arrived in time (leader lost, timeout). */
export class OutcomeUnknownError extends SynodError {
  readonly certain = false;
  constructor(reason: string, advice = 'retry with the same session to apply it at most once') {
    super('SYNOD_OUTCOME_UNKNOWN', `outcome unknown: ${reason}; ${advice}`);
    this.name = 'OutcomeUnknownError';
  }
}

/** A local read could not reach the sequence number the client has seen within the bound. */
export class StaleReadError extends SynodError {
  constructor(readonly appliedSlot: number, readonly minSlot: number) {
    super('SYNOD_STALE_READ', `replica has applied slot ${appliedSlot}, the read needs ${minSlot}`);
    this.name = 'StaleReadError';
  }
}

/** The session expired or its results were forgotten: the command is not executed again. */
export class SessionExpiredError extends SynodError {
  constructor(clientId: number, seq: number) {
    super('SYNOD_SESSION_EXPIRED', `session ${clientId} no longer holds the result of request ${seq}`);
    this.name = 'SessionExpiredError';
  }
}

/** The replica cannot persist (ENOSPC, EIO): it stopped voting and serves nothing. */
export class StorageFailedError extends SynodError {
  constructor(override readonly cause: unknown) {
    super('SYNOD_STORAGE_FAILED', `the replica stopped: storage failed (${cause instanceof Error ? cause.message : String(cause)})`);
    this.name = 'StorageFailedError';
  }
}

export class DataDirError extends SynodError {
  constructor(message: string) {
    super('SYNOD_DATA_DIR', message);
    this.name = 'DataDirError';
  }
}
