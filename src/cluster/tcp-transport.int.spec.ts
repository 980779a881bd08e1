import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { SeededRandom } from '../runtime/random.js';
import { decodeFrame, FrameReader } from './frame-codec.js';
import { encodeMessage, handshakeProof, TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
import type { WireValue } from './transport.js';

/**
 * Real TCP transports on 127.0.0.1 (port 0), on the system clock, with short backoff so that
 * reconnects happen within a test. Every wait is on a condition (vi.waitFor polls it); nothing
 * sleeps. A peer that misbehaves (a slow reader, an oversize sender) is a raw socket speaking the
 * real handshake, since a TcpTransport never misbehaves on purpose.
 */

const clusterSecret = 'the-cluster-secret-for-tests';
const settings = { reconnectBackoffMinMs: 5, reconnectBackoffMaxMs: 50 };
const waitLong = { timeout: 10_000, interval: 5 };

interface Node {
  readonly transport: TcpTransport;
  readonly received: { from: string; frame: WireValue }[];
}

const open: TcpTransport[] = [];
const servers: net.Server[] = [];
/** Sockets the raw peers accepted; a paused one never sees its end, so it is destroyed by hand. */
const rawSockets: net.Socket[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((transport) => transport.close()));
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function node(nodeId: string, options: Partial<TcpTransportOptions> = {}): Promise<Node> {
  const transport = await TcpTransport.listen({
    nodeId,
    host: '127.0.0.1',
    port: 0,
    clusterSecret,
    settings,
    random: new SeededRandom(nodeId.length),
    ...options,
  });
  open.push(transport);
  const received: Node['received'] = [];
  transport.onFrame((from, frame) => received.push({ from, frame }));
  return { transport, received };
}

function connectAll(nodes: readonly Node[]): void {
  const peers = nodes.map(({ transport }) => ({ nodeId: transport.nodeId, address: transport.address }));
  for (const { transport } of nodes) transport.setPeers(peers);
}

const challengeSchema = z.object({ t: z.literal('challenge'), nodeId: z.string(), nonce: z.string() });
const helloSchema = z.object({ t: z.literal('hello'), nodeId: z.string(), nonce: z.string() });

/** A raw client that completes the handshake as `nodeId`; resolves with its socket once welcomed. */
function rawClient(port: number, nodeId: string): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const reader = new FrameReader(4_096);
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      const reading = reader.push(chunk);
      if (!reading.ok) return reject(new Error(reading.reason));
      for (const payload of reading.payloads) {
        const decoded = decodeFrame(payload);
        const value = decoded.ok ? decoded.value : undefined;
        const challenge = challengeSchema.safeParse(value);
        if (challenge.success) {
          const { nonce, nodeId: serverId } = challenge.data;
          const proof = handshakeProof(clusterSecret, 'hello', nonce, nodeId, serverId);
          socket.write(encodeMessage({ t: 'hello', nodeId, nonce: '0'.repeat(32), proof }));
        } else {
          socket.removeAllListeners('data');
          resolve(socket);
        }
      }
    });
  });
}

/** A raw listener that completes the handshake as `nodeId` and then stops reading. */
async function slowReader(nodeId: string): Promise<{ address: string; connected: () => boolean }> {
  let connected = false;
  const server = net.createServer((socket) => {
    rawSockets.push(socket);
    const nonce = 'f'.repeat(32);
    const reader = new FrameReader(4_096);
    socket.write(encodeMessage({ t: 'challenge', nodeId, nonce }));
    socket.on('data', (chunk: Buffer) => {
      const reading = reader.push(chunk);
      for (const payload of reading.ok ? reading.payloads : []) {
        const decoded = decodeFrame(payload);
        const hello = helloSchema.safeParse(decoded.ok ? decoded.value : undefined);
        if (!hello.success) continue;
        const proof = handshakeProof(clusterSecret, 'welcome', hello.data.nonce, nodeId, hello.data.nodeId);
        socket.write(encodeMessage({ t: 'welcome', proof }));
        socket.removeAllListeners('data');
        socket.pause();
        connected = true;
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : 0;
  return { address: `127.0.0.1:${port}`, connected: () => connected };
}

function framesFrom(node: Node, from: string): WireValue[] {
  return node.received.filter((entry) => entry.from === from).map((entry) => entry.frame);
}

describe('TcpTransport', () => {
  it('carries frames between three nodes, each sender in order, bigints exact', async () => {
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => node(id)));
    connectAll(nodes);
    const count = 300;
    for (let sequence = 0; sequence < count; sequence++) {
      for (const sender of nodes) {
        for (const receiver of nodes) {
          if (sender === receiver) continue;
          const frame = { sequence, amount: 10n ** 20n + BigInt(sequence), from: sender.transport.nodeId };
          expect(sender.transport.send(receiver.transport.nodeId, frame)).toBe(true);
        }
      }
    }
    await vi.waitFor(() => {
      for (const receiver of nodes) expect(receiver.received).toHaveLength(2 * count);
    }, waitLong);
    for (const receiver of nodes) {
      for (const sender of nodes) {
        if (sender === receiver) continue;
        const id = sender.transport.nodeId;
        expect(framesFrom(receiver, id)).toEqual(
          Array.from({ length: count }, (_, sequence) => ({
            sequence,
            amount: 10n ** 20n + BigInt(sequence),
            from: id,
          })),
        );
      }
    }
    expect(nodes[0]?.transport.stats()).toMatchObject({
      framesSent: 2 * count,
      framesReceived: 2 * count,
      framesDropped: 0,
    });
  });

  it('delivers a frame to its own node through the codec, and refuses an unknown peer', async () => {
    const a = await node('a');
    expect(a.transport.send('a', { amount: 5n })).toBe(true);
    expect(a.transport.send('nobody', 1)).toBe(false);
    expect(a.transport.send('a', { when: new Date(0) })).toBe(false);
    await vi.waitFor(() => expect(a.received).toEqual([{ from: 'a', frame: { amount: 5n } }]), waitLong);
    expect(a.transport.stats().framesDropped).toBe(2);
  });

  it('reconnects to a peer that restarts on the same port, and frames flow again', async () => {
    const a = await node('a');
    const b = await node('b');
    connectAll([a, b]);
    expect(a.transport.send('b', 'before')).toBe(true);
    await vi.waitFor(() => expect(b.received).toEqual([{ from: 'a', frame: 'before' }]), waitLong);

    await b.transport.close();
    const restarted = await node('b', { port: b.transport.port });
    restarted.transport.setPeers([{ nodeId: 'a', address: a.transport.address }]);
    await vi.waitFor(() => {
      expect(a.transport.stats().reconnects).toBeGreaterThan(0);
      expect(a.transport.connectedPeers()).toEqual(['b']);
    }, waitLong);
    for (const frame of ['after-1', 'after-2', 'after-3']) expect(a.transport.send('b', frame)).toBe(true);
    await vi.waitFor(
      () => expect(framesFrom(restarted, 'a')).toEqual(['after-1', 'after-2', 'after-3']),
      waitLong,
    );
  });

  it('follows setPeers: a removed peer is disconnected and unknown, a moved one is reached at its new address', async () => {
    const a = await node('a');
    const b = await node('b');
    connectAll([a, b]);
    await vi.waitFor(() => expect(a.transport.connectedPeers()).toEqual(['b']), waitLong);
    a.transport.setPeers([]);
    expect(a.transport.connectedPeers()).toEqual([]);
    expect(a.transport.send('b', 'gone')).toBe(false);

    const moved = await node('b');
    moved.transport.setPeers([{ nodeId: 'a', address: a.transport.address }]);
    a.transport.setPeers([{ nodeId: 'b', address: moved.transport.address }]);
    expect(a.transport.send('b', 'to the new address')).toBe(true);
    await vi.waitFor(() => expect(framesFrom(moved, 'a')).toEqual(['to the new address']), waitLong);
    expect(framesFrom(b, 'a')).toEqual([]);
  });

  it('refuses a stranger and a node with the wrong secret', async () => {
    const b = await node('b');
    const stranger = await node('stranger');
    const impostor = await node('impostor', { clusterSecret: 'not-the-cluster-secret' });
    b.transport.setPeers([{ nodeId: 'impostor', address: impostor.transport.address }]);
    stranger.transport.setPeers([{ nodeId: 'b', address: b.transport.address }]);
    impostor.transport.setPeers([{ nodeId: 'b', address: b.transport.address }]);
    stranger.transport.send('b', 'let me in');
    impostor.transport.send('b', 'let me in');
    // Each refused node retries with backoff, so both are refused at least twice.
    await vi.waitFor(
      () => expect(b.transport.stats().connectionsRefused).toBeGreaterThanOrEqual(4),
      waitLong,
    );
    expect(b.received).toEqual([]);
    expect(stranger.transport.connectedPeers()).toEqual([]);
    expect(impostor.transport.connectedPeers()).toEqual([]);
    // b's own connection to the impostor fails the same way, from the other side.
    expect(b.transport.connectedPeers()).toEqual([]);
    expect(impostor.transport.stats().connectionsRefused).toBeGreaterThan(0);
  });

  it('refuses an oversize frame at the sender and closes a connection that sends one', async () => {
    const frameBytesMax = 4_096;
    const a = await node('a', { settings: { ...settings, frameBytesMax } });
    const b = await node('b', { settings: { ...settings, frameBytesMax } });
    connectAll([a, b]);
    expect(a.transport.send('b', 'x'.repeat(frameBytesMax))).toBe(false);
    expect(a.transport.stats().framesDropped).toBe(1);

    const socket = await rawClient(b.transport.port, 'a');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(frameBytesMax + 1, 0);
    socket.write(header);
    await closed;
    expect(b.transport.stats().protocolErrors).toBe(1);
    expect(b.received).toEqual([]);
  });

  it('drops frames once a slow reader has filled the send buffer, holding no more than the limit', async () => {
    const sendBufferBytesMax = 256 * 1_024;
    const a = await node('a', { settings: { ...settings, sendBufferBytesMax, frameBytesMax: 64 * 1_024 } });
    const slow = await slowReader('slow');
    a.transport.setPeers([{ nodeId: 'slow', address: slow.address }]);
    await vi.waitFor(() => expect(a.transport.connectedPeers()).toEqual(['slow']), waitLong);
    const frame = 'y'.repeat(16 * 1_024);
    // The kernel's socket buffers absorb some megabytes first; the bound on attempts only keeps a
    // broken transport from running forever (it would then fail the expectations below).
    let accepted = 0;
    while (accepted < 10_000 && a.transport.send('slow', frame)) accepted++;
    expect(accepted).toBeLessThan(10_000);
    expect(a.transport.send('slow', frame)).toBe(false);
    expect(a.transport.stats().bufferedBytes).toBeLessThanOrEqual(sendBufferBytesMax);
    expect(a.transport.stats().framesDropped).toBe(2);
    expect(slow.connected()).toBe(true);
  });

  it('leaves no socket, listener or timer behind after close', async () => {
    const kinds = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];
    const count = () => process.getActiveResourcesInfo().filter((kind) => kinds.includes(kind)).length;
    const before = count();
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => node(id)));
    connectAll(nodes);
    await vi.waitFor(() => {
      for (const { transport } of nodes) expect(transport.connectedPeers()).toHaveLength(2);
    }, waitLong);
    expect(count()).toBeGreaterThan(before);
    await Promise.all(open.splice(0).map((transport) => transport.close()));
    expect(count()).toBeLessThanOrEqual(before);
    expect(nodes[0]?.transport.send('b', 'after close')).toBe(false);
  });
});
