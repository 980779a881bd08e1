/**
 * The simulator's invariants on hand-made observations: a consistent one passes, and each kind of
 * breakage is reported by the invariant meant for it. A checker that cannot fail proves nothing.
 */
import { describe, expect, it } from 'vitest';
import { orderIdFor } from '../payments/order.js';
import {
  checkInvariants,
  checkWriters,
  type ObservedAnswer,
  type ObservedOrder,
  type ObservedPayment,
  type ObservedRequest,
  type ObservedWrite,
  type SeedObservation,
} from './invariants.js';

const executedId = orderIdFor('merchant-a', 'key-1');
const rejectedId = orderIdFor('merchant-a', 'key-2');
const failedId = orderIdFor('merchant-b', 'key-3');

function order(id: string, key: string, status: string, extra: Partial<ObservedOrder> = {}): ObservedOrder {
  return {
    id,
    merchantId: key === 'key-3' ? 'merchant-b' : 'merchant-a',
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    status,
    amount: 1_000n,
    currency: 'EUR',
    reason: undefined,
    authorizationCode: undefined,
    ...extra,
  };
}

const executed = order(executedId, 'key-1', 'executed', { authorizationCode: 'ABC123' });
const rejected = order(rejectedId, 'key-2', 'rejected', { reason: 'card_expired' });
const failed = order(failedId, 'key-3', 'failed', { reason: 'deadline_exceeded' });

let answers = 0;

/** An answer carrying `of` as the API shows it, with `status` (by default its final one). */
function answer(of: ObservedOrder, status = of.status): ObservedAnswer {
  return {
    seq: ++answers,
    order: { id: of.id, requestHash: of.requestHash, status, amount: of.amount },
    error: undefined,
    received: true,
  };
}

function errorAnswer(status: number, code: string): ObservedAnswer {
  return { seq: ++answers, order: undefined, error: { status, code }, received: true };
}

function request(of: ObservedOrder, ...given: ObservedAnswer[]): ObservedRequest {
  return {
    merchantId: of.merchantId,
    idempotencyKey: of.idempotencyKey,
    orderId: of.id,
    requestHash: of.requestHash,
    variant: 'first',
    answered: true,
    answers: given.length > 0 ? given : [answer(of)],
  };
}

const approved: ObservedPayment = {
  reference: executedId,
  merchantId: 'merchant-a',
  status: 'approved',
  amount: 1_000,
  currency: 'EUR',
  authorizationCode: 'ABC123',
  declineReason: undefined,
  requestCount: 1,
};
const tombstone: ObservedPayment = {
  reference: failedId,
  merchantId: '',
  status: 'cancelled',
  amount: 0,
  currency: undefined,
  authorizationCode: undefined,
  declineReason: undefined,
  requestCount: 1,
};

function consistent(): SeedObservation {
  const orders = [executed, rejected, failed];
  const byId = new Map(orders.map((entry) => [entry.id, entry]));
  return {
    quiescent: true,
    pending: [],
    requests: orders.map((entry) => request(entry)),
    journals: [
      { persistenceId: 'merchant-merchant-a', seqNrs: [1, 2, 3, 4, 5] },
      { persistenceId: 'executor-bank-a', seqNrs: [1, 2, 3] },
    ],
    creations: orders.map((entry) => ({
      merchantId: entry.merchantId,
      orderId: entry.id,
      idempotencyKey: entry.idempotencyKey,
      requestHash: entry.requestHash,
    })),
    recovered: byId,
    live: new Map(byId),
    readModel: new Map(byId),
    executions: new Map([
      [executedId, { requested: 1, settled: ['executed'], confirmed: 1 }],
      [failedId, { requested: 1, settled: ['failed'], confirmed: 1 }],
    ]),
    payments: [approved, tombstone],
    online: [],
  };
}

function invariants(observation: SeedObservation): string[] {
  return [...new Set(checkInvariants(observation).map((violation) => violation.invariant))].sort();
}

describe('simulation invariants', () => {
  it('a consistent seed passes', () => {
    expect(checkInvariants(consistent())).toEqual([]);
  });

  it('a charge without an executed order, and an executed order without a charge', () => {
    const base = consistent();
    const recovered = new Map(base.recovered);
    recovered.set(executedId, { ...executed, status: 'validated', authorizationCode: undefined });
    expect(invariants({ ...base, recovered, quiescent: false, pending: ['x'] })).toEqual(
      expect.arrayContaining(['ledger.charged-not-executed', 'orders.terminal', 'liveness.quiescent']),
    );
    expect(invariants({ ...base, payments: [tombstone] })).toEqual(['ledger.executed-charged']);
  });

  it('a charge of another amount, and a failed order the bank charged', () => {
    const base = consistent();
    expect(invariants({ ...base, payments: [{ ...approved, amount: 999 }, tombstone] })).toEqual([
      'ledger.executed-same-payment',
    ]);
    const charged: ObservedPayment = { ...approved, reference: failedId, merchantId: 'merchant-b' };
    expect(invariants({ ...base, payments: [approved, charged] })).toEqual(
      expect.arrayContaining(['ledger.failed-not-charged', 'ledger.charged-not-executed']),
    );
  });

  it('a rejected order that reached the bank or an Executor', () => {
    const base = consistent();
    const sent: ObservedPayment = {
      ...approved,
      reference: rejectedId,
      status: 'declined',
      authorizationCode: undefined,
    };
    const executions = new Map(base.executions).set(rejectedId, { requested: 1, settled: [], confirmed: 0 });
    expect(invariants({ ...base, payments: [...base.payments, sent], executions })).toEqual([
      'executor.rejected-never-sent',
      'ledger.rejected-never-sent',
    ]);
  });

  it('an order executed twice by the Executor', () => {
    const base = consistent();
    const executions = new Map(base.executions).set(executedId, {
      requested: 2,
      settled: ['executed', 'executed'],
      confirmed: 2,
    });
    expect(invariants({ ...base, executions })).toEqual(['executor.executed-once']);
  });

  it('two orders for one key, and an order id not derived from its key', () => {
    const base = consistent();
    const first = base.creations[0];
    if (first === undefined) throw new Error('no creation');
    expect(
      invariants({ ...base, creations: [...base.creations, { ...first, orderId: 'ord_other' }] }),
    ).toEqual([
      'orders.id-from-key',
      'orders.one-per-key',
      // And the second order is nowhere in the Merchant's state.
      'orders.recoverable',
    ]);
  });

  it('a replay answers the same order; polling sees its status move forward, never back', () => {
    const base = consistent();
    const polled = request(executed, answer(executed, 'validated'), errorAnswer(503, 'gateway_busy'));
    const replay: ObservedRequest = { ...request(executed), variant: 'retry' };
    expect(invariants({ ...base, requests: [polled, replay, ...base.requests.slice(1)] })).toEqual([]);
    const backwards = request(executed, answer(executed), answer(executed, 'validated'));
    expect(invariants({ ...base, requests: [backwards, ...base.requests.slice(1)] })).toEqual([
      'client.replay-same-order',
    ]);
    const otherEnd: ObservedRequest = {
      ...request(executed, answer(executed, 'declined')),
      variant: 'retry',
    };
    expect(invariants({ ...base, requests: [...base.requests, otherEnd] })).toEqual(
      expect.arrayContaining(['client.replay-same-order']),
    );
  });

  it("a key reused with another body gets the key-reuse error, never the first body's order", () => {
    const base = consistent();
    const reused: ObservedRequest = {
      ...request(executed, errorAnswer(422, 'idempotency_key_reused')),
      requestHash: 'another body',
      variant: 'other-body',
    };
    expect(invariants({ ...base, requests: [...base.requests, reused] })).toEqual([]);
    const answeredWithFirst: ObservedRequest = { ...reused, answers: [answer(executed)] };
    expect(invariants({ ...base, requests: [...base.requests, answeredWithFirst] })).toEqual([
      'client.answer-own-body',
    ]);
    // The key-reuse error for the very body that created the order, or for a key with no order, lies.
    const sameBody = request(executed, errorAnswer(422, 'idempotency_key_reused'));
    expect(invariants({ ...base, requests: [sameBody, ...base.requests.slice(1)] })).toEqual([
      'client.key-reuse-truthful',
    ]);
    const wrongOrder: ObservedRequest = { ...request(executed, answer(rejected)), orderId: executedId };
    expect(invariants({ ...base, requests: [...base.requests, wrongOrder] })).toEqual(
      expect.arrayContaining(['client.same-order']),
    );
  });

  it('no answer that a crash takes back: an order answered exists and ends as it was answered', () => {
    const base = consistent();
    const lost = order(orderIdFor('merchant-a', 'key-9'), 'key-9', 'executed');
    expect(invariants({ ...base, requests: [...base.requests, request(lost)] })).toEqual([
      'client.answer-exists',
    ]);
    // Answered executed, recovered declined: the answer was taken back.
    const takenBack = request(executed, answer(executed));
    const recovered = new Map(base.recovered);
    recovered.set(executedId, { ...executed, status: 'declined' });
    expect(invariants({ ...base, recovered, requests: [takenBack, ...base.requests.slice(1)] })).toEqual(
      expect.arrayContaining(['client.answer-holds']),
    );
    // Answered validated, ended rejected: also taken back.
    const validatedThenRejected = request(rejected, answer(rejected, 'validated'), answer(rejected));
    expect(invariants({ ...base, requests: [base.requests[0] ?? takenBack, validatedThenRejected] })).toEqual(
      expect.arrayContaining(['client.answer-holds']),
    );
  });

  it('an unanswered request, and a server error', () => {
    const base = consistent();
    const unanswered: ObservedRequest = { ...request(rejected), answered: false, answers: [] };
    expect(invariants({ ...base, requests: [unanswered] })).toEqual(['client.answered']);
    const crashed = request(rejected, errorAnswer(500, 'TypeError'), answer(rejected));
    expect(invariants({ ...base, requests: [crashed] })).toEqual(['client.no-server-error']);
  });

  it('a gap in a journal', () => {
    const base = consistent();
    expect(
      invariants({ ...base, journals: [{ persistenceId: 'merchant-merchant-a', seqNrs: [1, 2, 4] }] }),
    ).toEqual(['journal.contiguous']);
  });

  it('a read model or a live Merchant that disagrees with the journal', () => {
    const base = consistent();
    const readModel = new Map(base.readModel).set(failedId, { ...failed, status: 'validated' });
    expect(invariants({ ...base, readModel })).toEqual(['readmodel.agrees']);
    const live = new Map(base.live).set(executedId, { ...executed, status: 'validated' });
    expect(invariants({ ...base, live })).toEqual(['merchant.live-equals-recovered']);
  });

  it('a finished order the live Merchant no longer holds is right; an order in flight it does not know is not', () => {
    const base = consistent();
    const forgotten = new Map(base.live).set(executedId, undefined);
    expect(invariants({ ...base, live: forgotten })).toEqual([]);
    const inFlight = { ...failed, status: 'validated' };
    const stuck = {
      ...base,
      recovered: new Map(base.recovered).set(failedId, inFlight),
      readModel: new Map(base.readModel).set(failedId, inFlight),
      live: new Map(base.live).set(failedId, undefined),
    };
    expect(invariants(stuck)).toContain('merchant.live-equals-recovered');
  });

  it('reports the online checks, and caps repeated details', () => {
    const base = consistent();
    const online = Array.from({ length: 8 }, (_, index) => ({
      invariant: 'durability.acted-before-durable',
      detail: `reply ${index}`,
    }));
    const violations = checkInvariants({ ...base, online });
    expect(violations).toHaveLength(6);
    expect(violations.at(-1)?.detail).toBe('… and 3 more like it');
  });
});

describe('fenced ownership in a cluster', () => {
  const write = (fromSeqNr: number, writer: string, epoch: number, extra: Partial<ObservedWrite> = {}) => ({
    persistenceId: 'merchant-merchant-a',
    fromSeqNr,
    events: 1,
    writer,
    shardId: 'merchants/3',
    epoch,
    fenceHeld: true,
    ...extra,
  });

  it('passes owners that follow one another, each under a higher epoch', () => {
    expect(
      checkWriters([write(1, 'n1', 1), write(2, 'n1', 1), write(3, 'n4', 2), write(4, 'n1', 5)]),
    ).toEqual([]);
  });

  it('reports two writers in one epoch, an epoch that goes down, a stale commit and an unfenced write', () => {
    const invariants = (writes: ObservedWrite[]) => checkWriters(writes).map((each) => each.invariant);
    expect(invariants([write(1, 'n1', 1), write(2, 'n2', 1)])).toEqual(['cluster.one-writer-per-epoch']);
    expect(invariants([write(1, 'n2', 2), write(2, 'n1', 1)])).toEqual(['cluster.one-writer-per-epoch']);
    expect(invariants([write(1, 'n1', 1, { fenceHeld: false })])).toEqual(['cluster.fenced-writes']);
    expect(invariants([write(1, 'n1', 1, { epoch: undefined, shardId: undefined })])).toEqual([
      'cluster.fenced-writes',
    ]);
  });
});
