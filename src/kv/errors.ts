// How the library's errors become client outcomes (SAFETY.md, "Client outcomes"):
//   certain failure (never proposed: not leader, no leader, shutting down, overloaded, stopped) -> 503 + Retry-After
//   unknown outcome (proposed; leader lost, timeout, forwarding broke after sending) -> 504
// A command that committed is answered 200 (or 409 for a CAS that observed another value);
// nothing else in the 5xx range is ever sent for a write.

import { NotLeaderError, OutcomeUnknownError, OverloadedError, SessionExpiredError, ShuttingDownError, StaleReadError, StorageFailedError, StoppedError, SynodError } from '../runtime/errors.js';

export type Outcome = 'certain' | 'unknown';

export interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
  leader?: number | null;
  /** Seconds; sent as Retry-After with 503. */
  retryAfterS?: number;
}

/**
 * Maps an error from propose() (write = true) or read() (write = false). An unrecognised error
 * from a write is an unknown outcome: we cannot prove the command was not applied.
 */
export function answerForError(e: unknown, write: boolean): ErrorAnswer {
  if (e instanceof NotLeaderError) {
    return { status: 503, code: e.code, message: e.message, leader: e.leaderHint, retryAfterS: 1 };
  }
  if (e instanceof ShuttingDownError) return { status: 503, code: e.code, message: e.message, retryAfterS: 1 };
  // Refused at the leader's admission, or taken back from its queue unproposed: certain.
  if (e instanceof OverloadedError) return { status: 503, code: e.code, message: e.message, retryAfterS: 1 };
  // The replica set stopped at a last request: this command runs nowhere, ever. Certain; retrying
  // will not help, hence the long Retry-After.
  if (e instanceof StoppedError) return { status: 503, code: e.code, message: e.message, retryAfterS: 60 };
  if (e instanceof OutcomeUnknownError || e instanceof SessionExpiredError) return { status: 504, code: e.code, message: e.message };
  if (e instanceof StaleReadError) return { status: 503, code: e.code, message: e.message, retryAfterS: 1 };
  // A stopped replica refuses new work before proposing it; pending submitted proposals get
  // OutcomeUnknownError instead (see SynodReplica.fail).
  if (e instanceof StorageFailedError) return { status: 503, code: e.code, message: e.message, retryAfterS: 5 };
  if (e instanceof SynodError) {
    // Refused before it was proposed: nothing ran, and the request itself is wrong.
    if (e.code === 'SYNOD_BAD_SESSION') return { status: 400, code: e.code, message: e.message };
    if (e.code === 'SYNOD_READ_TIMEOUT') return { status: 504, code: e.code, message: e.message };
    return write ? { status: 504, code: e.code, message: e.message } : { status: 503, code: e.code, message: e.message, retryAfterS: 1 };
  }
  const message = e instanceof Error ? e.message : String(e);
  return write ? { status: 504, code: 'SYNOD_OUTCOME_UNKNOWN', message: `outcome unknown: ${message}` } : { status: 500, code: 'SYNOD_INTERNAL', message };
}
