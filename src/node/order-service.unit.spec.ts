import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Currency } from '../payments/money.js';
import { canonicalJson, type OrderRequest, orderRequestText } from './order-service.js';

/**
 * The request fingerprint's text. Fingerprints of orders already in journals were computed with
 * `canonicalJson`, and a retry is told from a reused key by comparing them: the fast text must be
 * the very same string for every request the API can accept.
 */
describe('the order request text that is fingerprinted', () => {
  const requests: fc.Arbitrary<OrderRequest> = fc.record(
    {
      amount: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      currency: fc.constantFrom('EUR', 'USD', 'GBP') as fc.Arbitrary<Currency>,
      card: fc.record({
        number: fc.stringMatching(/^[0-9]{12,19}$/),
        expMonth: fc.integer({ min: 1, max: 12 }),
        expYear: fc.integer({ min: 2000, max: 2100 }),
        cvc: fc.stringMatching(/^[0-9]{3,4}$/),
      }),
      description: fc.string({ maxLength: 40 }),
      reference: fc.string({ minLength: 1, maxLength: 40 }),
    },
    { requiredKeys: ['amount', 'currency', 'card'] },
  );

  it('is canonicalJson of the request, whatever the fields and their order', () => {
    fc.assert(
      fc.property(requests, (request) => {
        // Key order as a client may send it: reversed.
        const reordered = Object.fromEntries(Object.entries(request).reverse()) as unknown as OrderRequest;
        return (
          orderRequestText(request) === canonicalJson(request) &&
          orderRequestText(reordered) === canonicalJson(request)
        );
      }),
    );
  });

  it('escapes text fields as JSON does', () => {
    const request: OrderRequest = {
      amount: 1,
      currency: 'EUR',
      card: { number: '4242424242424242', expMonth: 1, expYear: 2030, cvc: '123' },
      description: 'say "hi"\n\u2028',
    };
    expect(orderRequestText(request)).toBe(canonicalJson(request));
    expect(JSON.parse(orderRequestText(request))).toEqual(request);
  });
});
