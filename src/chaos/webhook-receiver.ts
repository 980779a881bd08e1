import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { z } from 'zod';
import type { Random } from '../runtime/random.js';
import { verifyWebhookSignature, webhookSignatureHeader } from '../webhooks/verify.js';

/**
 * The merchants' side of the chaos run's webhooks: a receiver that misbehaves on purpose and
 * still processes every event exactly once, as the README tells a merchant to build one.
 *
 * Each delivery (`POST /hooks/<merchant id>`) first draws a fault: a 500 before anything is
 * processed, a connection closed before anything is processed, an answer that never comes (the
 * gateway's attempt times out), or a crash (SIGKILL of this process) *after* the event was
 * processed and before the answer — the case that makes the gateway deliver an event the receiver
 * already has. Otherwise it verifies the signature with the merchant's secret, deduplicates by the
 * event id, processes the event (one line appended to its log and fsynced) and answers 200.
 *
 * The log is the receiver's database: a restarted receiver reads it back, so its deduplication
 * survives its crashes. Lines: `processed` (the first time an id was seen: the id, type, merchant,
 * subject and status from the body), `duplicate` (an id seen before, answered 200 without
 * processing), `rejected` (a signature that did not verify, answered 400).
 */

export interface ReceiverFaults {
  readonly errorRate: number;
  readonly closeRate: number;
  readonly hangRate: number;
  /** Chance the process SIGKILLs itself after processing an event, before answering. */
  readonly crashRate: number;
}

export const quietReceiverFaults: ReceiverFaults = { errorRate: 0, closeRate: 0, hangRate: 0, crashRate: 0 };

export interface ReceiverOptions {
  readonly host: string;
  readonly port: number;
  readonly logPath: string;
  /** merchant id → the endpoint's signing secret, as the gateway returned it. */
  readonly secrets: ReadonlyMap<string, string>;
  readonly faults: ReceiverFaults;
  readonly random: Random;
  /** Called instead of the crash fault's SIGKILL (tests of the receiver in-process). */
  readonly crash?: () => void;
}

/** A hung answer is given up (the socket destroyed) after this, so no socket lingers forever. */
export const receiverHangMaxMs = 60_000;
/** Larger bodies are refused: no event of Remit's comes near it. */
export const receiverBodyMaxBytes = 1024 * 1024;

export const receiverLogLine = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('processed'),
    id: z.string(),
    type: z.string(),
    merchantId: z.string(),
    subjectId: z.string(),
    status: z.string(),
  }),
  z.object({ kind: z.literal('duplicate'), id: z.string(), merchantId: z.string() }),
  z.object({ kind: z.literal('rejected'), merchantId: z.string(), reason: z.string() }),
]);
export type ReceiverLogLine = z.infer<typeof receiverLogLine>;

const deliveryBody = z.object({
  id: z.string(),
  type: z.string(),
  createdAt: z.string(),
  data: z.object({ id: z.string(), status: z.string() }).passthrough(),
});

/** Every whole line of a receiver's log; a line cut short by a crash is skipped. */
export function readReceiverLog(logPath: string): ReceiverLogLine[] {
  if (!existsSync(logPath)) return [];
  const lines: ReceiverLogLine[] = [];
  for (const text of readFileSync(logPath, 'utf8').split('\n')) {
    if (text.trim() === '') continue;
    try {
      const parsed = receiverLogLine.safeParse(JSON.parse(text));
      if (parsed.success) lines.push(parsed.data);
    } catch {
      // A torn last line: the crash came mid-write, before the fsync, so it was never answered 200.
    }
  }
  return lines;
}

export class WebhookReceiver {
  private readonly seen = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private readonly fd: number;
  private server: Server | undefined;

  constructor(private readonly options: ReceiverOptions) {
    for (const line of readReceiverLog(options.logPath))
      if (line.kind === 'processed') this.seen.add(line.id);
    this.fd = openSync(options.logPath, 'a');
  }

  /** Events processed so far (restarts included). */
  get processed(): number {
    return this.seen.size;
  }

  async listen(): Promise<number> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch(() => response.destroy());
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : this.options.port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) =>
      this.server === undefined ? resolve() : this.server.close(() => resolve()),
    );
    closeSync(this.fd);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method === 'GET' && request.url === '/health') {
      response.writeHead(200).end('ok');
      return;
    }
    const merchantId = /^\/hooks\/([A-Za-z0-9_-]+)$/.exec(request.url ?? '')?.[1];
    if (request.method !== 'POST' || merchantId === undefined) {
      response.writeHead(404).end();
      return;
    }
    const body = await readBody(request);
    if (body === undefined) {
      response.writeHead(413).end();
      return;
    }
    const { faults, random } = this.options;
    const draw = random.next();
    if (draw < faults.errorRate) {
      response.writeHead(500).end('chaos: error before processing');
      return;
    }
    if (draw < faults.errorRate + faults.closeRate) {
      request.socket.destroy();
      return;
    }
    if (draw < faults.errorRate + faults.closeRate + faults.hangRate) {
      setTimeout(() => request.socket.destroy(), receiverHangMaxMs).unref();
      return;
    }
    const crashAfter = draw < faults.errorRate + faults.closeRate + faults.hangRate + faults.crashRate;
    const secret = this.options.secrets.get(merchantId);
    const verification =
      secret === undefined
        ? ({ ok: false, reason: 'unknown_merchant' } as const)
        : verifyWebhookSignature({
            header: request.headers[webhookSignatureHeader.toLowerCase()],
            body,
            secret,
          });
    if (!verification.ok) {
      this.append({ kind: 'rejected', merchantId, reason: verification.reason });
      response.writeHead(400).end(verification.reason);
      return;
    }
    const parsed = deliveryBody.safeParse(JSON.parse(body.toString('utf8')));
    if (!parsed.success) {
      this.append({ kind: 'rejected', merchantId, reason: 'body_invalid' });
      response.writeHead(400).end('body_invalid');
      return;
    }
    const event = parsed.data;
    // Check and record in one synchronous step: two deliveries of one id never both process it.
    if (this.seen.has(event.id)) {
      this.append({ kind: 'duplicate', id: event.id, merchantId });
    } else {
      this.seen.add(event.id);
      this.append(
        {
          kind: 'processed',
          id: event.id,
          type: event.type,
          merchantId,
          subjectId: event.data.id,
          status: event.data.status,
        },
        true,
      );
      if (crashAfter) {
        if (this.options.crash === undefined) process.kill(process.pid, 'SIGKILL');
        else {
          this.options.crash();
          request.socket.destroy();
          return;
        }
      }
    }
    response.writeHead(200).end('ok');
  }

  private append(line: ReceiverLogLine, durable = false): void {
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
    if (durable) fsyncSync(this.fd);
  }
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > receiverBodyMaxBytes) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}
