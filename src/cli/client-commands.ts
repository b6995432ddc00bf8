// `synod put|get|del|cas|scan|status|member|leader`: the HTTP API from the command line.
// Exit codes: 0 done; 1 not found / CAS clash; 2 usage; 3 certainly not applied (503,
// unreachable); 4 outcome unknown (504). Writes with --exactly-once go under a session
// (HttpKvClient `sessions`) and retry an unknown outcome before reporting it.

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ANSWER_BYTES_MAX_DEFAULT, HttpKvClient, HttpStatusError, isValidToken, MEMBERSHIP_TIMEOUT_MS_DEFAULT, MEMBERSHIP_TIMEOUT_MS_MAX, normalizeEndpoint, TOKEN_RULE } from '../kv/http-client.js';
import { UsageError } from './config.js';
import { digestText, table } from './format.js';
import type { StateDigestStatus } from '../runtime/state-digests.js';
import { decodeBase64Strict } from '../kv/base64.js';
import type { RemovalNotice } from '../core/types.js';

export const EXIT_NOT_FOUND = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;
export const EXIT_UNKNOWN = 4;

export class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

interface Common {
  endpoints?: string;
  json?: boolean;
  timeout?: string;
  answerMaxBytes?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  /** Writes: open a session and retry an unknown outcome under it (applied at most once). */
  exactlyOnce?: boolean;
}

function readFileFlag(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** TLS and token options from the flags (or SYNOD_CA, SYNOD_CERT, SYNOD_KEY, SYNOD_TOKEN_FILE, SYNOD_TOKEN). */
function securityOf(o: Common): { tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }; token?: string } {
  const ca = o.ca ?? process.env.SYNOD_CA;
  const cert = o.cert ?? process.env.SYNOD_CERT;
  const key = o.key ?? process.env.SYNOD_KEY;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('a client certificate needs both --cert and --key');
  if (cert !== undefined && ca === undefined) throw new UsageError('--cert/--key need --ca (the cluster CA, e.g. certs/ca.crt)');
  const out: { tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }; token?: string } = {};
  if (ca !== undefined) {
    out.tls = { ca: readFileFlag(ca, '--ca') };
    if (cert !== undefined) {
      out.tls.cert = readFileFlag(cert, '--cert');
      out.tls.key = readFileFlag(key!, '--key');
    }
  }
  const tokenFile = o.tokenFile ?? process.env.SYNOD_TOKEN_FILE;
  if (tokenFile !== undefined) {
    const flag = o.tokenFile !== undefined ? '--token-file' : 'SYNOD_TOKEN_FILE';
    const first = readFileFlag(tokenFile, flag).toString('utf8').split(/\r?\n/).map((l) => l.trim()).find((l) => l.length > 0 && !l.startsWith('#'));
    if (!first) throw new UsageError(`${flag}: ${tokenFile} holds no token`);
    if (!isValidToken(first)) throw new UsageError(`${flag}: ${tokenFile}: ${TOKEN_RULE} (the first line that is not empty or a # comment)`);
    out.token = first;
  } else if (process.env.SYNOD_TOKEN) {
    if (!isValidToken(process.env.SYNOD_TOKEN)) throw new UsageError(`SYNOD_TOKEN: ${TOKEN_RULE}`);
    out.token = process.env.SYNOD_TOKEN;
  }
  return out;
}

/**
 * The client from the flags. Everything the user gave is checked here, so that a mistake is a
 * usage error (exit 2) naming the flag, not an exception from deep inside, a retry until
 * --timeout, or a refusal by the server.
 */
function clientOf(o: Common): HttpKvClient {
  const list = o.endpoints ?? process.env.SYNOD_ENDPOINTS;
  if (!list) throw new UsageError('no endpoints: pass --endpoints http://HOST:PORT,... (or set SYNOD_ENDPOINTS)');
  const flag = o.endpoints !== undefined ? '--endpoints' : 'SYNOD_ENDPOINTS';
  const endpoints = list.split(',').map((e) => e.trim()).filter(Boolean);
  if (endpoints.length === 0) throw new UsageError(`${flag} lists no address: pass --endpoints http://HOST:PORT,...`);
  const timeoutMs = o.timeout ? Number(o.timeout) : 10_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of ms, got ${o.timeout}`);
  const answerBytesMax = o.answerMaxBytes === undefined ? undefined : Number(o.answerMaxBytes);
  if (answerBytesMax !== undefined && (!Number.isSafeInteger(answerBytesMax) || answerBytesMax < 1)) throw new UsageError(`--answer-max-bytes must be a positive integer, got ${o.answerMaxBytes}`);
  const security = securityOf(o);
  for (const e of endpoints) {
    let origin: string;
    try {
      origin = normalizeEndpoint(e, security.tls ? 'https' : 'http');
    } catch (x) {
      throw new UsageError(`${flag}: ${(x as Error).message}`);
    }
    if (origin.startsWith('https:') && !security.tls) throw new UsageError(`${flag}: ${e} is HTTPS: pass the cluster CA with --ca FILE (or SYNOD_CA), e.g. certs/ca.crt`);
  }
  return new HttpKvClient({ endpoints, timeoutMs, sessions: o.exactlyOnce === true, answerBytesMax, ...security });
}

function withCommon(c: Command, timeout: { help: string; default: string } = { help: 'give up retrying unavailable replicas after this long', default: '10000' }): Command {
  return c
    .option('--endpoints <urls>', 'replicas\' HTTP addresses, comma-separated (env SYNOD_ENDPOINTS)')
    .option('--json', 'print JSON for scripts')
    .option('--timeout <ms>', timeout.help, timeout.default)
    .option('--answer-max-bytes <n>', `most bytes of an answer read; past it the command fails, outcome unknown (default ${ANSWER_BYTES_MAX_DEFAULT}: raise it for values above ~10 MiB)`)
    .option('--ca <file>', 'HTTPS: the CA to trust, e.g. certs/ca.crt (env SYNOD_CA); endpoints without a scheme become https://')
    .option('--cert <file>', 'HTTPS client certificate, for replicas started with --client-auth cert (env SYNOD_CERT)')
    .option('--key <file>', 'its private key (env SYNOD_KEY)')
    .option('--token-file <file>', 'bearer token: the first line of FILE (env SYNOD_TOKEN_FILE, or the token itself in SYNOD_TOKEN)');
}

/**
 * member add/remove: --timeout is also how long the leader may take for the change (the new
 * replica's catch-up, the configuration change), sent as ?timeoutMs=; the answer is awaited that
 * long plus MEMBERSHIP_ANSWER_MARGIN_MS, so that the server's own verdict arrives first.
 */
const MEMBERSHIP_TIMEOUT = {
  help: `how long the leader may take for the change (sent as timeoutMs: the new replica's catch-up and the configuration change), and how long to retry unavailable replicas (at most ${MEMBERSHIP_TIMEOUT_MS_MAX})`,
  default: String(MEMBERSHIP_TIMEOUT_MS_DEFAULT),
};
const MEMBERSHIP_ANSWER_MARGIN_MS = 10_000;

function membershipTimeoutOf(o: Common): number {
  const t = Math.ceil(Number(o.timeout ?? MEMBERSHIP_TIMEOUT.default));
  if (!Number.isSafeInteger(t) || t < 1 || t > MEMBERSHIP_TIMEOUT_MS_MAX) throw new UsageError(`--timeout must be 1..${MEMBERSHIP_TIMEOUT_MS_MAX} ms for a membership change, got ${o.timeout}`);
  return t;
}

/** A membership change's call: the server's limit in the query, and a longer wait for the answer. */
async function changeMembership(c: HttpKvClient, o: Common, method: 'POST' | 'DELETE', path: string, body?: string): Promise<{ members: number[] }> {
  const timeoutMs = membershipTimeoutOf(o);
  const sep = path.includes('?') ? '&' : '?';
  try {
    const a = await c.call(method, `${path}${sep}timeoutMs=${timeoutMs}`, body, [], { requestTimeoutMs: timeoutMs + MEMBERSHIP_ANSWER_MARGIN_MS });
    return JSON.parse(a.body.toString('utf8')) as { members: number[] };
  } catch (e) {
    // The leader's deadline (SynodReplica.waitFor's "... in time"): before the configuration change
    // was proposed nothing changed; after, the change may still take effect.
    if (e instanceof HttpStatusError && e.status === 409 && / did not take effect in time$/.test(e.message)) {
      throw new ExitError(EXIT_UNKNOWN, `outcome unknown (${e.endpoint}): ${e.message} within --timeout ${timeoutMs} ms; it was proposed and may still take effect (check with synod member list)`);
    }
    if (e instanceof HttpStatusError && e.status === 409 && / in time$/.test(e.message)) {
      throw new ExitError(EXIT_USAGE, `refused (HTTP 409 ${e.code}): ${e.message} (within --timeout ${timeoutMs} ms; the members are unchanged: pass a longer --timeout to wait longer)`);
    }
    throw e;
  }
}

/** For put, del, cas: `--exactly-once`. */
function withSession(c: Command): Command {
  return c.option('--exactly-once', 'open a session first (one more log write) and retry a write whose outcome is unknown (504) under it until --timeout: applied at most once');
}

/** Runs a command body with a client, turning HTTP failures into exit codes with clear messages. */
async function run(o: Common, body: (c: HttpKvClient) => Promise<void>): Promise<void> {
  const client = clientOf(o);
  try {
    await body(client);
  } catch (e) {
    if (e instanceof HttpStatusError) {
      if (e.status === 504 || e.maybeApplied) throw new ExitError(EXIT_UNKNOWN, `outcome unknown (${e.endpoint}): ${e.message}`);
      if (e.status === 401) throw new ExitError(EXIT_USAGE, `refused (HTTP 401 ${e.code}): ${e.message} (pass --token-file FILE or set SYNOD_TOKEN)`);
      if (e.certain) throw new ExitError(EXIT_UNAVAILABLE, `not applied: ${e.message}${e.status === 0 ? ' (is the replica running? check --endpoints; for HTTPS pass --ca)' : ''}`);
      throw new ExitError(EXIT_USAGE, `refused (HTTP ${e.status} ${e.code}): ${e.message}`);
    }
    throw e;
  } finally {
    client.close();
  }
}

const seg = (key: string) => encodeURIComponent(key);

interface Base64Flag {
  /** KEY, VALUE, EXPECTED, PREFIX and --after are base64, and keys and values are printed as base64. */
  base64?: boolean;
}

const BASE64_HELP = 'keys and values are base64, given and printed (for bytes that are not UTF-8 text)';
/** A base64 argument as bytes, refused (usage error naming it) unless it is strictly base64. */
function base64Arg(text: string, what: string): Buffer {
  const bytes = decodeBase64Strict(text);
  if (bytes === null) throw new UsageError(`${what} is not base64 (--base64): ${JSON.stringify(text.slice(0, 64))}`);
  return bytes;
}

/** The path of a key route: the key as UTF-8 text, or (--base64) as base64 with ?keyEncoding=base64. */
function keyPath(route: 'kv' | 'cas', key: string, o: Base64Flag): string {
  if (!o.base64) return `/v1/${route}/${seg(key)}`;
  if (base64Arg(key, 'KEY').length === 0) throw new UsageError('KEY is empty');
  return `/v1/${route}/${seg(key)}?keyEncoding=base64`;
}

/** Joins query parameters onto a path that may already have some. */
const withQuery = (path: string, query: string) => (query === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${query}`);

export function clientCommands(): Command[] {
  const out = (o: Common, json: unknown, text: string) => process.stdout.write(o.json ? JSON.stringify(json) + '\n' : text + (text.endsWith('\n') || text === '' ? '' : '\n'));

  const put = withSession(withCommon(new Command('put').description('write a value').argument('<key>').argument('[value]', 'the value (default: read stdin, as raw bytes)').option('--base64', BASE64_HELP))).action(async (key: string, value: string | undefined, o: Common & Base64Flag) => {
    const path = keyPath('kv', key, o);
    const v = value === undefined ? await readStdin() : o.base64 ? base64Arg(value, 'VALUE') : value;
    await run(o, async (c) => {
      await c.write('PUT', path, v);
      out(o, { ok: true }, 'OK');
    });
  });

  const get = withCommon(new Command('get').description('read a value').argument('<key>').option('--consistency <c>', 'linearizable | lease | local', 'linearizable').option('--base64', BASE64_HELP)).action(
    async (key: string, o: Common & Base64Flag & { consistency: string }) => {
      const path = withQuery(keyPath('kv', key, o), `consistency=${encodeURIComponent(o.consistency)}`);
      await run(o, async (c) => {
        const a = await c.call('GET', path, undefined, [404]);
        if (a.status === 404) {
          if (o.json) out(o, { found: false }, '');
          throw new ExitError(EXIT_NOT_FOUND, o.json ? '' : `key ${JSON.stringify(key)} not found`);
        }
        const text = a.body.toString(o.base64 ? 'base64' : 'utf8');
        if (o.json) out(o, { found: true, value: text, ...(o.base64 ? { encoding: 'base64' } : {}) }, '');
        else process.stdout.write(text + '\n');
      });
    },
  );

  const del = withSession(withCommon(new Command('del').alias('delete').description('delete a key').argument('<key>').option('--base64', BASE64_HELP))).action(async (key: string, o: Common & Base64Flag) => {
    const path = keyPath('kv', key, o);
    await run(o, async (c) => {
      const a = await c.write('DELETE', path);
      const j = JSON.parse(a.body.toString('utf8')) as { existed: boolean };
      out(o, j, j.existed ? 'OK (deleted)' : 'OK (was absent)');
    });
  });

  const cas = withSession(withCommon(
    new Command('cas')
      .description('compare-and-set: write VALUE only if the current value is EXPECTED (--absent: only if the key is absent)')
      .argument('<key>')
      .argument('<expected-or-value>', 'EXPECTED VALUE, or just VALUE with --absent')
      .argument('[value]')
      .option('--absent', 'expect the key to be absent')
      .option('--base64', BASE64_HELP),
  )).action(async (key: string, a1: string | undefined, a2: string | undefined, o: Common & Base64Flag & { absent?: boolean }) => {
    let expected: string | null;
    let value: string;
    if (o.absent) {
      if (a2 !== undefined) throw new UsageError('with --absent give only KEY VALUE');
      expected = null;
      value = a1!;
    } else {
      if (a2 === undefined) throw new UsageError('give KEY EXPECTED VALUE, or KEY VALUE with --absent');
      expected = a1!;
      value = a2;
    }
    if (value === undefined) throw new UsageError('missing VALUE');
    let path = keyPath('cas', key, o);
    if (o.base64) {
      // Checked here for a usage error naming the argument; sent as given (the server decodes).
      if (expected !== null) base64Arg(expected, 'EXPECTED');
      base64Arg(value, 'VALUE');
      path = withQuery(path, 'encoding=base64');
    }
    await run(o, async (c) => {
      const a = await c.write('POST', path, JSON.stringify({ expected, value }), [409]);
      if (a.status === 409) {
        const j = JSON.parse(a.body.toString('utf8')) as { current: string | null };
        if (o.json) out(o, { swapped: false, current: j.current }, '');
        throw new ExitError(EXIT_NOT_FOUND, o.json ? '' : `not swapped: the current value is ${j.current === null ? 'absent' : JSON.stringify(j.current)}`);
      }
      out(o, { swapped: true }, 'OK (swapped)');
    });
  });

  const scan = withCommon(
    new Command('scan').description('list keys with a prefix').argument('[prefix]', 'key prefix', '').option('--limit <n>', 'most entries', '100').option('--after <key>', 'only keys after this one (the next page)').option('--consistency <c>', 'linearizable | lease | local', 'linearizable').option('--base64', BASE64_HELP),
  ).action(async (prefix: string, o: Common & Base64Flag & { limit: string; after?: string; consistency: string }) => {
    if (o.base64) {
      base64Arg(prefix, 'PREFIX');
      if (o.after !== undefined) base64Arg(o.after, '--after');
    }
    await run(o, async (c) => {
      const after = o.after === undefined ? '' : `&after=${encodeURIComponent(o.after)}`;
      const encoding = o.base64 ? '&encoding=base64' : '';
      const a = await c.call('GET', `/v1/scan?prefix=${encodeURIComponent(prefix)}&limit=${encodeURIComponent(o.limit)}${after}&consistency=${encodeURIComponent(o.consistency)}${encoding}`);
      const j = JSON.parse(a.body.toString('utf8')) as { entries: Array<{ key: string; value: string }>; more: boolean };
      const text = j.entries.length === 0 ? '(no keys)' : table(['KEY', 'VALUE'], j.entries.map((e) => [e.key, e.value.length > 60 ? e.value.slice(0, 57) + '...' : e.value])) + (j.more ? `\n(more: continue with --after ${JSON.stringify(j.entries.at(-1)!.key)})` : '');
      out(o, j, text);
    });
  });

  const status = withCommon(new Command('status').description('a table of the cluster, as each replica sees it')).action(async (o: Common) => {
    await run(o, async (c) => {
      const rows = await clusterStatus(c);
      const text = table(
        ['ID', 'ROLE', 'HTTP', 'PEER', 'BALLOT', 'COMMIT', 'APPLIED', 'KEYS', 'STATE DIGEST'],
        rows.map((r) =>
          r.status
            ? [r.id, r.status.role + notMember(r), r.http ?? '-', r.peer ?? '-', r.status.ballot, r.status.commitIndex, r.status.appliedIndex, r.status.kv.keys, digestText(r.status.stateDigest)]
            : [r.id, (r.http ? 'DOWN' : '?') + notMember(r), r.http ?? '-', r.peer ?? '-', '-', '-', '-', `(${r.error})`, '-'],
        ),
      );
      const leader = rows.find((r) => r.status?.role === 'leader');
      const diverged = rows.filter((r) => (r.status?.stateDigest?.differ.length ?? 0) > 0).map((r) => r.id);
      const warning = diverged.length > 0 ? `\nSTATE DIVERGENCE reported by replica ${diverged.join(', ')}: see docs/operations.md, "State divergence"` : '';
      out(o, rows, `${text}\n${leader ? `leader: replica ${leader.id}` : 'no leader'}${warning}`);
    });
  });

  const member = new Command('member').description('cluster membership');
  member.addCommand(
    withCommon(new Command('list').description('list the members')).action(async (o: Common) => {
      await run(o, async (c) => {
        const a = await c.call('GET', '/v1/members');
        const j = JSON.parse(a.body.toString('utf8')) as { members: Array<{ id: number; peer: string; http: string; member: boolean }> };
        out(o, j, table(['ID', 'PEER', 'HTTP'], j.members.filter((m) => m.member).map((m) => [m.id, m.peer ?? '-', m.http ?? '-'])));
      });
    }),
  );
  member.addCommand(
    withCommon(
      new Command('add')
        .description('add a replica started with --join: it catches up as a learner, then becomes a member')
        .argument('<id>')
        .argument('<peer>', "the new replica's peer address HOST:PORT")
        .option('--http <host:port>', "the new replica's HTTP address, replicated with the add (it announces its own whenever it leads; this makes it known from the add on)")
        .option('--binary <host:port>', "the new replica's binary protocol address, likewise"),
      MEMBERSHIP_TIMEOUT,
    ).action(async (id: string, peer: string, o: Common & { http?: string; binary?: string }) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`ID must be a replica id, got ${JSON.stringify(id)}`);
      for (const [what, text] of [['PEER', peer], ['--http', o.http], ['--binary', o.binary]] as const) {
        if (text !== undefined && !/^.+:\d{1,5}$/.test(text)) throw new UsageError(`${what} must be HOST:PORT, got ${JSON.stringify(text)}`);
      }
      membershipTimeoutOf(o);
      await run(o, async (c) => {
        const body = { id: Number(id), peer, ...(o.http !== undefined ? { http: o.http } : {}), ...(o.binary !== undefined ? { binary: o.binary } : {}) };
        const j = await changeMembership(c, o, 'POST', '/v1/members', JSON.stringify(body));
        out(o, j, `OK: replica ${id} is a member; members now ${j.members.join(',')}`);
      });
    }),
  );
  member.addCommand(
    withCommon(new Command('remove').description('remove a member (refused if no live quorum would remain)').argument('<id>'), MEMBERSHIP_TIMEOUT).action(async (id: string, o: Common) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`ID must be a replica id, got ${JSON.stringify(id)}`);
      membershipTimeoutOf(o);
      await run(o, async (c) => {
        const j = await changeMembership(c, o, 'DELETE', `/v1/members?id=${id}`);
        out(o, j, `OK: replica ${id} removed; members now ${j.members.join(',')}`);
      });
    }),
  );

  const leader = new Command('leader').description('leadership');
  leader.addCommand(
    withCommon(new Command('transfer').description('hand leadership to replica ID').argument('<id>')).action(async (id: string, o: Common) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`ID must be a replica id, got ${JSON.stringify(id)}`);
      await run(o, async (c) => {
        await c.call('POST', `/v1/leader/transfer?to=${id}`);
        out(o, { ok: true, to: Number(id) }, `OK: leadership is moving to replica ${id}`);
      });
    }),
  );

  return [put, get, del, cas, scan, status, member, leader];
}

/** A replica the asked one knows but not as a member (removed, or a learner not yet added): said in ROLE. */
function notMember(r: StatusRow): string {
  // Its own word beats the asked replica's view: it learned from a member that it was removed.
  if (r.status?.removal) return ' (removed: stop it)';
  return r.member === false ? ' (not a member)' : '';
}

export interface StatusRow {
  id: number;
  /** In the current configuration, as the first replica that answered sees it. */
  member?: boolean;
  http: string | null;
  peer: string | null;
  status: null | {
    role: string;
    leader: number | null;
    ballot: number;
    commitIndex: number;
    appliedIndex: number;
    kv: { keys: number };
    stateDigest?: StateDigestStatus | null;
    /** Set when a member told this replica that it was removed (a build before session 23: absent). */
    removal?: RemovalNotice | null;
  };
  error?: string;
}

/** Asks every replica it can learn of (the endpoints, then the members they list). */
export async function clusterStatus(c: HttpKvClient): Promise<StatusRow[]> {
  const first = await c.call('GET', '/v1/status');
  const s0 = JSON.parse(first.body.toString('utf8')) as { members: Array<{ id: number; member?: boolean; http: string | null; peer: string | null }> };
  return Promise.all(
    s0.members.map(async (m): Promise<StatusRow> => {
      const member = m.member ?? true;
      if (!m.http) return { id: m.id, member, http: null, peer: m.peer, status: null, error: 'HTTP address unknown' };
      const one = new HttpKvClient({ endpoints: [m.http], timeoutMs: 1, requestTimeoutMs: 2_000, ...c.sameSecurity });
      try {
        const a = await one.call('GET', '/v1/status');
        return { id: m.id, member, http: m.http, peer: m.peer, status: JSON.parse(a.body.toString('utf8')) };
      } catch (e) {
        return { id: m.id, member, http: m.http, peer: m.peer, status: null, error: (e as Error).message };
      } finally {
        one.close();
      }
    }),
  );
}

/** The value piped on stdin, as raw bytes (a file that is not UTF-8 text is written as it is). */
async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) throw new UsageError('give the VALUE as an argument, or pipe it on stdin');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
