/**
 * Facts about a card number that may travel beyond the edge. The number itself (the PAN) stays at
 * the edge and in the vault; events, logs, read models and errors carry only a `CardSummary`.
 */
export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'jcb' | 'unknown';

export interface CardSummary {
  /** The vault's token for this card number; the same number always gets the same token. */
  readonly token: string;
  readonly brand: CardBrand;
  /** The first six digits: the issuer, not the person. */
  readonly bin: string;
  readonly last4: string;
  readonly expMonth: number;
  readonly expYear: number;
  /** Whether the number passed the Luhn check at the edge (the rule is applied by the Validator). */
  readonly luhnValid: boolean;
}

export function luhnValid(number: string): boolean {
  if (!/^\d{12,19}$/.test(number)) return false;
  let sum = 0;
  let double = false;
  for (let index = number.length - 1; index >= 0; index--) {
    let digit = number.charCodeAt(index) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

export function brandOf(number: string): CardBrand {
  if (/^4/.test(number)) return 'visa';
  const prefix2 = Number(number.slice(0, 2));
  const prefix4 = Number(number.slice(0, 4));
  if ((prefix2 >= 51 && prefix2 <= 55) || (prefix4 >= 2221 && prefix4 <= 2720)) return 'mastercard';
  if (prefix2 === 34 || prefix2 === 37) return 'amex';
  if (/^(6011|65|64[4-9])/.test(number)) return 'discover';
  if (prefix4 >= 3528 && prefix4 <= 3589) return 'jcb';
  return 'unknown';
}

/** A card is usable through the last day of its expiry month. */
export function cardExpired(expMonth: number, expYear: number, now: number): boolean {
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth() + 1;
  return expYear < year || (expYear === year && expMonth < month);
}
