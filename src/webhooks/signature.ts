import { randomBytes } from 'node:crypto';
import { computeWebhookSignature } from './verify.js';

export {
  computeWebhookSignature,
  type VerifyWebhookSignatureInput,
  verifyWebhookSignature,
  type WebhookVerification,
  webhookSignatureHeader,
  webhookToleranceSecondsDefault,
} from './verify.js';

/** A source of cryptographically random bytes; tests inject a fixed one. */
export type RandomBytes = (size: number) => Uint8Array;

/** 256 bits: as strong as the HMAC-SHA256 key can use. */
const webhookSecretBytes = 32;
const webhookSecretPrefix = 'whsec_';

/**
 * A new signing secret: `whsec_` and 32 random bytes in base64url. It is shown to the merchant
 * once, and the HMAC key is this whole string, exactly as shown.
 */
export function generateWebhookSecret(bytes: RandomBytes = randomBytes): string {
  const random = bytes(webhookSecretBytes);
  if (random.length !== webhookSecretBytes) {
    throw new Error(`a webhook secret needs ${webhookSecretBytes} random bytes, got ${random.length}`);
  }
  return `${webhookSecretPrefix}${Buffer.from(random).toString('base64url')}`;
}

export interface SignWebhookInput {
  /** The endpoint's current signing secret. */
  readonly secret: string;
  /**
   * The secret being rotated out, while its overlap lasts: the delivery is signed with both, so a
   * receiver that still has the old secret (or already has the new one) accepts it.
   */
  readonly expiringSecret?: string;
  /** The raw body exactly as it is sent. */
  readonly body: string;
  /** The Unix time in seconds of this attempt (each attempt is signed anew). */
  readonly timestampSeconds: number;
}

/** The `Remit-Signature` header value: `t=<t>,v1=<hex>`, and `,v1=<hex>` for an expiring secret. */
export function signWebhook(input: SignWebhookInput): string {
  const { secret, expiringSecret, body, timestampSeconds } = input;
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new Error(`a webhook timestamp is whole seconds since the epoch, got ${timestampSeconds}`);
  }
  if (secret.length === 0 || expiringSecret === '') throw new Error('a webhook secret cannot be empty');
  const secrets = expiringSecret === undefined ? [secret] : [secret, expiringSecret];
  const signatures = secrets.map((key) => `v1=${computeWebhookSignature(key, timestampSeconds, body)}`);
  return [`t=${timestampSeconds}`, ...signatures].join(',');
}
