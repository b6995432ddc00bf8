// Running the built `synod` CLI from tests, and small fake HTTP servers for the client's edge cases.

import { execFile } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAIN_JS } from '../../src/cli/cluster-procs.js';

export interface Run {
  /** The exit code, or null when the CLI was killed (it ran past `timeoutMs`). */
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `synod ...args` (node dist/src/cli/main.js) with SYNOD_* endpoint and token variables cleared. */
export function synod(args: string[], o: { timeoutMs?: number; env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, SYNOD_ENDPOINTS: '', ...o.env };
  for (const k of ['SYNOD_CA', 'SYNOD_CERT', 'SYNOD_KEY', 'SYNOD_TOKEN_FILE', 'SYNOD_TOKEN', 'SYNOD_LOG_LEVEL', 'SYNOD_CONFIG', 'SYNOD_DEBUG']) if (o.env?.[k] === undefined) delete env[k];
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN_JS, ...args], { timeout: o.timeoutMs ?? 20_000, killSignal: 'SIGKILL', env }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
      const code = e === null ? 0 : e.killed || typeof e.code !== 'number' ? null : e.code;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
    child.stdin!.end(o.input);
  });
}

export interface FakeServer {
  url: string;
  port: number;
  /** Requests received, in order: method and URL. */
  requests: Array<{ method: string; url: string; body: string }>;
  close(): Promise<void>;
}

/** An HTTP server on a free loopback port that answers with `handler` (which sees the server's own URL). */
export async function fakeServer(handler: (req: http.IncomingMessage, res: http.ServerResponse, self: string, body: string) => void): Promise<FakeServer> {
  const requests: FakeServer['requests'] = [];
  let self = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      handler(req, res, self, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  self = `http://127.0.0.1:${port}`;
  return {
    url: self,
    port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
