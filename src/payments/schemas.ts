import { z } from 'zod';
import { isCurrency } from './money.js';
import { failureReasons } from './order.js';

/**
 * The zod building blocks of the payments domain's persisted JSON: the Merchant's and the
 * Executor's events and snapshots are made of these, so one field means one thing, parsed one way,
 * in both journals. Each block parses exactly what the events have always been written as
 * (`toJsonData`: a bigint as a string of digits, a time as integer epoch milliseconds); changing
 * one changes what existing journals must contain, so a change needs an upcaster, not an edit.
 */

/** An amount in minor units: written as a string of digits (JSON has no bigint), read as a bigint. */
export const minorUnits = z
  .string()
  .regex(/^-?\d+$/)
  .transform(BigInt);

/** An ISO 4217 code the gateway knows. */
export const currency = z.string().refine(isCurrency, 'not a known ISO 4217 currency');

/** A moment, in integer milliseconds since the epoch (the injected Clock's unit). */
export const timestamp = z.number().int().nonnegative();

/** An identifier that must be present: order, merchant and bank ids, tokens, keys. */
export const identifier = z.string().min(1);

export const orderId = identifier;

export const failureReason = z.enum(failureReasons);

/** A card as events hold it: the vault's token and what is safe to show, never the number. */
export const cardSummarySchema = z
  .object({
    token: identifier,
    brand: z.enum(['visa', 'mastercard', 'amex', 'discover', 'jcb', 'unknown']),
    bin: z.string().regex(/^\d{6}$/),
    last4: z.string().regex(/^\d{4}$/),
    expMonth: z.number().int().min(1).max(12),
    expYear: z.number().int(),
    luhnValid: z.boolean(),
  })
  .strict();

/** What the bank's answer came to for one order (`ExecutionOutcome` in `protocol.ts`). */
export const executionOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('executed'), authorizationCode: z.string() }).strict(),
  z.object({ kind: z.literal('declined'), reason: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('failed'), reason: failureReason }).strict(),
]);
