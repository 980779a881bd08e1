/**
 * JSON schemas every route file shares: the problem+json body, the answers that are problems, and
 * an `:id` path parameter. Route files import them from here, never from `app.ts` (which imports
 * them and the route files).
 */

export const problemSchema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
    param: { type: 'string' },
  },
  required: ['type', 'title', 'status', 'code', 'detail'],
} as const;

/** The problems a merchant's route can answer, for its response schema. */
export const problemResponses = {
  400: problemSchema,
  401: problemSchema,
  404: problemSchema,
  409: problemSchema,
  422: problemSchema,
  503: problemSchema,
} as const;

/** `:id` of an order, refund, endpoint or delivery. */
export const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;
