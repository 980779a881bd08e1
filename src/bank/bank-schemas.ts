import { declineReasons, problemCodes, referenceCancelled, refundFailureReasons } from './bank-protocol.js';

/**
 * JSON schemas of the bank simulator's routes: the one definition of its wire contract.
 * Requests are validated against them (unknown fields rejected, no type coercion); responses are
 * serialized through them, which also keeps any field not listed here (such as a card number) from
 * ever leaving the server. The types of `bank-protocol.ts` are derived from them, and the server's
 * routes are typed from them (a type provider), so a handler's answer that strays from its schema
 * does not compile.
 */

export const referenceLengthMax = 255;
export const merchantIdLengthMax = 255;

const reference = { type: 'string', minLength: 1, maxLength: referenceLengthMax } as const;
const merchantId = { type: 'string', minLength: 1, maxLength: merchantIdLengthMax } as const;
const currency = { type: 'string', pattern: '^[A-Z]{3}$' } as const;
/** Minor units, a JSON integer: at most MAX_SAFE_INTEGER, so it is never rounded. */
const amount = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

export const paymentRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'merchantId', 'amount', 'currency', 'card'],
  properties: {
    reference,
    merchantId,
    amount,
    currency,
    card: {
      type: 'object',
      additionalProperties: false,
      required: ['number', 'expMonth', 'expYear'],
      properties: {
        number: { type: 'string', pattern: '^[0-9]{12,19}$' },
        expMonth: { type: 'integer', minimum: 1, maximum: 12 },
        expYear: { type: 'integer', minimum: 1000, maximum: 9999 },
      },
    },
  },
} as const;

/** Most payments one `POST /v1/payments/batch` may carry. */
export const batchPaymentsMax = 1_024;

export const paymentBatchRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['payments'],
  properties: {
    payments: { type: 'array', minItems: 1, maxItems: batchPaymentsMax, items: paymentRequestSchema },
  },
} as const;

export const referenceParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference'],
  properties: { reference },
} as const;

export const refundRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'paymentReference', 'amount', 'currency'],
  properties: {
    reference,
    paymentReference: reference,
    amount,
    currency,
  },
} as const;

export const cancelRequestSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { merchantId },
} as const;

export const ledgerQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { merchantId },
} as const;

const rate = { type: 'number', minimum: 0, maximum: 1 } as const;

/** Bounded so a typo cannot park every request for days. */
export const faultLatencyMsMax = 600_000;

export const faultsUpdateSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latencyMs: {
      type: 'integer',
      minimum: 0,
      maximum: faultLatencyMsMax,
      description:
        'Wait this long after committing, before answering (also for repeats, for refunds and for cancels).',
    },
    declineRate: {
      ...rate,
      description:
        'Chance that a would-be-approved payment is declined with do_not_honor, and that a would-be-succeeded refund fails with refund_declined.',
    },
    errorRate: {
      ...rate,
      // A bank that is down cannot cancel either.
      description:
        'Chance of a 503 bank_unavailable to a payment or refund the bank has not seen, without processing or recording anything; a cancel draws it first, even for a known reference.',
    },
    timeoutRate: {
      ...rate,
      // A lost cancel answer teaches a gateway nothing new: cancel is idempotent, it asks again.
      description:
        'Chance a new payment or refund is processed and committed but the answer is never sent. Not applied to cancels.',
    },
  },
} as const;

export const faultsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['latencyMs', 'declineRate', 'errorRate', 'timeoutRate'],
  properties: faultsUpdateSchema.properties,
} as const;

export const paymentAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'status'],
  properties: {
    reference: { type: 'string' },
    status: { type: 'string', enum: ['approved', 'declined'] },
    authorizationCode: { type: 'string' },
    declineReason: { type: 'string', enum: [...declineReasons, referenceCancelled] },
  },
} as const;

export const problemSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', enum: problemCodes },
    detail: { type: 'string' },
    param: { type: 'string' },
  },
} as const;

/** Each result is a payment's answer or, under `problem`, the problem it would have been answered with. */
export const paymentBatchAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['results'],
  properties: {
    results: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['reference'],
        properties: {
          ...paymentAnswerSchema.properties,
          problem: problemSchema,
        },
      },
    },
  },
} as const;

/** A cancel's answer: `cancelled`, or the answer the reference already had. */
export const cancelAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'status'],
  properties: {
    ...paymentAnswerSchema.properties,
    status: { type: 'string', enum: ['approved', 'declined', 'cancelled'] },
  },
} as const;

/** Currency and card are absent from a cancelled record: it never had them. */
export const paymentRecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'merchantId', 'amount', 'status', 'createdAt', 'updatedAt', 'requestCount'],
  properties: {
    ...cancelAnswerSchema.properties,
    merchantId: { type: 'string' },
    amount: { type: 'integer' },
    currency: { type: 'string' },
    cardBrand: { type: 'string' },
    cardBin: { type: 'string' },
    cardLast4: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    requestCount: { type: 'integer' },
  },
} as const;

export const refundAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'paymentReference', 'amount', 'currency', 'status'],
  properties: {
    reference: { type: 'string' },
    paymentReference: { type: 'string' },
    amount: { type: 'integer' },
    currency: { type: 'string' },
    status: { type: 'string', enum: ['succeeded', 'failed'] },
    failureReason: { type: 'string', enum: refundFailureReasons },
  },
} as const;

export const refundRecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'reference',
    'paymentReference',
    'merchantId',
    'amount',
    'currency',
    'status',
    'createdAt',
    'updatedAt',
    'requestCount',
  ],
  properties: {
    ...refundAnswerSchema.properties,
    merchantId: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    requestCount: { type: 'integer' },
  },
} as const;

const amountTotals = {
  type: 'object',
  additionalProperties: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
} as const;

export const ledgerReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['payments', 'refunds', 'totals'],
  properties: {
    payments: { type: 'array', items: paymentRecordSchema },
    refunds: { type: 'array', items: refundRecordSchema },
    totals: {
      type: 'object',
      additionalProperties: false,
      required: [
        'payments',
        'approved',
        'declined',
        'cancelled',
        'requests',
        'duplicateRequests',
        'rejectedRequests',
        'approvedAmountByCurrency',
        'refunds',
        'refundsSucceeded',
        'refundsFailed',
        'refundRequests',
        'duplicateRefundRequests',
        'refundedAmountByCurrency',
      ],
      properties: {
        payments: { type: 'integer' },
        approved: { type: 'integer' },
        declined: { type: 'integer' },
        cancelled: { type: 'integer' },
        requests: { type: 'integer' },
        duplicateRequests: { type: 'integer' },
        rejectedRequests: { type: 'integer' },
        approvedAmountByCurrency: amountTotals,
        refunds: { type: 'integer' },
        refundsSucceeded: { type: 'integer' },
        refundsFailed: { type: 'integer' },
        refundRequests: { type: 'integer' },
        duplicateRefundRequests: { type: 'integer' },
        refundedAmountByCurrency: amountTotals,
      },
    },
  },
} as const;

export const healthSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: { status: { type: 'string' } },
} as const;

/** Response schemas every route shares: any 4xx or 5xx is a problem. */
export const problemResponses = { '4xx': problemSchema, '5xx': problemSchema } as const;
