/**
 * Distinct, Luhn-valid, approved card numbers for the load generator: one per order, so the demo
 * merchants' velocity rule (at most 20 orders per card per minute) never fires.
 *
 * Numbers are `42` + a 13-digit sequence + the Luhn check digit: 16-digit Visa numbers. None starts
 * with `4000`, so none is one of the simulator's declined test cards (4000000000000002,
 * 4000000000009995), and none has the demo merchants' blocked BIN (999999).
 */
const cardPrefix = '42';
const sequenceDigits = 13;

/** The number of distinct cards this generator can make. */
export const cardSequenceLimit = 10 ** sequenceDigits;

/** The Luhn check digit to append to `partial` (every second digit from the right is doubled). */
export function luhnCheckDigit(partial: string): number {
  let sum = 0;
  for (let offset = 0; offset < partial.length; offset++) {
    const digit = partial.charCodeAt(partial.length - 1 - offset) - 48;
    if (digit < 0 || digit > 9) throw new RangeError(`not a digit string: ${partial}`);
    if (offset % 2 === 0) {
      const doubled = digit * 2;
      sum += doubled > 9 ? doubled - 9 : doubled;
    } else {
      sum += digit;
    }
  }
  return (10 - (sum % 10)) % 10;
}

/** The `sequence`-th card: distinct for every sequence in [0, cardSequenceLimit). */
export function approvedCard(sequence: number): string {
  if (!Number.isSafeInteger(sequence) || sequence < 0 || sequence >= cardSequenceLimit) {
    throw new RangeError(`card sequence must be an integer in [0, ${cardSequenceLimit}), got ${sequence}`);
  }
  const partial = cardPrefix + String(sequence).padStart(sequenceDigits, '0');
  return partial + String(luhnCheckDigit(partial));
}
