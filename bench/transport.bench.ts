/**
 * Throughput and round-trip latency of the node-to-node TCP transport (src/cluster/tcp-transport.ts).
 *
 * Goal: know how many frames per second one node can send another, and what a request and its
 * reply cost in time on the wire, so the sharding layer's budget for a forwarded command is known.
 * Method: two TcpTransports on 127.0.0.1, first in one process (both on one event loop, so CPU of
 * both ends adds up), then (unless `--in-process-only`) with the echoing node in a child process.
 * Frames are ~200-byte commands shaped like a forwarded order (ids, a bigint amount).
 *
 * - throughput: the sender keeps sending; when `send` returns false (buffer full) it yields one
 *   turn and goes on; the receiver counts. Frames/s = frames received / elapsed.
 * - latency: one request in flight (then `--concurrency` in flight), the echo node replies on its
 *   own outbound connection; p50/p99 of the round trip in microseconds.
 *
 * Run: `npm run bench:transport -- [--frames 200000] [--round-trips 20000] [--concurrency 64]
 * [--json results.json] [--in-process-only]`. Prints JSON.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'hdr-histogram-js';
import { TcpTransport } from '../src/cluster/tcp-transport.js';
import type { Transport, WireValue } from '../src/cluster/transport.js';

const clusterSecret = 'bench-cluster-secret-0123456789';
const host = '127.0.0.1';

const { values } = parseArgs({
  options: {
    frames: { type: 'string' },
    'round-trips': { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'string' },
    'in-process-only': { type: 'boolean' },
    role: { type: 'string' },
    'peer-address': { type: 'string' },
  },
  strict: true,
});

function positiveInteger(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${flag} must be a positive integer, got ${text}`);
  return value;
}

const framesTotal = positiveInteger(values.frames, 200_000, '--frames');
const roundTrips = positiveInteger(values['round-trips'], 20_000, '--round-trips');
const concurrency = positiveInteger(values.concurrency, 64, '--concurrency');

function command(sequence: number): WireValue {
  return {
    type: 'ProcessNewOrder',
    sequence,
    merchantId: 'merchant-0042',
    orderId: `order-${sequence.toString().padStart(10, '0')}`,
    idempotencyKey: `key-${sequence}`,
    amount: 1_250n + BigInt(sequence),
    currency: 'EUR',
    replyTo: { nodeId: 'sender', ref: sequence },
  };
}

/** A node that sends every `ProcessNewOrder` frame back to its sender and counts the rest. */
function echo(transport: Transport): void {
  transport.onFrame((from, frame) => {
    transport.send(from, frame);
  });
}

async function listen(nodeId: string): Promise<TcpTransport> {
  return TcpTransport.listen({ nodeId, host, port: 0, clusterSecret });
}

async function connected(transport: TcpTransport, peer: string): Promise<void> {
  while (!transport.connectedPeers().includes(peer)) await new Promise((resolve) => setTimeout(resolve, 5));
}

const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function throughput(sender: TcpTransport, receiverId: string, countReceived: () => number) {
  const start = performance.now();
  let sent = 0;
  let refusals = 0;
  while (sent < framesTotal) {
    if (sender.send(receiverId, command(sent))) sent++;
    else {
      refusals++;
      await yieldTurn();
    }
  }
  // Polled every millisecond: the count may arrive as a reply from another process.
  while (countReceived() < framesTotal) await new Promise((resolve) => setTimeout(resolve, 1));
  const seconds = (performance.now() - start) / 1_000;
  return {
    frames: framesTotal,
    framesPerSecond: Math.round(framesTotal / seconds),
    bufferFullRefusals: refusals,
  };
}

/** Round trips with `inFlight` requests outstanding; the echo node answers each. */
async function latency(sender: TcpTransport, echoId: string, inFlight: number) {
  const histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const sentAt = new Map<number, number>();
  let next = 0;
  let done = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const issue = (): void => {
    if (next >= roundTrips) return;
    const sequence = next++;
    sentAt.set(sequence, performance.now());
    sender.send(echoId, { type: 'Ping', sequence, amount: BigInt(sequence) });
  };
  sender.onFrame((_from, frame) => {
    if (typeof frame !== 'object' || frame === null) return;
    const sequence = Reflect.get(frame, 'sequence');
    const started = typeof sequence === 'number' ? sentAt.get(sequence) : undefined;
    if (started === undefined || typeof sequence !== 'number') return;
    sentAt.delete(sequence);
    histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1_000)));
    done++;
    if (done === roundTrips) finish();
    else issue();
  });
  const start = performance.now();
  for (let index = 0; index < inFlight; index++) issue();
  await finished;
  const seconds = (performance.now() - start) / 1_000;
  const result = {
    inFlight,
    roundTrips,
    roundTripsPerSecond: Math.round(roundTrips / seconds),
    p50Us: histogram.getValueAtPercentile(50),
    p99Us: histogram.getValueAtPercentile(99),
    maxUs: histogram.maxValue,
  };
  histogram.destroy();
  return result;
}

async function inProcess() {
  const sender = await listen('sender');
  const receiver = await listen('receiver');
  sender.setPeers([{ nodeId: 'receiver', address: receiver.address }]);
  receiver.setPeers([{ nodeId: 'sender', address: sender.address }]);
  let received = 0;
  receiver.onFrame(() => {
    received++;
  });
  await connected(sender, 'receiver');
  await connected(receiver, 'sender');
  const throughputResult = await throughput(sender, 'receiver', () => received);
  echo(receiver);
  const result = {
    throughput: throughputResult,
    latencyOneInFlight: await latency(sender, 'receiver', 1),
    latencyConcurrent: await latency(sender, 'receiver', concurrency),
    senderStats: sender.stats(),
  };
  await Promise.all([sender.close(), receiver.close()]);
  return result;
}

/** The child process: counts commands, echoes pings, answers `Count` with the count. */
async function childEcho(peerAddress: string) {
  const transport = await listen('receiver');
  transport.setPeers([{ nodeId: 'sender', address: peerAddress }]);
  let commands = 0;
  transport.onFrame((from, frame) => {
    const type = typeof frame === 'object' && frame !== null ? Reflect.get(frame, 'type') : undefined;
    if (type === 'ProcessNewOrder') commands++;
    else if (type === 'Ping') transport.send(from, frame);
    else if (type === 'Count') transport.send(from, { type: 'Counted', received: commands });
    else if (type === 'Stop') void transport.close().then(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ address: transport.address })}\n`);
}

async function twoProcesses() {
  const sender = await listen('sender');
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--role', 'echo', '--peer-address', sender.address],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const address = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (chunk: Buffer) => {
      const parsed: unknown = JSON.parse(chunk.toString('utf8'));
      const value =
        typeof parsed === 'object' && parsed !== null ? Reflect.get(parsed, 'address') : undefined;
      if (typeof value === 'string') resolve(value);
      else reject(new Error('the echo process did not say its address'));
    });
  });
  sender.setPeers([{ nodeId: 'receiver', address }]);
  await connected(sender, 'receiver');
  // The receiver's count is asked for over the transport itself, after the last frame (same connection, in order).
  let counted = -1;
  sender.onFrame((_from, frame) => {
    const received = typeof frame === 'object' && frame !== null ? Reflect.get(frame, 'received') : undefined;
    if (typeof received === 'number') counted = received;
  });
  const countReceived = (): number => {
    if (counted < framesTotal) {
      counted = -1;
      sender.send('receiver', { type: 'Count' });
    }
    return counted;
  };
  const throughputResult = await throughput(sender, 'receiver', countReceived);
  const result = {
    throughput: throughputResult,
    latencyOneInFlight: await latency(sender, 'receiver', 1),
    latencyConcurrent: await latency(sender, 'receiver', concurrency),
    senderStats: sender.stats(),
  };
  sender.send('receiver', { type: 'Stop' });
  await new Promise((resolve) => child.once('exit', resolve));
  await sender.close();
  return result;
}

if (values.role === 'echo') {
  const peerAddress = values['peer-address'];
  if (peerAddress === undefined) throw new Error('--role echo needs --peer-address');
  await childEcho(peerAddress);
} else {
  const results = {
    benchmark: 'transport',
    frameShape: 'ProcessNewOrder, ~230 bytes of JSON with a bigint amount',
    inProcess: await inProcess(),
    twoProcesses: values['in-process-only'] ? undefined : await twoProcesses(),
  };
  const text = JSON.stringify(results, null, 2);
  process.stdout.write(`${text}\n`);
  if (values.json !== undefined) fs.writeFileSync(values.json, `${text}\n`);
}
