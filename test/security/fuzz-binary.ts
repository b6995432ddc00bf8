// Binary port fuzzing, the first bytes of a connection (the AUTH pre-phase and the first frames):
// a 1-replica in-process KV node with or without tokens receives random byte sequences, split at
// random: random bytes, frames with any length prefix and an AUTH kind byte, AUTH frames with
// random or right tokens followed by random bytes, HTTP-looking starts. Every answer must be
// well-formed frames with a known status, the connection must end or go quiet within a bound, and
// afterwards a normal client still writes and reads. (It found a 9-byte frame that crashed the
// replica: an AUTH frame shorter than its header.)
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { KvClient } from '../../src/kv/client.js';
import { decodeResponse, encodeAuth, KIND_AUTH, ST_BAD_REQUEST, ST_NOT_LEADER, ST_OK, ST_OUTCOME_UNKNOWN, ST_SESSION_EXPIRED, ST_UNAUTHORIZED, ST_UNAVAILABLE } from '../../src/kv/protocol.js';
import type { PeerAddress } from '../../src/runtime/api.js';
import { FrameDecoder } from '../../src/transport/frame.js';
import { oneNode } from './one-node.js';

const TOKEN = 'fuzz-token-0123456789abcdef';
/** A connection that neither answers nor closes by then is left (silence is allowed: a partial frame waits). */
const QUIET_MS = 150;
/** Every status the protocol defines (src/kv/protocol.ts). */
const KNOWN_STATUSES = new Set([ST_OK, ST_NOT_LEADER, ST_UNAVAILABLE, ST_OUTCOME_UNKNOWN, ST_BAD_REQUEST, ST_SESSION_EXPIRED, ST_UNAUTHORIZED]);

export interface BinaryFuzz {
  property(): fc.IAsyncPropertyWithHooks<[Uint8Array[]]>;
  stillServing(): Promise<void>;
  close(): Promise<void>;
}

const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** The first bytes a client might send: each arbitrary, each shaped like the start of the protocol. */
function firstBytes(): fc.Arbitrary<Uint8Array> {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max });
  const lengthPrefix = fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 5000 }), fc.constant(0xffffffff));
  return fc.oneof(
    bytes(40),
    // A frame header with an AUTH kind byte and any length, then whatever follows.
    fc.tuple(lengthPrefix, bytes(12)).map(([n, rest]) => concat([u32(n), Uint8Array.of(KIND_AUTH), rest])),
    // A well-formed AUTH frame with a random token (often wrong), then random bytes.
    fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 64 }), bytes(30)).map(([id, token, rest]) => concat([encodeAuth(id, token), rest])),
    // The right token, then random bytes (the served phase's decoder must take them too).
    fc.tuple(fc.nat({ max: 1000 }), bytes(60)).map(([id, rest]) => concat([encodeAuth(id, new TextEncoder().encode(TOKEN)), rest])),
    fc.constantFrom('GET / HTTP/1.1\r\n\r\n', 'POST /v1/kv/x HTTP/1.1\r\ncontent-length: 1\r\n\r\nx').map((t) => new TextEncoder().encode(t)),
  );
}

/** Splits `bytes` at random points: the server must not depend on how the stream arrives. */
function chunked(): fc.Arbitrary<Uint8Array[]> {
  return fc.tuple(firstBytes(), fc.array(fc.nat(), { maxLength: 3 })).map(([bytes, cuts]) => {
    const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
    const out: Uint8Array[] = [];
    let from = 0;
    for (const p of points) {
      out.push(bytes.subarray(from, p));
      from = p;
    }
    out.push(bytes.subarray(from));
    return out.filter((c) => c.length > 0);
  });
}

/** Sends the chunks; resolves with what came back once the server closed or went quiet. */
function exchange(address: PeerAddress, chunks: Uint8Array[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(address.port, address.host);
    const got: Buffer[] = [];
    let quiet: NodeJS.Timeout | null = null;
    const done = () => {
      if (quiet) clearTimeout(quiet);
      socket.destroy();
      resolve(Buffer.concat(got));
    };
    const armQuiet = () => {
      if (quiet) clearTimeout(quiet);
      quiet = setTimeout(done, QUIET_MS);
    };
    socket.on('data', (c: Buffer) => {
      got.push(c);
      armQuiet();
    });
    socket.on('error', () => {}); // a reset after the answer is fine
    socket.on('close', done);
    socket.on('connect', async () => {
      try {
        for (const c of chunks) {
          if (socket.destroyed) break;
          socket.write(c);
          await new Promise((r) => setImmediate(r));
        }
        armQuiet();
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/** A 1-replica node; with `tokens`, connections must authenticate first. */
export async function binaryFuzzTarget(tokens: boolean): Promise<BinaryFuzz> {
  const { binary: address, close } = await oneNode({ binaryAuthTimeoutMs: 100 }, tokens ? { tokens: [TOKEN] } : undefined);
  return {
    property: () =>
      fc.asyncProperty(chunked(), async (chunks) => {
        const answer = await exchange(address, chunks);
        if (answer.length === 0 || answer.subarray(0, 5).toString('latin1') === 'HTTP/') return; // silence, or HTTP's own answer on this port
        // Whole frames, each a response with a status the protocol defines (a cut last frame is
        // allowed: the connection may be closed under it).
        const frames: Uint8Array[] = [];
        const error = new FrameDecoder(1 << 20).push(answer, (f) => frames.push(f.slice()));
        assert.equal(error, null, `the answer is not frames: ${answer.subarray(0, 40).toString('hex')}`);
        for (const f of frames) {
          const r = decodeResponse(f);
          assert.ok(KNOWN_STATUSES.has(r.status), `an answer with status ${r.status}: ${Buffer.from(f).toString('hex')}`);
        }
      }),
    async stillServing() {
      const kv = new KvClient({ endpoints: [`${address.host}:${address.port}`], timeoutMs: 3_000, ...(tokens ? { token: TOKEN } : {}) });
      try {
        await kv.put('after-fuzz', 'ok');
        const v = await kv.get('after-fuzz');
        assert.equal(v === null ? null : new TextDecoder().decode(v), 'ok');
      } finally {
        kv.close();
      }
    },
    close,
  };
}
