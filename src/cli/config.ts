// Parsing and checking of `synod start` settings: flags, environment variables (SYNOD_*) and a
// JSON config file, in that order of precedence. Every problem is a UsageError whose message
// says what to change.

import { readFileSync } from 'node:fs';
import type { PeerAddress } from '../runtime/api.js';
import { MAX_REPLICA_ID } from '../core/ballot.js';

export class UsageError extends Error {
  readonly code = 'SYNOD_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A directory flag whose path is a file (mkdir: EEXIST) or lies under one (ENOTDIR), as a usage
 * error naming the flag; null for any other error.
 */
export function notADirectory(flag: string, value: string, err: NodeJS.ErrnoException): UsageError | null {
  if (err.code !== 'EEXIST' && err.code !== 'ENOTDIR') return null;
  const what = `${err.path ?? value} ${err.code === 'EEXIST' ? 'is a file' : 'lies under a file'}`;
  return new UsageError(`${flag} ${value} is not a directory (${what}, ${err.code}): pick a directory for ${flag} (it is created if absent)`);
}

export function parseHostPort(text: string, what: string): PeerAddress {
  const s = text.trim();
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new UsageError(`${what} must be HOST:PORT (e.g. 127.0.0.1:7001), got ${JSON.stringify(text)}`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${what}: port ${m[2]} is out of range 0..65535`);
  return { host: m[1]!, port };
}

/** "1=h:p,2=h:p" -> Map. */
export function parseIdMap(text: string, what: string): Map<number, PeerAddress> {
  const out = new Map<number, PeerAddress>();
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`${what} entries must be ID=HOST:PORT, got ${JSON.stringify(part)}`);
    const id = Number(part.slice(0, eq));
    if (!Number.isInteger(id) || id < 1 || id > MAX_REPLICA_ID) throw new UsageError(`${what}: replica id must be an integer 1..${MAX_REPLICA_ID}, got ${JSON.stringify(part.slice(0, eq))}`);
    if (out.has(id)) throw new UsageError(`${what}: replica ${id} is listed twice`);
    out.set(id, parseHostPort(part.slice(eq + 1), `${what} entry for replica ${id}`));
  }
  if (out.size === 0) throw new UsageError(`${what} is empty: list every replica as ID=HOST:PORT,...`);
  return out;
}

export function formatIdMap(m: Map<number, PeerAddress>): string {
  return [...m].map(([id, a]) => `${id}=${a.host}:${a.port}`).join(',');
}

/** Reads a JSON config file: keys are the long flag names, in camelCase or kebab-case. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`the config file ${path} must hold a JSON object of settings`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed)) out[k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  return out;
}
