import type { ActorRef } from '../runtime/actor.js';
import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import type { CardSummary } from './card.js';
import type { Currency } from './money.js';
import type { Order } from './order.js';
import { type MerchantInbox, merchantTypeName } from './protocol.js';
import type { MerchantConfig } from './validator.js';

/**
 * What a Merchant is asked, and what it answers: its configuration, a client's new order (and the
 * retries of it), waiting for and reading an order, and — from the Executor of its bank — the
 * messages of `protocol.ts`. The Merchant's events are in `merchant-events.ts`, how it decides in
 * `merchant-decider.ts`.
 */

export interface NewOrder {
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly description: string | undefined;
  readonly reference: string | undefined;
  /** When the gateway received the request: the time the rules are applied at. */
  readonly receivedAt: number;
}

export type MerchantCommand =
  | {
      readonly type: 'ConfigureMerchant';
      readonly config: MerchantConfig;
      readonly replyTo: ActorRef<ConfigureReply>;
    }
  | {
      readonly type: 'ProcessNewOrder';
      readonly order: NewOrder;
      /**
       * Answer a validated order once it has finished (`OrderFinished`) instead of once it is
       * accepted: one round trip instead of `ProcessNewOrder` then `AwaitOrder`. The asker bounds
       * the wait; an order still in flight then is read with `GetOrder`.
       */
      readonly awaitResult?: boolean;
      readonly replyTo: ActorRef<ProcessOrderReply>;
    }
  | { readonly type: 'AwaitOrder'; readonly orderId: string; readonly replyTo: ActorRef<AwaitOrderReply> }
  | { readonly type: 'GetOrder'; readonly orderId: string; readonly replyTo: ActorRef<GetOrderReply> }
  /**
   * The Merchant's own timer: end as `failed` (`bank_unreachable`) every order whose `ExecuteOrder`
   * no Executor acknowledged by `dueAt` (its deadline plus `unacknowledgedGraceMs`).
   */
  | { readonly type: 'ExpireUnacknowledgedOrders'; readonly dueAt: number }
  | MerchantInbox;

export type ConfigureReply = { readonly type: 'MerchantConfigured' };

/** An order reached its terminal status: the answer to `AwaitOrder`, or to an awaited `ProcessNewOrder`. */
export type OrderFinished = { readonly type: 'OrderFinished'; readonly order: Order };

export type ProcessOrderReply =
  | { readonly type: 'OrderAccepted'; readonly order: Order }
  | OrderFinished
  /** The same order id is known (a retry): `sameRequest` tells a replay from a key reused with another body. */
  | { readonly type: 'OrderExists'; readonly order: Order; readonly sameRequest: boolean }
  /** Processed long ago: no longer in the Merchant's memory; the read model has it. */
  | { readonly type: 'OrderProcessedEarlier'; readonly orderId: string }
  | { readonly type: 'MerchantBusy' }
  | { readonly type: 'MerchantNotConfigured' };

export type AwaitOrderReply =
  | OrderFinished
  /** Not in flight, and not among this process's recently finished orders: the read model has it, if anyone. */
  | { readonly type: 'OrderNotInMemory'; readonly orderId: string };

/** An order in flight, or one this process saw finish recently; undefined otherwise (ask the read model). */
export type GetOrderReply = { readonly type: 'OrderFound'; readonly order: Order | undefined };

export function merchantAddress(merchantId: string): EntityAddress<MerchantCommand> {
  return entityAddress<MerchantCommand>(merchantTypeName, merchantId);
}
