import type { FastifyRequest } from 'fastify';
import { brandOf, luhnValid } from '../payments/card.js';
import { ApiError } from './problem.js';

/** Checks of a request's input that the JSON schemas cannot express, shared by its routes. */

/**
 * Free text is stored in events and shown in listings, so a card number pasted into it would
 * leak past the vault: a whole run of 13 to 19 digits (spaces or dashes between) that passes Luhn
 * and starts like a card of a known brand. Substrings are not searched: long references would
 * trip it far too often.
 */
export function containsCardNumber(text: string | undefined): boolean {
  if (text === undefined) return false;
  for (const match of text.matchAll(/(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])/g)) {
    const digits = match[0].replace(/[ -]/g, '');
    if (luhnValid(digits) && brandOf(digits) !== 'unknown') return true;
  }
  return false;
}

/** The request's `Idempotency-Key`: required, 1 to 255 visible ASCII characters. */
export function idempotencyKeyOf(request: FastifyRequest): string {
  const key = request.headers['idempotency-key'];
  if (key === undefined || key === '') {
    throw new ApiError(
      400,
      'idempotency_key_missing',
      'Send an Idempotency-Key header (1 to 255 characters).',
      'Idempotency-Key',
    );
  }
  if (Array.isArray(key) || key.length > 255 || !/^[\x21-\x7e]+$/.test(key)) {
    throw new ApiError(
      400,
      'idempotency_key_invalid',
      'The Idempotency-Key must be 1 to 255 visible ASCII characters.',
      'Idempotency-Key',
    );
  }
  return key;
}
