import { describe, expect, it } from 'vitest';
import { type Random, SeededRandom } from '../runtime/random.js';
import { authorizationCodeLength, decide } from './authorization.js';
import { noFaults } from './bank-protocol.js';

const now = Date.UTC(2026, 5, 15);
const card = { number: '4242424242424242', expMonth: 12, expYear: 2030 };

describe('decide', () => {
  it('approves with a code drawn from the Random: the same seed gives the same code', () => {
    const first = decide(card, now, noFaults, new SeededRandom(3));
    const again = decide(card, now, noFaults, new SeededRandom(3));
    expect(first).toEqual(again);
    expect(first).toMatchObject({
      status: 'approved',
      authorizationCode: expect.stringMatching(/^[A-Z0-9]{6}$/),
    });
  });

  it('checks expiry before the test cards, and the test cards before the decline fault', () => {
    const random = new SeededRandom(3);
    const faults = { ...noFaults, declineRate: 1 };
    expect(decide({ ...card, number: '4000000000000002', expYear: 2020 }, now, faults, random)).toEqual({
      status: 'declined',
      declineReason: 'expired_card',
    });
    expect(decide({ ...card, number: '4000000000009995' }, now, faults, random)).toEqual({
      status: 'declined',
      declineReason: 'insufficient_funds',
    });
    expect(decide(card, now, faults, random)).toEqual({ status: 'declined', declineReason: 'do_not_honor' });
  });

  it('takes nothing from the Random for a fault rate of zero, so faults off do not shift seeded runs', () => {
    const seeded = new SeededRandom(9);
    let draws = 0;
    const counting: Random = {
      next: () => {
        draws++;
        return seeded.next();
      },
      int: (maxExclusive) => Math.floor(counting.next() * maxExclusive),
      chance: (probability) => counting.next() < probability,
    };
    decide(card, now, noFaults, counting);
    expect(draws).toBe(authorizationCodeLength);
  });
});
