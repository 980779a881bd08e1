import { createHash } from 'node:crypto';
import type { RandomBytes } from './signature.js';

/**
 * Ids of endpoints and deliveries. An endpoint's id is random, after its creation time, so ids
 * sort as endpoints were made; a delivery's is derived from its event and endpoint, since there
 * is exactly one delivery per (event, endpoint): storing the same event twice names the same
 * delivery, with nothing random to inject into the stores.
 */

/** Random bytes in an endpoint id: 80 bits, no collisions among a merchant's few endpoints. */
const endpointIdRandomBytes = 10;
/** Twelve hex digits of milliseconds since the epoch last until the year 10889. */
const endpointIdTimeDigits = 12;
/** 128 bits of the hash, as for event ids. */
const deliveryIdDigestBytes = 16;

/** `we_`, the creation time (12 hex digits, so ids sort by it), and 80 random bits in base64url. */
export function webhookEndpointId(createdAt: number, bytes: RandomBytes): string {
  if (!Number.isSafeInteger(createdAt) || createdAt < 0) {
    throw new Error(`an endpoint's creation time is milliseconds since the epoch, got ${createdAt}`);
  }
  const random = bytes(endpointIdRandomBytes);
  if (random.length !== endpointIdRandomBytes) {
    throw new Error(`an endpoint id needs ${endpointIdRandomBytes} random bytes, got ${random.length}`);
  }
  const time = createdAt.toString(16).padStart(endpointIdTimeDigits, '0');
  return `we_${time}${Buffer.from(random).toString('base64url')}`;
}

/** `wd_` and a hash of (event id, endpoint id): the one delivery of that event to that endpoint. */
export function webhookDeliveryIdFor(eventId: string, endpointId: string): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([eventId, endpointId]))
    .digest();
  return `wd_${digest.subarray(0, deliveryIdDigestBytes).toString('base64url')}`;
}
