import { describe, expect, it } from 'vitest';
import type { BankPort, PaymentRequest } from '../payments/executor-protocol.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import { ExecutorShardNotOwnedError, ownedBankPort } from './cluster-node.js';
import { demoConfig } from './demo-merchants.js';

const request: PaymentRequest = {
  reference: 'ord_1',
  merchantId: 'merchant-a',
  amount: 1_000n,
  currency: 'EUR',
  card: { number: '4242424242424242', expMonth: 12, expYear: 2030 },
};

describe('ownedBankPort', () => {
  it("sends an authorization only while the node owns the shard of the bank's Executor", async () => {
    const sent: string[] = [];
    const bank: BankPort = {
      authorize: async (each) => {
        sent.push(`authorize ${each.reference}`);
        return { kind: 'approved', reference: each.reference, authorizationCode: 'A1' };
      },
      inquire: async (reference) => {
        sent.push(`inquire ${reference}`);
        return { kind: 'not_found', reference };
      },
      cancel: async (reference) => {
        sent.push(`cancel ${reference}`);
        return { kind: 'cancelled', reference };
      },
      refund: async (request) => {
        sent.push(`refund ${request.reference}`);
        return { kind: 'succeeded', reference: request.reference };
      },
      inquireRefund: async (reference) => {
        sent.push(`inquireRefund ${reference}`);
        return { kind: 'not_found', reference };
      },
    };
    let owned = true;
    const asked: string[] = [];
    const port = ownedBankPort(
      bank,
      {
        fenceFor: (address: EntityAddress<unknown>) => {
          asked.push(`${address.typeName}/${address.entityId}`);
          return owned ? { shardId: 'executor-bank-a/0', epoch: 1, owner: 'node-a' } : undefined;
        },
      },
      [{ id: 'merchant-a', config: demoConfig('bank-a') }],
    );
    expect(await port.authorize(request)).toMatchObject({ kind: 'approved' });
    owned = false;
    await expect(port.authorize(request)).rejects.toBeInstanceOf(ExecutorShardNotOwnedError);
    // Reading and settling are not charging: they go out whoever owns the shard.
    await port.inquire('ord_1');
    await port.cancel('ord_1');
    expect(sent).toEqual(['authorize ord_1', 'inquire ord_1', 'cancel ord_1']);
    expect(new Set(asked)).toEqual(new Set(['executor/bank-a']));
  });

  it("sends a refund only while the node owns the shard of the bank's Executor; inquiries go out", async () => {
    const sent: string[] = [];
    const bank: BankPort = {
      authorize: () => Promise.reject(new Error('not asked')),
      inquire: () => Promise.reject(new Error('not asked')),
      cancel: () => Promise.reject(new Error('not asked')),
      refund: async (each) => {
        sent.push(`refund ${each.reference}`);
        return { kind: 'succeeded', reference: each.reference };
      },
      inquireRefund: async (reference) => {
        sent.push(`inquireRefund ${reference}`);
        return { kind: 'not_found', reference };
      },
    };
    let owned = true;
    const port = ownedBankPort(
      bank,
      {
        fenceFor: () => (owned ? { shardId: 'executor-bank-a/0', epoch: 1, owner: 'node-a' } : undefined),
      },
      [{ id: 'merchant-a', config: demoConfig('bank-a') }],
    );
    const refund = {
      reference: 're_1',
      paymentReference: 'ord_1',
      merchantId: 'merchant-a',
      amount: 500n,
      currency: 'EUR',
    } as const;
    expect(await port.refund(refund)).toEqual({ kind: 'succeeded', reference: 're_1' });
    owned = false;
    await expect(port.refund(refund)).rejects.toBeInstanceOf(ExecutorShardNotOwnedError);
    await port.inquireRefund('re_1');
    expect(sent).toEqual(['refund re_1', 'inquireRefund re_1']);
  });
});
