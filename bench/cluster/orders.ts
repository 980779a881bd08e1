/**
 * One order as a merchant's system places it, for the cluster benchmarks' light loads and
 * probes: `POST /v1/orders` with its own idempotency key and approved card and `Prefer: wait`,
 * its answer sorted into terminal (with the status), accepted but not terminal (202), or an error
 * of a named kind. Throughput runs use `gateway/load.ts` instead.
 */
import { approvedCard } from '../gateway/cards.js';

/** The statuses after which an order never changes. */
const terminalStatuses: ReadonlySet<string> = new Set(['executed', 'declined', 'failed', 'rejected']);
const cardExpYear = new Date().getUTCFullYear() + 3;
const orderAmount = 1_250;

export type OrderAnswer =
  | { readonly kind: 'terminal'; readonly status: string }
  | { readonly kind: 'accepted' }
  | { readonly kind: 'error'; readonly error: string };

export interface OrderRequest {
  readonly nodeUrl: string;
  readonly apiKey: string;
  readonly idempotencyKey: string;
  /** Picks the order's card (`approvedCard`): distinct per order, so no velocity rule fires. */
  readonly cardSequence: number;
  readonly waitSeconds: number;
  readonly timeoutMs: number;
}

export async function placeOrder(request: OrderRequest): Promise<OrderAnswer> {
  try {
    const response = await fetch(`${request.nodeUrl}/v1/orders`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${request.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': request.idempotencyKey,
        prefer: `wait=${request.waitSeconds}`,
      },
      body: JSON.stringify({
        amount: orderAmount,
        currency: 'EUR',
        card: { number: approvedCard(request.cardSequence), expMonth: 12, expYear: cardExpYear, cvc: '123' },
      }),
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    const text = await response.text();
    const status = fieldOf(text, 'status');
    if (response.status === 201 && status !== undefined && terminalStatuses.has(status)) {
      return { kind: 'terminal', status };
    }
    if (response.status === 201 || response.status === 202) return { kind: 'accepted' };
    return { kind: 'error', error: `http_${response.status}:${fieldOf(text, 'code') ?? 'none'}` };
  } catch (error) {
    const name = error instanceof Error ? error.name : 'unknown';
    const cause: unknown = error instanceof Error ? error.cause : undefined;
    const code: unknown =
      typeof cause === 'object' && cause !== null ? Reflect.get(cause, 'code') : undefined;
    return { kind: 'error', error: `network:${typeof code === 'string' ? code : name}` };
  }
}

/** A top-level string field of a JSON object text, or undefined. */
function fieldOf(text: string, name: string): string | undefined {
  try {
    const json: unknown = JSON.parse(text);
    const value: unknown = typeof json === 'object' && json !== null ? Reflect.get(json, name) : undefined;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Counts answers by kind (`executed`, `declined`, `accepted`, `http_503:…`, `network:…`). */
export class AnswerCounts {
  private readonly counts = new Map<string, number>();

  add(answer: OrderAnswer): void {
    const key =
      answer.kind === 'terminal' ? answer.status : answer.kind === 'accepted' ? 'accepted' : answer.error;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}
