// Linearizability checking for key-value histories (docs/checker.md).
export {
  type CasResult,
  type Classified,
  type DeleteResult,
  type GetResult,
  type History,
  type HistoryErrorCode,
  type HttpBody,
  type KvOp,
  type OpRecord,
  type OpResult,
  type Outcome,
  type ProcessId,
  HISTORY_FORMAT,
  HISTORY_FORMAT_VERSION,
  HistoryError,
  classifyError,
  classifyHttp,
  formatOp,
  formatRecord,
  historyFromJSON,
  historyToJSON,
  validateHistory,
  validateRecord,
} from './history.js';
export {
  type CheckOptions,
  type CheckResult,
  type Counterexample,
  type KeyBudget,
  type KeyResult,
  type LinearizedStep,
  type UnknownReason,
  type Verdict,
  checkHistory,
  checkKey,
} from './linearizability.js';
export { explainCounterexample, explainResult } from './explain.js';
export { type OkInput, type OpHandle, Recorder, type RecorderOptions } from './recorder.js';
export { type ScanObservation, type ScanReads, readsOfScans } from './scans.js';
