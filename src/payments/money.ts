/**
 * Money is an integer number of the currency's minor units (cents for EUR, yen for JPY), held as
 * a bigint inside and never as a floating-point number.
 */

/** ISO 4217 currencies Remit knows, with their number of minor-unit digits. */
export const currencyMinorUnits = {
  AUD: 2,
  BHD: 3,
  CAD: 2,
  CHF: 2,
  CZK: 2,
  DKK: 2,
  EUR: 2,
  GBP: 2,
  HKD: 2,
  HUF: 2,
  ISK: 0,
  JPY: 0,
  KRW: 0,
  KWD: 3,
  NOK: 2,
  NZD: 2,
  PLN: 2,
  RON: 2,
  SEK: 2,
  SGD: 2,
  USD: 2,
  ZAR: 2,
} as const satisfies Record<string, number>;

export type Currency = keyof typeof currencyMinorUnits;

export const currencies = Object.keys(currencyMinorUnits) as Currency[];

export function isCurrency(code: string): code is Currency {
  return Object.hasOwn(currencyMinorUnits, code);
}

export interface Money {
  readonly amount: bigint;
  readonly currency: Currency;
}

/** "12.34 EUR" — for people reading logs and messages, never for arithmetic. */
export function formatMoney(money: Money): string {
  const digits = currencyMinorUnits[money.currency];
  const negative = money.amount < 0n;
  const units = (negative ? -money.amount : money.amount).toString().padStart(digits + 1, '0');
  const whole = digits === 0 ? units : `${units.slice(0, -digits)}.${units.slice(-digits)}`;
  return `${negative ? '-' : ''}${whole} ${money.currency}`;
}
