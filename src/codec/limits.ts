// Bounds that a decoder enforces on untrusted input ("put a limit on everything").
// A length or count above its bound is SYNOD_CODEC_TOO_LARGE; independently, a decoder
// never allocates for more elements than the remaining input could hold.

import { ConfigError } from '../core/options.js';

export interface DecodeLimits {
  /** Largest whole message (frame) accepted by decodeMessage. */
  messageBytesMax: number;
  /** Most entries in one Promise or CatchupReply. */
  entriesMax: number;
  /** Most commands in one batch value. */
  commandsMax: number;
  /** Largest payload of one command. */
  payloadBytesMax: number;
  /** Most members in one configuration value. */
  membersMax: number;
}

/**
 * Defaults sized well above the core's defaults (batchCommandsMax 1024, batchBytesMax 1 MiB,
 * catchupEntriesMax 256) so that a correct peer never trips them, and low enough that a
 * hostile frame cannot make a replica allocate more than a few times its own size.
 */
export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  messageBytesMax: 64 * 1024 * 1024,
  entriesMax: 4096,
  commandsMax: 16384,
  payloadBytesMax: 16 * 1024 * 1024,
  membersMax: 64,
});

/** Defaults overridden by `overrides`, validated (positive safe integers) and frozen. Resolve once, reuse. */
export function decodeLimits(overrides: Partial<DecodeLimits> = {}): Readonly<DecodeLimits> {
  const limits: DecodeLimits = { ...DEFAULT_DECODE_LIMITS, ...overrides };
  for (const name of Object.keys(DEFAULT_DECODE_LIMITS) as (keyof DecodeLimits)[]) {
    const value = limits[name];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ConfigError(`decode limit ${name} must be a positive integer, got ${value}`);
    }
  }
  return Object.freeze(limits);
}
