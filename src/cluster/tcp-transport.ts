import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { z } from 'zod';
import { type Cancellable, type Clock, systemClock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import { type Random, systemRandom } from '../runtime/random.js';
import {
  decodeFrame,
  encodeFrame,
  encodeLengthPrefixed,
  FrameEncodingError,
  FrameReader,
  frameHeaderBytes,
} from './frame-codec.js';
import type { Transport, TransportPeer, WireValue } from './transport.js';

/**
 * The node-to-node transport: plain TCP (node:net) with our own length-prefixed JSON frames.
 *
 * Why not HTTP/2, WebSocket (`ws`) or gRPC (`@grpc/grpc-js`): all three are well kept, but each
 * adds a protocol layer that buys nothing here. The transport only has to carry small frames in
 * order between a handful of nodes, lose them harmlessly (everything that matters is retried above
 * it) and never let one slow peer eat the heap. TCP gives ordering per connection; a 4-byte length
 * prefix gives frames; the bounded buffer is one number we compare against `socket.writableLength`
 * plus our own queue before every write, with no library's internal queue hidden under it. gRPC
 * would bring protobuf schemas and HTTP/2 flow control we would have to size around; `ws` would
 * bring the HTTP upgrade dance and its own buffering while we still write the handshake,
 * reconnects and bounds ourselves. So: no new dependency, one syscall path, limits we can see.
 *
 * Shape: each node keeps one outbound connection to each peer and sends on it only; it accepts one
 * inbound connection from each peer and receives on it only (one connection per direction of a
 * pair). A reply therefore travels on the replier's own outbound connection. A connection opens
 * with a handshake in which each side proves it holds the cluster secret (HMAC-SHA256 over a fresh
 * nonce of the other side and both node ids), and the accepting side refuses node ids that are
 * not among its peers. Every frame, handshake included, is a length-prefixed JSON message.
 */

/** A frame before its handshake is done: small, so a stranger cannot make us buffer much. */
const handshakeBytesMax = 4_096;
/** Bytes of frames gathered into one write before it is flushed within the same turn. */
const corkedBytesMax = 64 * 1_024;
const nodeIdSchema = z.string().min(1).max(200);
const nonceSchema = z.string().regex(/^[0-9a-f]{32}$/);
const proofSchema = z.string().regex(/^[0-9a-f]{64}$/);

const controlMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('challenge'), nodeId: nodeIdSchema, nonce: nonceSchema }),
  z.object({ t: z.literal('hello'), nodeId: nodeIdSchema, nonce: nonceSchema, proof: proofSchema }),
  z.object({ t: z.literal('welcome'), proof: proofSchema }),
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('pong') }),
]);
type ControlMessage = z.infer<typeof controlMessageSchema>;

export const tcpTransportSettingsSchema = z
  .object({
    /** The largest frame on the wire, its envelope included; larger ones are refused both ways. */
    frameBytesMax: z
      .number()
      .int()
      .min(1_024)
      .max(1 << 30),
    /** Bytes waiting for one peer (our queue plus the socket's); beyond it `send` drops and returns false. */
    sendBufferBytesMax: z.number().int().min(1_024),
    /** The first reconnect waits about this long; each failure doubles it, up to the maximum. */
    reconnectBackoffMinMs: z.number().int().min(1),
    reconnectBackoffMaxMs: z.number().int().min(1),
    /** How often an idle connection is pinged (and its silence looked at). */
    keepaliveIntervalMs: z.number().int().min(10),
    /** A connection that heard nothing for this long is dead and closed (then reconnected). */
    keepaliveTimeoutMs: z.number().int().min(10),
    /** A connection whose handshake has not finished by then is closed. */
    handshakeTimeoutMs: z.number().int().min(10),
    /** Inbound connections held at once (peers, plus strangers being refused). */
    inboundConnectionsMax: z.number().int().min(1),
  })
  .superRefine((settings, context) => {
    if (settings.reconnectBackoffMaxMs < settings.reconnectBackoffMinMs) {
      context.addIssue({
        code: 'custom',
        path: ['reconnectBackoffMaxMs'],
        message: 'reconnectBackoffMaxMs cannot be less than reconnectBackoffMinMs',
      });
    }
    if (settings.keepaliveTimeoutMs < settings.keepaliveIntervalMs * 2) {
      context.addIssue({
        code: 'custom',
        path: ['keepaliveTimeoutMs'],
        message: 'keepaliveTimeoutMs must be at least two keepaliveIntervalMs (one late pong is not death)',
      });
    }
    if (settings.sendBufferBytesMax < settings.frameBytesMax + frameHeaderBytes) {
      context.addIssue({
        code: 'custom',
        path: ['sendBufferBytesMax'],
        message: 'sendBufferBytesMax must hold at least one frame of frameBytesMax',
      });
    }
  });

export type TcpTransportSettings = z.infer<typeof tcpTransportSettingsSchema>;

/**
 * Frames carry commands and replies of a few hundred bytes, so 1 MiB is far above any real one;
 * 8 MiB per peer is thousands of frames of headroom while a peer is slow, and a bounded cost per
 * peer. Keepalive finds a dead peer in about the time membership declares it down (5 s).
 */
export const defaultTcpTransportSettings: TcpTransportSettings = {
  frameBytesMax: 1 << 20,
  sendBufferBytesMax: 8 << 20,
  reconnectBackoffMinMs: 50,
  reconnectBackoffMaxMs: 2_000,
  keepaliveIntervalMs: 1_000,
  keepaliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 2_000,
  inboundConnectionsMax: 256,
};

/** Parses settings given in part, filling the rest from the defaults. */
export function tcpTransportSettings(input: Partial<TcpTransportSettings> = {}): TcpTransportSettings {
  return tcpTransportSettingsSchema.parse({ ...defaultTcpTransportSettings, ...input });
}

const optionsSchema = z.object({
  nodeId: nodeIdSchema,
  /** 127.0.0.1 to stay on this machine, 0.0.0.0 (or an interface's address) to serve a network. */
  host: z.string().min(1),
  /** 0 picks a free port (tests). */
  port: z.number().int().min(0).max(65_535),
  /** Shared by every node of the cluster; never sent, only proven. */
  clusterSecret: z.string().min(16),
});

export interface TcpTransportOptions extends z.infer<typeof optionsSchema> {
  readonly settings?: Partial<TcpTransportSettings>;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
}

export interface TcpTransportStats {
  /** Frames written to a socket. */
  readonly framesSent: number;
  /** Frames received and handed to the handler. */
  readonly framesReceived: number;
  /** Frames refused by `send` (unknown peer, buffer full, too large, not JSON) or discarded unsent. */
  readonly framesDropped: number;
  /** Connection attempts after the first to a peer. */
  readonly reconnects: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Inbound connections refused at the handshake (stranger, wrong secret, timeout). */
  readonly connectionsRefused: number;
  /** Connections closed for a bad frame after the handshake (too large, not JSON, unexpected). */
  readonly protocolErrors: number;
  /** Bytes waiting to be sent, over all peers. */
  readonly bufferedBytes: number;
}

/** The HMAC that proves a side of a handshake knows the cluster secret. */
export function handshakeProof(
  clusterSecret: string,
  purpose: 'hello' | 'welcome',
  nonce: string,
  fromNodeId: string,
  toNodeId: string,
): string {
  return createHmac('sha256', clusterSecret)
    .update(JSON.stringify(['remit-cluster-1', purpose, nonce, fromNodeId, toNodeId]))
    .digest('hex');
}

/** The wait before reconnect attempt `failures` (1, 2, …): exponential, capped, jittered over its upper half. */
export function reconnectDelayMs(failures: number, settings: TcpTransportSettings, random: Random): number {
  const ceiling = Math.min(
    settings.reconnectBackoffMaxMs,
    settings.reconnectBackoffMinMs * 2 ** Math.min(Math.max(failures - 1, 0), 30),
  );
  return Math.max(settings.reconnectBackoffMinMs, Math.round(ceiling * (0.5 + random.next() / 2)));
}

/** Encodes one message of the wire protocol with its length prefix. */
export function encodeMessage(message: ControlMessage | { t: 'f'; b: WireValue }): Buffer {
  return encodeLengthPrefixed(encodeFrame(message));
}

type Decoded =
  | { readonly kind: 'frame'; readonly body: WireValue }
  | { readonly kind: 'control'; readonly message: ControlMessage }
  | { readonly kind: 'invalid'; readonly reason: string };

function decodeMessage(payload: Buffer): Decoded {
  const decoded = decodeFrame(payload);
  if (!decoded.ok) return { kind: 'invalid', reason: decoded.reason };
  const value = decoded.value;
  if (typeof value === 'object' && value !== null && Reflect.get(value, 't') === 'f' && 'b' in value) {
    return { kind: 'frame', body: Reflect.get(value, 'b') };
  }
  const control = controlMessageSchema.safeParse(value);
  return control.success
    ? { kind: 'control', message: control.data }
    : { kind: 'invalid', reason: 'message of an unknown shape' };
}

function parseAddress(address: string): { host: string; port: number } | undefined {
  const match = /^(.+):(\d{1,5})$/.exec(address);
  const host = match?.[1]?.replace(/^\[(.*)\]$/, '$1');
  const port = Number(match?.[2]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

interface Counters {
  framesSent: number;
  framesReceived: number;
  framesDropped: number;
  reconnects: number;
  bytesSent: number;
  bytesReceived: number;
  connectionsRefused: number;
  protocolErrors: number;
}

interface Context {
  readonly nodeId: string;
  readonly clusterSecret: string;
  readonly settings: TcpTransportSettings;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly counters: Counters;
}

/**
 * The connection this node sends to one peer on: connects, proves itself, sends, and after any
 * loss waits a jittered, growing delay and connects again, until the peer is removed.
 */
class OutboundLink {
  private socket: net.Socket | undefined;
  private state: 'connecting' | 'open' | 'waiting' | 'closed' = 'waiting';
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private failures = 0;
  private attempts = 0;
  private timer: Cancellable | undefined;
  private lastHeardAt = 0;
  private closedSockets: Promise<void>[] = [];
  private corkedBytes = 0;

  constructor(
    readonly peer: TransportPeer,
    private readonly target: { host: string; port: number },
    private readonly context: Context,
  ) {
    this.connect();
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  bufferedBytes(): number {
    return this.queuedBytes + (this.socket?.writableLength ?? 0);
  }

  /** Queues or writes a framed message; the caller has checked the buffer bound. */
  enqueue(framed: Buffer): void {
    if (this.state === 'open' && this.socket !== undefined) {
      this.write(this.socket, framed);
    } else {
      this.queue.push(framed);
      this.queuedBytes += framed.length;
    }
  }

  /** Ends the link for good: timers cancelled, socket destroyed, unsent frames counted as dropped. */
  close(): Promise<void> {
    this.state = 'closed';
    this.timer?.cancel();
    this.context.counters.framesDropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.socket?.destroy();
    return Promise.all(this.closedSockets).then(() => undefined);
  }

  private connect(): void {
    if (this.state === 'closed') return;
    this.attempts++;
    if (this.attempts > 1) this.context.counters.reconnects++;
    this.state = 'connecting';
    const { settings, clock } = this.context;
    const socket = net.connect({ host: this.target.host, port: this.target.port });
    this.socket = socket;
    this.closedSockets.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, settings.keepaliveIntervalMs);
    const reader = new FrameReader(handshakeBytesMax);
    let clientNonce: string | undefined;
    this.timer = clock.schedule(settings.handshakeTimeoutMs, () => this.fail(socket, 'handshake timed out'));
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.socket) return;
      this.context.counters.bytesReceived += chunk.length;
      this.lastHeardAt = clock.now();
      const reading = reader.push(chunk);
      if (!reading.ok) return this.fail(socket, reading.reason);
      for (const payload of reading.payloads) {
        const decoded = decodeMessage(payload);
        if (decoded.kind !== 'control') return this.fail(socket, `unexpected message from the peer`);
        const message = decoded.message;
        if (message.t === 'challenge' && clientNonce === undefined) {
          if (message.nodeId !== this.peer.nodeId) {
            return this.fail(socket, `the listener at ${this.peer.address} is node ${message.nodeId}`);
          }
          clientNonce = randomBytes(16).toString('hex');
          const proof = handshakeProof(
            this.context.clusterSecret,
            'hello',
            message.nonce,
            this.context.nodeId,
            this.peer.nodeId,
          );
          socket.write(encodeMessage({ t: 'hello', nodeId: this.context.nodeId, nonce: clientNonce, proof }));
        } else if (message.t === 'welcome' && clientNonce !== undefined && this.state === 'connecting') {
          const expected = handshakeProof(
            this.context.clusterSecret,
            'welcome',
            clientNonce,
            this.peer.nodeId,
            this.context.nodeId,
          );
          if (!proofsEqual(message.proof, expected))
            return this.fail(socket, 'the peer does not hold the secret');
          reader.setFrameBytesMax(settings.frameBytesMax);
          this.opened(socket);
        } else if (message.t !== 'pong') {
          return this.fail(socket, `unexpected ${message.t} from the peer`);
        }
      }
    });
    socket.on('error', (error) => this.fail(socket, error.message));
    socket.on('close', () => this.lost(socket));
  }

  private opened(socket: net.Socket): void {
    this.timer?.cancel();
    this.state = 'open';
    this.failures = 0;
    this.lastHeardAt = this.context.clock.now();
    this.context.logger.info({ peer: this.peer.nodeId }, 'cluster connection open');
    const queued = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const framed of queued) this.write(socket, framed);
    this.keepalive(socket);
  }

  private keepalive(socket: net.Socket): void {
    const { settings, clock } = this.context;
    this.timer = clock.schedule(settings.keepaliveIntervalMs, () => {
      if (socket !== this.socket || this.state !== 'open') return;
      if (clock.now() - this.lastHeardAt > settings.keepaliveTimeoutMs) {
        return this.fail(socket, `no answer for ${settings.keepaliveTimeoutMs} ms`);
      }
      socket.write(encodeMessage({ t: 'ping' }));
      this.keepalive(socket);
    });
  }

  private write(socket: net.Socket, framed: Buffer): void {
    // Frames sent in one turn of the event loop leave together in one writev, not one syscall
    // each; a batch is flushed early at `corkedBytesMax` so a burst streams instead of piling up.
    if (socket.writableCorked === 0) {
      socket.cork();
      this.corkedBytes = 0;
      process.nextTick(() => {
        if (socket.writableCorked > 0) socket.uncork();
      });
    }
    socket.write(framed);
    this.corkedBytes += framed.length;
    if (this.corkedBytes >= corkedBytesMax) {
      socket.uncork();
      this.corkedBytes = 0;
    }
    this.context.counters.framesSent++;
    this.context.counters.bytesSent += framed.length;
  }

  private fail(socket: net.Socket, reason: string): void {
    if (socket !== this.socket || this.state === 'closed') return;
    this.context.logger.warn({ peer: this.peer.nodeId, reason }, 'cluster connection lost');
    socket.destroy();
  }

  private lost(socket: net.Socket): void {
    if (socket !== this.socket || this.state === 'closed') return;
    this.timer?.cancel();
    this.socket = undefined;
    this.state = 'waiting';
    this.failures++;
    const delayMs = reconnectDelayMs(this.failures, this.context.settings, this.context.random);
    this.timer = this.context.clock.schedule(delayMs, () => this.connect());
    // Keep only the sockets still closing, so a long-lived link does not collect promises.
    this.closedSockets = this.closedSockets.slice(-1);
  }
}

function proofsEqual(given: string, expected: string): boolean {
  const givenBytes = Buffer.from(given, 'hex');
  const expectedBytes = Buffer.from(expected, 'hex');
  return givenBytes.length === expectedBytes.length && timingSafeEqual(givenBytes, expectedBytes);
}

/** See the comment at the top of this file. */
export class TcpTransport implements Transport {
  readonly nodeId: string;
  private readonly context: Context;
  private readonly server: net.Server;
  private readonly links = new Map<string, OutboundLink>();
  private readonly inbound = new Map<string, net.Socket>();
  private readonly accepted = new Set<net.Socket>();
  private peers = new Map<string, TransportPeer>();
  private handler: ((fromNodeId: string, frame: WireValue) => void) | undefined;
  private closed = false;
  private boundPort = 0;

  private constructor(
    private readonly options: z.infer<typeof optionsSchema>,
    settings: TcpTransportSettings,
    clock: Clock,
    random: Random,
    logger: Logger,
  ) {
    this.nodeId = options.nodeId;
    this.context = {
      nodeId: options.nodeId,
      clusterSecret: options.clusterSecret,
      settings,
      clock,
      random,
      logger,
      counters: {
        framesSent: 0,
        framesReceived: 0,
        framesDropped: 0,
        reconnects: 0,
        bytesSent: 0,
        bytesReceived: 0,
        connectionsRefused: 0,
        protocolErrors: 0,
      },
    };
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.maxConnections = settings.inboundConnectionsMax;
  }

  /** Opens the listener and answers once it accepts connections. */
  static async listen(options: TcpTransportOptions): Promise<TcpTransport> {
    const parsed = optionsSchema.parse(options);
    const transport = new TcpTransport(
      parsed,
      tcpTransportSettings(options.settings),
      options.clock ?? systemClock,
      options.random ?? systemRandom,
      (options.logger ?? silentLogger).child({ component: 'tcp-transport', nodeId: parsed.nodeId }),
    );
    await new Promise<void>((resolve, reject) => {
      transport.server.once('error', reject);
      transport.server.listen({ host: parsed.host, port: parsed.port }, () => {
        transport.server.off('error', reject);
        resolve();
      });
    });
    const bound = transport.server.address();
    transport.boundPort = typeof bound === 'object' && bound !== null ? bound.port : parsed.port;
    transport.server.on('error', (error) =>
      transport.context.logger.error({ reason: error.message }, 'cluster listener failed'),
    );
    return transport;
  }

  /** host:port this transport listens on (the port the system chose when asked for 0). */
  get address(): string {
    return `${this.options.host}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  send(toNodeId: string, frame: WireValue): boolean {
    const link = this.links.get(toNodeId);
    if (this.closed || (link === undefined && toNodeId !== this.nodeId)) return this.drop();
    let payload: Buffer;
    try {
      payload = encodeFrame({ t: 'f', b: frame });
    } catch (error) {
      // A FrameEncodingError is the caller's bug, anything else (a string too long for JSON) its
      // data's; either way this frame cannot be sent, and `send` never throws.
      const reason =
        error instanceof FrameEncodingError || error instanceof Error ? error.message : 'unknown';
      this.context.logger.error({ peer: toNodeId, reason }, 'frame cannot be encoded; dropped');
      return this.drop();
    }
    if (payload.length > this.context.settings.frameBytesMax) {
      this.context.logger.warn({ peer: toNodeId, bytes: payload.length }, 'frame too large; dropped');
      return this.drop();
    }
    if (link === undefined) return this.sendToSelf(payload);
    const framed = encodeLengthPrefixed(payload);
    if (link.bufferedBytes() + framed.length > this.context.settings.sendBufferBytesMax) return this.drop();
    link.enqueue(framed);
    return true;
  }

  onFrame(handler: (fromNodeId: string, frame: WireValue) => void): void {
    this.handler = handler;
  }

  setPeers(peers: readonly TransportPeer[]): void {
    if (this.closed) return;
    const next = new Map<string, TransportPeer>();
    for (const peer of peers) {
      if (peer.nodeId === this.nodeId) continue;
      next.set(peer.nodeId, peer);
    }
    for (const [nodeId, link] of this.links) {
      if (next.get(nodeId)?.address !== link.peer.address) {
        void link.close();
        this.links.delete(nodeId);
      }
    }
    for (const [nodeId, socket] of this.inbound) {
      if (!next.has(nodeId)) socket.destroy();
    }
    for (const peer of next.values()) {
      if (this.links.has(peer.nodeId)) continue;
      const target = parseAddress(peer.address);
      if (target === undefined) {
        this.context.logger.error(
          { peer: peer.nodeId, address: peer.address },
          'peer address is not host:port',
        );
        continue;
      }
      this.links.set(peer.nodeId, new OutboundLink(peer, target, this.context));
    }
    this.peers = next;
  }

  /** Peers whose outbound connection has finished its handshake. */
  connectedPeers(): string[] {
    return [...this.links.values()].filter((link) => link.isOpen).map((link) => link.peer.nodeId);
  }

  stats(): TcpTransportStats {
    let bufferedBytes = 0;
    for (const link of this.links.values()) bufferedBytes += link.bufferedBytes();
    return { ...this.context.counters, bufferedBytes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const linksClosed = [...this.links.values()].map((link) => link.close());
    this.links.clear();
    for (const socket of this.accepted) socket.destroy();
    await Promise.all([...linksClosed, new Promise<void>((resolve) => this.server.close(() => resolve()))]);
  }

  private drop(): false {
    this.context.counters.framesDropped++;
    return false;
  }

  /** A frame to this node itself goes through the codec (same copy and checks) and arrives on a later turn. */
  private sendToSelf(payload: Buffer): boolean {
    queueMicrotask(() => {
      const decoded = decodeMessage(payload);
      if (decoded.kind === 'frame' && !this.closed) this.deliver(this.nodeId, decoded.body);
    });
    return true;
  }

  /** An inbound connection: challenge, check the peer's proof, then receive its frames. */
  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const { settings, clock, counters, logger } = this.context;
    this.accepted.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, settings.keepaliveIntervalMs);
    const reader = new FrameReader(handshakeBytesMax);
    const nonce = randomBytes(16).toString('hex');
    let from: string | undefined;
    let lastHeardAt = clock.now();
    let timer: Cancellable | undefined = clock.schedule(settings.handshakeTimeoutMs, () =>
      refuse('handshake timed out'),
    );
    const refuse = (reason: string): void => {
      counters.connectionsRefused++;
      logger.warn({ remote: socket.remoteAddress, reason }, 'cluster connection refused');
      socket.destroy();
    };
    const violate = (reason: string): void => {
      counters.protocolErrors++;
      logger.warn({ peer: from, reason }, 'cluster connection closed for a bad frame');
      socket.destroy();
    };
    const watch = (): void => {
      timer = clock.schedule(settings.keepaliveIntervalMs, () => {
        if (clock.now() - lastHeardAt > settings.keepaliveTimeoutMs) {
          logger.warn({ peer: from }, 'cluster connection silent; closed');
          socket.destroy();
        } else watch();
      });
    };
    socket.on('data', (chunk: Buffer) => {
      if (socket.destroyed) return;
      counters.bytesReceived += chunk.length;
      lastHeardAt = clock.now();
      const reading = reader.push(chunk);
      if (!reading.ok) return from === undefined ? refuse(reading.reason) : violate(reading.reason);
      for (const payload of reading.payloads) {
        if (socket.destroyed) return;
        const decoded = decodeMessage(payload);
        if (from === undefined) {
          if (decoded.kind !== 'control' || decoded.message.t !== 'hello') return refuse('expected a hello');
          const hello = decoded.message;
          if (!this.peers.has(hello.nodeId)) return refuse(`node ${hello.nodeId} is not a peer`);
          const expected = handshakeProof(
            this.context.clusterSecret,
            'hello',
            nonce,
            hello.nodeId,
            this.nodeId,
          );
          if (!proofsEqual(hello.proof, expected)) return refuse(`node ${hello.nodeId} has the wrong secret`);
          from = hello.nodeId;
          timer?.cancel();
          reader.setFrameBytesMax(settings.frameBytesMax);
          this.inbound.get(from)?.destroy();
          this.inbound.set(from, socket);
          const proof = handshakeProof(this.context.clusterSecret, 'welcome', hello.nonce, this.nodeId, from);
          socket.write(encodeMessage({ t: 'welcome', proof }));
          watch();
        } else if (decoded.kind === 'frame') {
          counters.framesReceived++;
          this.deliver(from, decoded.body);
        } else if (decoded.kind === 'control' && decoded.message.t === 'ping') {
          socket.write(encodeMessage({ t: 'pong' }));
        } else {
          return violate(decoded.kind === 'invalid' ? decoded.reason : `unexpected ${decoded.message.t}`);
        }
      }
    });
    socket.on('error', (error) =>
      logger.debug({ peer: from, reason: error.message }, 'cluster socket error'),
    );
    socket.on('close', () => {
      timer?.cancel();
      this.accepted.delete(socket);
      if (from !== undefined && this.inbound.get(from) === socket) this.inbound.delete(from);
    });
    socket.write(encodeMessage({ t: 'challenge', nodeId: this.nodeId, nonce }));
  }

  private deliver(from: string, frame: WireValue): void {
    try {
      this.handler?.(from, frame);
    } catch (error) {
      this.context.logger.error(
        { peer: from, reason: error instanceof Error ? error.message : String(error) },
        'frame handler threw',
      );
    }
  }
}
