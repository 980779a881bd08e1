import { describe, expect, it } from 'vitest';
import { webhookDeliveryIdFor, webhookEndpointId } from './webhook-ids.js';

const fixedBytes = (fill: number) => (size: number) => new Uint8Array(size).fill(fill);

describe('webhookEndpointId', () => {
  it('is we_, the creation time in hex, and the random bytes', () => {
    expect(webhookEndpointId(0x0123456789ab, fixedBytes(0))).toBe('we_0123456789abAAAAAAAAAAAAAA');
  });

  it('sorts by creation time', () => {
    const earlier = webhookEndpointId(Date.UTC(2026, 0, 1), fixedBytes(255));
    const later = webhookEndpointId(Date.UTC(2026, 0, 1) + 1, fixedBytes(0));
    expect(earlier < later).toBe(true);
  });

  it('refuses a short random source and a time that is not one', () => {
    expect(() => webhookEndpointId(0, () => new Uint8Array(3))).toThrow(/10 random bytes/);
    expect(() => webhookEndpointId(-1, fixedBytes(0))).toThrow(/milliseconds/);
  });
});

describe('webhookDeliveryIdFor', () => {
  it('names one delivery per (event, endpoint), the same every time', () => {
    const id = webhookDeliveryIdFor('evt_a', 'we_1');
    expect(id).toMatch(/^wd_[A-Za-z0-9_-]{22}$/);
    expect(webhookDeliveryIdFor('evt_a', 'we_1')).toBe(id);
    expect(webhookDeliveryIdFor('evt_a', 'we_2')).not.toBe(id);
    expect(webhookDeliveryIdFor('evt_b', 'we_1')).not.toBe(id);
  });
});
