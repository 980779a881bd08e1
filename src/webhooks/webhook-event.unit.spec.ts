import { describe, expect, it } from 'vitest';
import {
  serializeWebhookEvent,
  webhookEvent,
  webhookEventIdFor,
  webhookEventTypes,
} from './webhook-event.js';

// An order as GET /v1/orders/:id renders it: amounts are JSON integers of minor units.
const renderedOrder = {
  id: 'ord_0123456789abcdefghijklmnop',
  status: 'executed',
  amount: 1250,
  currency: 'EUR',
  card: { brand: 'visa', last4: '4242' },
  bank: 'bank-a',
  reference: 'ord_0123456789abcdefghijklmnop',
  description: null,
  reason: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:01.000Z',
};

describe('webhookEventIdFor', () => {
  const source = { merchantId: 'merchant-a', type: 'order.executed', subjectId: renderedOrder.id } as const;

  it('is the same for the same outcome, however often it is derived', () => {
    expect(webhookEventIdFor(source)).toBe(webhookEventIdFor({ ...source }));
    expect(webhookEventIdFor(source)).toMatch(/^evt_[A-Za-z0-9_-]{22}$/);
  });

  it('differs for another type, subject or merchant', () => {
    const ids = new Set([
      webhookEventIdFor(source),
      webhookEventIdFor({ ...source, type: 'order.failed' }),
      webhookEventIdFor({ ...source, subjectId: 'ord_other' }),
      webhookEventIdFor({ ...source, merchantId: 'merchant-b' }),
      // The parts are framed, so moving a character from one part to the next is another id.
      webhookEventIdFor({ ...source, merchantId: 'merchant-', subjectId: `a${renderedOrder.id}` }),
    ]);
    expect(ids.size).toBe(5);
  });
});

describe('the webhook event body', () => {
  it('is { id, type, createdAt, data } with data as the API shows it', () => {
    const event = webhookEvent({
      merchantId: 'merchant-a',
      type: 'order.executed',
      subjectId: renderedOrder.id,
      createdAtMs: Date.UTC(2026, 0, 1, 0, 0, 1),
      data: renderedOrder,
    });
    const body = serializeWebhookEvent(event);
    expect(
      body.startsWith(`{"id":"${event.id}","type":"order.executed","createdAt":"2026-01-01T00:00:01.000Z",`),
    ).toBe(true);
    expect(JSON.parse(body)).toEqual({
      id: webhookEventIdFor({
        merchantId: 'merchant-a',
        type: 'order.executed',
        subjectId: renderedOrder.id,
      }),
      type: 'order.executed',
      createdAt: '2026-01-01T00:00:01.000Z',
      data: renderedOrder,
    });
  });

  it('names the five outcomes merchants can subscribe to', () => {
    expect(webhookEventTypes).toEqual([
      'order.executed',
      'order.declined',
      'order.failed',
      'refund.succeeded',
      'refund.failed',
    ]);
  });
});
