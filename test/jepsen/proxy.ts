// The in-project network for the black-box tests: TCP proxies between replicas whose links the
// nemesis can block (one way or both), delay or make lossy.
//
// Design note
// -----------
// Peer traffic: one proxy per *target* replica. Every replica's --initial-cluster names, for each
// peer j, the address of j's proxy instead of j's real --peer port (its own entry stays real, as
// `synod start` requires). The transport's dialer speaks first with a hello that carries its
// senderId (src/transport/handshake.ts), so the proxy learns which directed link (sender ->
// target) a connection is and applies that link's rule. After the handshake only the dialer
// sends frames, so one connection carries the messages of one direction: a one-way partition is
// "stall the dialer's bytes on that link"; the acceptor's welcome always passes.
//
// HTTP forwarding (a follower relays a write to the leader's HTTP port): one proxy per directed
// pair (i -> j), listed in replica i's --initial-http; requests obey rule(i, j), answers rule(j, i).
//
// What the rules do to a stream (TCP cannot lose bytes in the middle without breaking framing):
//   blocked   bytes are held (the sender's writes succeed until buffers fill, as when packets
//             are dropped and TCP retransmits); on heal the held bytes are delivered late,
//             in order, as TCP would after a partition heals, unless the connection died.
//   delayMs   each chunk is delivered delayMs after it arrived, order kept.
//   lossRate  per chunk, the probability that the connection is reset instead: the chunk and
//             everything in flight is lost, and the sender must reconnect (burst loss).
//
// Limits: held bytes per connection (HELD_BYTES_MAX: reading pauses beyond it), connections per
// proxy (CONNECTIONS_MAX), hello size (the envelope and the first 8 body bytes).
//
// Known gap: a replica that installs a peer's snapshot takes that peer's address book from it
// (src/runtime/replica.ts installSnapshot), including the peer's *real* address for itself; after
// that its traffic to that peer bypasses the proxy. The harness notes snapshot installs in the
// report (see run.ts); with the default snapshot interval (10,000 slots) they are rare.

import * as net from 'node:net';

export interface LinkRule {
  readonly blocked: boolean;
  readonly delayMs: number;
  readonly lossRate: number;
}

const OPEN: LinkRule = { blocked: false, delayMs: 0, lossRate: 0 };
const HELD_BYTES_MAX = 8 * 1024 * 1024;
const CONNECTIONS_MAX = 1024;
const HELLO_BYTES = 15; // envelope 7 + versionMin 2 + versionMax 2 + senderId 2 + targetId 2
const HELLO_WAIT_MS = 5_000;

/** The rules of every directed link, shared by all proxies. */
export class Network {
  private readonly rules = new Map<string, LinkRule>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly random: () => number) {}

  rule(from: number, to: number): LinkRule {
    return this.rules.get(`${from}>${to}`) ?? OPEN;
  }

  set(from: number, to: number, rule: Partial<LinkRule>): void {
    if (from === to) throw new Error(`a link needs two replicas, got ${from} -> ${to}`);
    this.rules.set(`${from}>${to}`, { ...this.rule(from, to), ...rule });
    this.changed();
  }

  /** Cut every link between the two groups, both ways. */
  partition(a: readonly number[], b: readonly number[]): void {
    for (const x of a) for (const y of b) {
      this.rules.set(`${x}>${y}`, { ...this.rule(x, y), blocked: true });
      this.rules.set(`${y}>${x}`, { ...this.rule(y, x), blocked: true });
    }
    this.changed();
  }

  heal(): void {
    this.rules.clear();
    this.changed();
  }

  /** Blocked or impaired links, for the report: "1>2 blocked", "2>3 delay 80ms". */
  describe(): string[] {
    const out: string[] = [];
    for (const [link, r] of this.rules) {
      const parts: string[] = [];
      if (r.blocked) parts.push('blocked');
      if (r.delayMs > 0) parts.push(`delay ${r.delayMs}ms`);
      if (r.lossRate > 0) parts.push(`loss ${r.lossRate}`);
      if (parts.length) out.push(`${link} ${parts.join(' ')}`);
    }
    return out;
  }

  roll(): number {
    return this.random();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}

/** One direction of one proxied connection: bytes from `source` to `sink` under rule(from, to). */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer; dueMs: number }> = [];
  private heldBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastDueMs = 0;

  constructor(
    private readonly net: Network,
    private readonly source: net.Socket,
    private readonly sink: net.Socket,
    private readonly link: () => { from: number; to: number } | null,
    private readonly reset: () => void,
  ) {
    source.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private rule(): LinkRule {
    const l = this.link();
    return l === null ? OPEN : this.net.rule(l.from, l.to);
  }

  private onData(chunk: Buffer): void {
    const rule = this.rule();
    if (rule.lossRate > 0 && this.net.roll() < rule.lossRate) return this.reset();
    const dueMs = Math.max(Date.now() + rule.delayMs, this.lastDueMs);
    this.lastDueMs = dueMs;
    this.queue.push({ chunk, dueMs });
    this.heldBytes += chunk.length;
    if (this.heldBytes > HELD_BYTES_MAX) this.source.pause();
    this.pump();
  }

  /** Delivers what is due, unless the link is blocked; re-run on every rule change. */
  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.rule().blocked || this.sink.destroyed) return;
    const nowMs = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= nowMs) {
      const { chunk } = this.queue.shift()!;
      this.heldBytes -= chunk.length;
      this.sink.write(chunk);
    }
    if (this.heldBytes <= HELD_BYTES_MAX && this.source.isPaused()) this.source.resume();
    if (this.queue.length > 0) this.timer = setTimeout(() => this.pump(), Math.max(1, this.queue[0]!.dueMs - nowMs));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

export interface LinkProxyOptions {
  network: Network;
  listenPort: number;
  targetPort: number;
  host?: string;
  /** The replica behind the proxy. */
  to: number;
  /** The dialing replica when it is fixed (HTTP proxies); for peer proxies, read from the hello. */
  from?: number;
  /** Whether the answers (target -> dialer) obey rule(to, from) too (HTTP: yes; peer: no). */
  bothWays: boolean;
}

export class LinkProxy {
  private readonly server: net.Server;
  private readonly connections = new Set<{ client: net.Socket; upstream: net.Socket | null; pipes: Pipe[] }>();
  private readonly unsubscribe: () => void;
  /** Connections accepted, by dialer id (peer proxies learn it from the hello). */
  readonly accepted = new Map<number, number>();

  constructor(private readonly o: LinkProxyOptions) {
    this.server = net.createServer((client) => this.onConnection(client));
    this.unsubscribe = o.network.onChange(() => {
      for (const c of this.connections) for (const p of c.pipes) p.pump();
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.listenPort, this.o.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const c of this.connections) {
      for (const p of c.pipes) p.stop();
      c.client.destroy();
      c.upstream?.destroy();
    }
    this.connections.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: net.Socket): void {
    if (this.connections.size >= CONNECTIONS_MAX) return void client.destroy();
    const conn = { client, upstream: null as net.Socket | null, pipes: [] as Pipe[] };
    this.connections.add(conn);
    const drop = () => {
      for (const p of conn.pipes) p.stop();
      client.destroy();
      conn.upstream?.destroy();
      this.connections.delete(conn);
    };
    client.on('error', drop);
    client.on('close', drop);
    if (this.o.from !== undefined) return this.connectUpstream(conn, this.o.from, Buffer.alloc(0), drop);
    // Peer proxy: read the hello to learn the dialer's id, then connect and replay it.
    let head = Buffer.alloc(0);
    const timer = setTimeout(drop, HELLO_WAIT_MS);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HELLO_BYTES) return;
      clearTimeout(timer);
      client.off('data', onHead);
      client.pause();
      const isHello = head.toString('latin1', 0, 4) === 'SYNP' && head[4] === 1;
      if (!isHello) return drop();
      this.connectUpstream(conn, head.readUInt16BE(11), head, drop);
    };
    client.on('data', onHead);
  }

  private connectUpstream(
    conn: { client: net.Socket; upstream: net.Socket | null; pipes: Pipe[] },
    from: number,
    head: Buffer,
    drop: () => void,
  ): void {
    this.accepted.set(from, (this.accepted.get(from) ?? 0) + 1);
    const upstream = net.connect(this.o.targetPort, this.o.host ?? '127.0.0.1');
    conn.upstream = upstream;
    upstream.on('error', drop);
    upstream.on('close', drop);
    const to = this.o.to;
    const forward = new Pipe(this.o.network, conn.client, upstream, () => ({ from, to }), drop);
    const back = new Pipe(this.o.network, upstream, conn.client, () => (this.o.bothWays ? { from: to, to: from } : null), drop);
    conn.pipes.push(forward, back);
    // The hello is subject to the link's rule like any other bytes: a blocked link never
    // completes a handshake.
    if (head.length > 0) conn.client.unshift(head);
    conn.client.resume();
  }
}
