import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Verification of Remit's webhook signatures, for merchants. This file imports nothing but
 * node:crypto, so a receiver can copy it as it is.
 *
 * Every delivery carries one header, `Remit-Signature: t=<t>,v1=<hex>`: `t` is the Unix time in
 * seconds of that attempt, and each `v1` is the hex HMAC-SHA256 of `<t>.<raw body>`, keyed with the
 * endpoint's signing secret exactly as Remit returned it (`whsec_…`, the whole string). While a
 * secret is being rotated, a delivery is signed with both the new and the expiring secret, so the
 * header has two `v1` elements; either one matching is enough. This is Stripe's scheme.
 */

/** The request header that carries the signature (HTTP header names are case-insensitive). */
export const webhookSignatureHeader = 'Remit-Signature';

/** How far `t` may be from the receiver's clock, either way, unless the caller says otherwise. */
export const webhookToleranceSecondsDefault = 300;

/**
 * A longer header is not one Remit sent. The bound keeps a hostile sender from making the
 * receiver parse (and compare against) an arbitrarily long list.
 */
const signatureHeaderLengthMax = 4096;

const hexSignaturePattern = /^[0-9a-f]{64}$/;
const timestampPattern = /^\d{1,15}$/;

export type WebhookVerification =
  | { readonly ok: true; readonly timestamp: number }
  | {
      readonly ok: false;
      readonly reason: 'malformed_header' | 'timestamp_outside_tolerance' | 'no_matching_signature';
    };

export interface VerifyWebhookSignatureInput {
  /** The `Remit-Signature` header as received (Node's `request.headers['remit-signature']`). */
  readonly header: string | readonly string[] | undefined;
  /** The raw request body, before any JSON parsing: a parsed and re-serialized body will not match. */
  readonly body: string | Uint8Array;
  /** The endpoint's signing secret, exactly as Remit returned it. */
  readonly secret: string;
  /** How far `t` may be from now, either way, in seconds: a replayed old delivery is refused. */
  readonly toleranceSeconds?: number;
  /** The receiver's current Unix time in seconds; the system clock when omitted. */
  readonly nowSeconds?: number;
}

/** The hex HMAC-SHA256 of `<t>.<body>` keyed with `secret`: one `v1` value of the header. */
export function computeWebhookSignature(
  secret: string,
  timestampSeconds: number,
  body: string | Uint8Array,
): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

/**
 * Checks a delivery's signature header against its raw body. Never throws: any input it cannot
 * make sense of is a `malformed_header` or a `no_matching_signature`. The signature is checked
 * before the timestamp, so only an authentic delivery can be told that it came too late.
 */
export function verifyWebhookSignature(input: VerifyWebhookSignatureInput): WebhookVerification {
  const parsed = parseSignatureHeader(input.header);
  if (parsed === undefined) return { ok: false, reason: 'malformed_header' };
  if (!matchesAny(input, parsed)) return { ok: false, reason: 'no_matching_signature' };
  const toleranceSeconds = input.toleranceSeconds ?? webhookToleranceSecondsDefault;
  const nowSeconds = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (!(Math.abs(nowSeconds - parsed.timestamp) <= toleranceSeconds)) {
    return { ok: false, reason: 'timestamp_outside_tolerance' };
  }
  return { ok: true, timestamp: parsed.timestamp };
}

interface ParsedSignatureHeader {
  readonly timestamp: number;
  readonly signatures: readonly string[];
}

/**
 * `t=<digits>,v1=<sig>[,v1=<sig>…]`, elements in any order; elements of other schemes are ignored,
 * as Stripe's are. Exactly one `t` and at least one `v1`, or the header is malformed.
 */
function parseSignatureHeader(header: unknown): ParsedSignatureHeader | undefined {
  if (typeof header !== 'string' || header.length > signatureHeaderLengthMax) return undefined;
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const element of header.split(',')) {
    const separator = element.indexOf('=');
    if (separator < 0) return undefined;
    const key = element.slice(0, separator).trim();
    const value = element.slice(separator + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !timestampPattern.test(value)) return undefined;
      timestamp = Number(value);
    } else if (key === 'v1') {
      signatures.push(value.toLowerCase());
    }
  }
  if (timestamp === undefined || signatures.length === 0) return undefined;
  return { timestamp, signatures };
}

function matchesAny(input: VerifyWebhookSignatureInput, parsed: ParsedSignatureHeader): boolean {
  const { secret, body } = input;
  if (typeof secret !== 'string' || secret.length === 0) return false;
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) return false;
  const expected = Buffer.from(computeWebhookSignature(secret, parsed.timestamp, body), 'hex');
  let matched = false;
  // Every candidate is compared, in constant time, so the time taken says nothing about which
  // one (or how much of one) matched.
  for (const signature of parsed.signatures) {
    if (!hexSignaturePattern.test(signature)) continue;
    if (timingSafeEqual(expected, Buffer.from(signature, 'hex'))) matched = true;
  }
  return matched;
}
