import { describe, expect, it } from 'vitest';
import { deciderSpec, replyProbe } from '../testing/decider-spec.js';
import { type AccountReply, accountDefinition } from '../testing/fixtures/account.js';

/** The decider test kit, exercised on the sample account: pure given/when/then, no runtime. */
const spec = deciderSpec(accountDefinition());

describe('account decider (given/when/then)', () => {
  it('a deposit on a new account persists Deposited and replies with the new balance', () => {
    const replyTo = replyProbe<AccountReply>();
    spec
      .given([])
      .when({ type: 'Deposit', amount: 500n, replyTo })
      .expectEvents([{ type: 'Deposited', amount: 500n }]);
    expect(replyTo.single()).toEqual({ type: 'Accepted', balance: 500n });
  });

  it('a withdrawal past the balance is a business rejection: a reply, no event', () => {
    const replyTo = replyProbe<AccountReply>();
    spec
      .given([{ type: 'Deposited', amount: 100n }])
      .when({ type: 'Withdraw', amount: 101n, replyTo })
      .expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'Rejected', reason: 'insufficient_funds' });
  });

  it('a closed account refuses deposits', () => {
    const replyTo = replyProbe<AccountReply>();
    spec
      .given([{ type: 'Closed' }])
      .when({ type: 'Deposit', amount: 1n, replyTo })
      .expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'Rejected', reason: 'closed' });
  });

  it('an event impossible in the current state is a crash in evolve, not a silent fix', () => {
    expect(() =>
      spec.given([{ type: 'Withdrawn', amount: 1n }]).when({ type: 'GetBalance', replyTo: replyProbe() }),
    ).toThrow('Withdrawn past the balance');
  });
});
