import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import type { EntityDefinition } from '../persistence/entity.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import { decidePayment, evolvePayment, initialPaymentState, type PaymentState } from './payment-decider.js';
import { type PaymentEvent, paymentEvents } from './payment-events.js';
import type { PaymentCommand } from './payment-protocol.js';
import { paymentTypeName } from './protocol.js';

/**
 * The Payment entity (`payment-<order id>`): an executed order's refunds, the compensation of its
 * charge. It checks each new refund against what remains of the order — the refunds succeeded and
 * still pending never add up to more than the order's amount — persists it (`RefundRequested`)
 * before anything is sent, delivers `ExecuteRefund` at least once to the Executor of the order's
 * bank (the outbox and redelivery the Merchant uses for `ExecuteOrder`), and records the bank's
 * outcome the Executor delivers back, once, confirming every delivery of it.
 *
 * A retried request is answered from the state (the refund id derives from the client's key), so
 * the Payment needs no processed-message records. Its state is bounded by `refundsPerOrderMax`
 * refunds, and so is its journal (three events a refund at most): no snapshots.
 *
 * This file wires the entity together and holds its settings; its commands and replies are in
 * `payment-protocol.ts`, its events in `payment-events.ts`, its decisions in `payment-decider.ts`.
 */

export interface PaymentSettings {
  /** Refunds an order may have in all; past it new ones are refused (`PaymentBusy`). */
  readonly refundsPerOrderMax: number;
  /** Refunds of an order pending at the bank at once; past it new ones are refused (`PaymentBusy`). */
  readonly pendingRefundsPerOrderMax: number;
  readonly redeliverIntervalMs: number;
  readonly redeliveryBackoff: BackoffSettings;
  /**
   * How long an idle Payment stays in memory. Payments are per order, so unlike Merchants and
   * Executors they must leave; one with an unconfirmed delivery stays until it is confirmed.
   */
  readonly passivateAfterMs: number;
}

export const defaultPaymentSettings: PaymentSettings = {
  refundsPerOrderMax: 100,
  pendingRefundsPerOrderMax: 10,
  redeliverIntervalMs: 1_000,
  redeliveryBackoff: defaultRedeliveryBackoff,
  passivateAfterMs: 60_000,
};

export function paymentDefinition(
  settings: PaymentSettings = defaultPaymentSettings,
): EntityDefinition<PaymentState, PaymentCommand, PaymentEvent> {
  return {
    typeName: paymentTypeName,
    initialState: initialPaymentState,
    decide: (state, command) => decidePayment(state, command, settings),
    evolve: evolvePayment,
    events: paymentEvents,
    delivery: {
      outboxOf: (state) => state.outbox,
      redeliverIntervalMs: settings.redeliverIntervalMs,
      backoff: settings.redeliveryBackoff,
      redeliveryBurstMax: settings.pendingRefundsPerOrderMax,
    },
  };
}
