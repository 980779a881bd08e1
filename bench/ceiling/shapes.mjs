/**
 * The order a ceiling stub answers with and the event it journals, shaped and sized like the
 * gateway's: the answer ~450 bytes of JSON with `"status":"executed"` (what the load generator
 * counts as executed), the event ~350 bytes.
 *
 * Plain JavaScript (types in `shapes.d.mts`) because the stub server imports it and runs without a
 * TypeScript loader; `micro.ts` imports it too, so the micro stage encodes exactly the event the
 * durable stages write.
 *
 * Nothing here hashes or encrypts: ids and tokens are built from a counter with the gateway's
 * lengths (`ord_` + 26 base32 digits, `tok_` + 32 characters), so a stage measures HTTP (and the
 * durable write) alone; the micro stage measures the crypto apart.
 */

const orderIdDigits = 26;
const tokenDigits = 32;
const cardNumberDigits = 16;

/**
 * The request body as the load generator sends it, or undefined when it is not one (the stub
 * answers 400 then). Only the shape is checked: the gateway's rules are not what is measured.
 */
export function orderRequestOf(value) {
  if (typeof value !== 'object' || value === null) return undefined;
  const { amount, currency, card } = value;
  if (typeof amount !== 'number' || typeof currency !== 'string') return undefined;
  if (typeof card !== 'object' || card === null) return undefined;
  const { number, expMonth, expYear } = card;
  if (typeof number !== 'string' || number.length !== cardNumberDigits) return undefined;
  if (typeof expMonth !== 'number' || typeof expYear !== 'number') return undefined;
  return { amount, currency, card: { number, expMonth, expYear } };
}

/** The executed order the stub answers with: the gateway's answer fields plus the card summary. */
export function orderOf(sequence, merchantId, request, nowIso) {
  const id = `ord_${sequence.toString(32).padStart(orderIdDigits, '0')}`;
  return {
    id,
    merchantId,
    status: 'executed',
    amount: request.amount,
    currency: request.currency,
    card: {
      token: `tok_${sequence.toString(36).padStart(tokenDigits, '0')}`,
      brand: 'visa',
      bin: request.card.number.slice(0, 6),
      last4: request.card.number.slice(-4),
      expMonth: request.card.expMonth,
      expYear: request.card.expYear,
    },
    bank: 'bank-simulator',
    reference: id,
    description: null,
    reason: null,
    createdAt: nowIso,
    updatedAt: nowIso,
  };
}

/** The order as one journal event (the first of the six the gateway writes per order). */
export function orderEventOf(order, idempotencyKey) {
  return {
    type: 'OrderCreated',
    orderId: order.id,
    idempotencyKey,
    amount: order.amount,
    currency: order.currency,
    card: {
      token: order.card.token,
      brand: order.card.brand,
      bin: order.card.bin,
      last4: order.card.last4,
      expMonth: order.card.expMonth,
      expYear: order.card.expYear,
    },
    bank: order.bank,
    createdAt: order.createdAt,
  };
}
