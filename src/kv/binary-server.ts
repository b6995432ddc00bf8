// The binary client protocol server of one replica (protocol in ./protocol.ts).
//
// Each connection decodes frames with the bounded transport decoder and runs every request at
// once: proposals from many requests (and many connections) land in the replica's proposal
// queue within one event-loop turn and go out as one batch. Answers are written as they come,
// corked per turn so that a burst of answers becomes one writev. A connection holds at most
// INFLIGHT_PER_CONNECTION_MAX requests: past that it stops reading until answers drain.
//
// This server never forwards: a follower answers NOT_LEADER with the leader's id and (when
// known) its binary address, and the client goes there. Nothing was proposed in that case.

import * as net from 'node:net';
import type { Logger } from 'pino';
import type { PeerAddress } from '../runtime/api.js';
import { NotLeaderError, OutcomeUnknownError, SessionExpiredError, ShuttingDownError, StorageFailedError } from '../runtime/errors.js';
import type { SynodReplica } from '../runtime/replica.js';
import { FrameDecoder } from '../transport/frame.js';
import { decodeCommand } from './codec.js';
import type { KvMachine } from './machine.js';
import {
  decodeRequest,
  encodeNotLeader,
  encodeResponse,
  FRAME_OVERHEAD_BYTES_MAX,
  KIND_READ,
  KIND_STATUS,
  KIND_WRITE,
  ProtocolError,
  ST_BAD_REQUEST,
  ST_NOT_LEADER,
  ST_OK,
  ST_OUTCOME_UNKNOWN,
  ST_SESSION_EXPIRED,
  ST_UNAVAILABLE,
  type Request,
} from './protocol.js';

const INFLIGHT_PER_CONNECTION_MAX = 4096;
const CONNECTIONS_MAX = 1024;
const TIMEOUT_MS_MAX = 60_000;
const HTTP_REFUSAL_BODY = 'this is a Synod binary client port; the HTTP API is on the --http address\n';

export interface KvBinaryServerOptions {
  replica: SynodReplica;
  machine: KvMachine;
  listen: PeerAddress;
  /** Binary addresses of the members, to point clients at the leader. */
  binaryAddresses?: Map<number, PeerAddress>;
  logger?: Logger;
}

export class KvBinaryServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly stats = { connections: 0, requests: 0, notLeader: 0, badFrames: 0 };

  constructor(private readonly o: KvBinaryServerOptions) {
    this.server = net.createServer((s) => this.onConnection(s));
    this.server.maxConnections = CONNECTIONS_MAX;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' ? new Error(`binary client port ${this.o.listen.port} on ${this.o.listen.host} is in use: pick another --binary address`) : e);
      this.server.once('error', onError);
      this.server.listen(this.o.listen.port, this.o.listen.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): PeerAddress {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  metricsText(): string {
    return [
      '# HELP synod_binary_requests_total Requests received on the binary client protocol.',
      '# TYPE synod_binary_requests_total counter',
      `synod_binary_requests_total ${this.stats.requests}`,
      '# HELP synod_binary_connections_total Connections accepted on the binary client protocol.',
      '# TYPE synod_binary_connections_total counter',
      `synod_binary_connections_total ${this.stats.connections}`,
      '# HELP synod_binary_bad_frames_total Undecodable frames (the connection is closed).',
      '# TYPE synod_binary_bad_frames_total counter',
      `synod_binary_bad_frames_total ${this.stats.badFrames}`,
      '',
    ].join('\n');
  }

  private onConnection(socket: net.Socket): void {
    this.stats.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.o.machine.valueBytesMax * 2 + FRAME_OVERHEAD_BYTES_MAX);
    let inflight = 0;
    let first = true;
    let corked = false;
    const send = (frame: Uint8Array) => {
      if (socket.destroyed) return;
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(() => {
          corked = false;
          socket.uncork();
        });
      }
      socket.write(frame);
    };
    const done = () => {
      inflight--;
      if (inflight < INFLIGHT_PER_CONNECTION_MAX / 2 && socket.isPaused()) socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      if (first) {
        first = false;
        // Somebody spoke HTTP to this port: say so in HTTP and hang up.
        if (/^(GET|PUT|POST|HEAD|DELETE|OPTIONS|PATCH) /.test(chunk.subarray(0, 8).toString('latin1'))) {
          this.stats.badFrames++;
          socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${HTTP_REFUSAL_BODY.length}\r\n\r\n${HTTP_REFUSAL_BODY}`);
          return;
        }
      }
      const err = decoder.push(chunk, (payload) => {
        let req: Request;
        try {
          req = decodeRequest(payload);
        } catch (e) {
          this.stats.badFrames++;
          const rid = payload.length >= 5 ? new DataView(payload.buffer, payload.byteOffset).getUint32(1) : 0;
          send(encodeResponse(ST_BAD_REQUEST, rid, new TextEncoder().encode((e as Error).message)));
          return;
        }
        this.stats.requests++;
        inflight++;
        if (inflight >= INFLIGHT_PER_CONNECTION_MAX) socket.pause();
        this.serve(req).then(
          ([status, body]) => {
            done();
            send(encodeResponse(status, req.requestId, body));
          },
          (e) => {
            done();
            send(encodeResponse(ST_OUTCOME_UNKNOWN, req.requestId, new TextEncoder().encode(String(e))));
          },
        );
      });
      if (err) {
        this.stats.badFrames++;
        this.o.logger?.warn({ remote: socket.remoteAddress, error: err.message }, 'binary client sent an undecodable stream; closing');
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  }

  private async serve(req: Request): Promise<[number, Uint8Array]> {
    const enc = (s: string) => new TextEncoder().encode(s);
    const { replica } = this.o;
    if (req.kind === KIND_STATUS) {
      const st = replica.status();
      const leaderAddr = st.leader === null ? null : this.o.binaryAddresses?.get(st.leader);
      return [ST_OK, enc(JSON.stringify({ id: st.id, role: st.role, leader: st.leader, leaderAddress: leaderAddr ? `${leaderAddr.host}:${leaderAddr.port}` : null, commitIndex: st.commitSlot, appliedIndex: st.appliedSlot }))];
    }
    try {
      if (req.kind === KIND_WRITE) {
        let cmd;
        try {
          cmd = decodeCommand(req.command);
        } catch (e) {
          return [ST_BAD_REQUEST, enc((e as Error).message)];
        }
        const refusal = this.o.machine.checkCommand(cmd);
        if (refusal && refusal.kind === 'error') return [ST_BAD_REQUEST, enc(refusal.message)];
        if (replica.status().role !== 'leader') return this.notLeader(replica.status().leader);
        const timeoutMs = Math.min(req.timeoutMs || 5_000, TIMEOUT_MS_MAX);
        // The command bytes are a view of the socket's chunk: copy, the log keeps them.
        const result = await replica.propose(req.command.slice(), { clientId: req.clientId, seq: req.seq, floor: req.floor, timeoutMs });
        return [ST_OK, result];
      }
      if (req.kind === KIND_READ) {
        if (req.consistency !== 'local' && replica.status().role !== 'leader') return this.notLeader(replica.status().leader);
        const r = await replica.read(req.query.slice(), { consistency: req.consistency, maxWaitMs: req.maxWaitMs || undefined });
        return [ST_OK, r.result];
      }
    } catch (e) {
      if (e instanceof NotLeaderError) return this.notLeader(e.leaderHint);
      if (e instanceof ShuttingDownError || e instanceof StorageFailedError) return [ST_UNAVAILABLE, enc(e.message)];
      if (e instanceof SessionExpiredError) return [ST_SESSION_EXPIRED, enc(e.message)];
      if (e instanceof OutcomeUnknownError) return [ST_OUTCOME_UNKNOWN, enc(e.message)];
      // Reads that time out, and anything unexpected: for a write we cannot prove it was not applied.
      return [req.kind === KIND_WRITE ? ST_OUTCOME_UNKNOWN : ST_UNAVAILABLE, enc((e as Error).message ?? String(e))];
    }
    throw new ProtocolError('unreachable');
  }

  private notLeader(leader: number | null): [number, Uint8Array] {
    this.stats.notLeader++;
    const a = leader === null || leader === this.o.replica.id ? undefined : this.o.binaryAddresses?.get(leader);
    return [ST_NOT_LEADER, encodeNotLeader(leader === this.o.replica.id ? null : leader, a ? `${a.host}:${a.port}` : '')];
  }
}
