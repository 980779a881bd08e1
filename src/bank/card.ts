/**
 * What the bank may know about a card without keeping its number: pure functions over the number
 * and expiry, so the ledger and logs only ever see the brand, the BIN (first six digits) and the
 * last four.
 */

export type CardBrand =
  | 'visa'
  | 'mastercard'
  | 'amex'
  | 'discover'
  | 'jcb'
  | 'diners'
  | 'unionpay'
  | 'unknown';

/** The part of a card the ledger keeps. It is enough to tell cards apart for deduplication. */
export interface CardFingerprint {
  readonly brand: CardBrand;
  readonly bin: string;
  readonly last4: string;
}

const binLength = 6;
const last4Length = 4;

/** The Luhn (mod 10) check every real card number passes; it catches single-digit typos. */
export function luhnValid(number: string): boolean {
  if (!/^[0-9]+$/.test(number)) return false;
  let sum = 0;
  let doubled = false;
  for (let index = number.length - 1; index >= 0; index--) {
    let digit = number.charCodeAt(index) - 48;
    if (doubled) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    doubled = !doubled;
  }
  return sum % 10 === 0;
}

/** The brand from the leading digits (the common IIN ranges; exotic ones are `unknown`). */
export function cardBrand(number: string): CardBrand {
  const prefix2 = Number(number.slice(0, 2));
  const prefix3 = Number(number.slice(0, 3));
  const prefix4 = Number(number.slice(0, 4));
  if (number.startsWith('4')) return 'visa';
  if ((prefix2 >= 51 && prefix2 <= 55) || (prefix4 >= 2221 && prefix4 <= 2720)) return 'mastercard';
  if (prefix2 === 34 || prefix2 === 37) return 'amex';
  if (prefix4 === 6011 || prefix2 === 65 || (prefix3 >= 644 && prefix3 <= 649)) return 'discover';
  if (prefix4 >= 3528 && prefix4 <= 3589) return 'jcb';
  if (prefix2 === 36 || prefix2 === 38 || (prefix3 >= 300 && prefix3 <= 305)) return 'diners';
  if (prefix2 === 62) return 'unionpay';
  return 'unknown';
}

export function cardFingerprint(number: string): CardFingerprint {
  return {
    brand: cardBrand(number),
    bin: number.slice(0, binLength),
    last4: number.slice(-last4Length),
  };
}

export function sameCard(left: CardFingerprint, right: CardFingerprint): boolean {
  return left.brand === right.brand && left.bin === right.bin && left.last4 === right.last4;
}

/**
 * A card is valid through the last day of its expiry month, so it has expired only when that
 * month lies before the current month (in UTC, the bank's calendar).
 */
export function cardExpired(expMonth: number, expYear: number, nowMs: number): boolean {
  const now = new Date(nowMs);
  const currentMonthIndex = now.getUTCFullYear() * 12 + now.getUTCMonth();
  const expiryMonthIndex = expYear * 12 + (expMonth - 1);
  return expiryMonthIndex < currentMonthIndex;
}
