import type { ActorRef } from '../runtime/actor.js';
import type { AwaitOrderReply } from './merchant.js';
import type { Order } from './order.js';

export interface OrderWaitersSettings {
  /** Requests waiting on one order (a client retrying in a loop must not grow this without end). */
  readonly waitersPerOrderMax: number;
  /** Orders with someone waiting, across all merchants of this process. */
  readonly ordersWaitedOnMax: number;
}

export const defaultOrderWaitersSettings: OrderWaitersSettings = {
  waitersPerOrderMax: 16,
  ordersWaitedOnMax: 100_000,
};

/**
 * The reply addresses of HTTP requests waiting for an order to finish (the seed's
 * `orderClients`). Deliberately not state: it is not persisted and not rebuilt by recovery. It
 * belongs to the process, not to one incarnation of a Merchant, so a request still waiting when a
 * Merchant restarts gets its answer from the next incarnation. A waiter that is not answered —
 * the table was full, or the order outlived the request — times out on the asking side, and the
 * client polls.
 */
export class OrderWaiters {
  private readonly waiting = new Map<string, ActorRef<AwaitOrderReply>[]>();

  constructor(private readonly settings: OrderWaitersSettings = defaultOrderWaitersSettings) {}

  add(orderId: string, replyTo: ActorRef<AwaitOrderReply>): void {
    const list = this.waiting.get(orderId);
    if (list === undefined) {
      if (this.waiting.size >= this.settings.ordersWaitedOnMax) return;
      this.waiting.set(orderId, [replyTo]);
      return;
    }
    if (list.length >= this.settings.waitersPerOrderMax) list.shift();
    list.push(replyTo);
  }

  complete(orderId: string, order: Order): void {
    const list = this.waiting.get(orderId);
    if (list === undefined) return;
    this.waiting.delete(orderId);
    for (const replyTo of list) replyTo.tell({ type: 'OrderFinished', order });
  }

  get size(): number {
    return this.waiting.size;
  }
}
