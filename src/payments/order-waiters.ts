import type { ActorRef } from '../runtime/actor.js';
import type { OrderFinished } from './merchant-protocol.js';
import type { Order } from './order.js';

export interface OrderWaitersSettings {
  /** Requests waiting on one order (a client retrying in a loop must not grow this without end). */
  readonly waitersPerOrderMax: number;
  /** Orders with someone waiting, across all merchants of this process. */
  readonly ordersWaitedOnMax: number;
  /**
   * Orders this process saw finish, kept (newest last, across all merchants) to answer requests
   * that arrive just after an order finished, before the read model shows it.
   */
  readonly recentlyFinishedMax: number;
}

export const defaultOrderWaitersSettings: OrderWaitersSettings = {
  waitersPerOrderMax: 16,
  ordersWaitedOnMax: 100_000,
  recentlyFinishedMax: 4_096,
};

/**
 * The reply addresses of HTTP requests waiting for an order to finish (the seed's
 * `orderClients`), and the orders this process saw finish most recently. Deliberately not state:
 * neither is persisted nor rebuilt by recovery, and neither grows with history — both are bounded
 * by name. The table belongs to the process, not to one incarnation of a Merchant, so a request
 * still waiting when a Merchant restarts gets its answer from the next incarnation. A waiter that
 * is not answered — the table was full, or the order outlived the request — times out on the asking
 * side, and the client polls. A finished order that has left this table is the read model's.
 */
export class OrderWaiters {
  private readonly waiting = new Map<string, ActorRef<OrderFinished>[]>();
  /** Insertion-ordered: the oldest finished order comes first and leaves first. */
  private readonly finished = new Map<string, Order>();

  constructor(private readonly settings: OrderWaitersSettings = defaultOrderWaitersSettings) {}

  /** Whether `replyTo` will be told when the order finishes: false when the table is full. */
  add(orderId: string, replyTo: ActorRef<OrderFinished>): boolean {
    const list = this.waiting.get(orderId);
    if (list === undefined) {
      if (this.waiting.size >= this.settings.ordersWaitedOnMax) return false;
      this.waiting.set(orderId, [replyTo]);
      return true;
    }
    if (list.length >= this.settings.waitersPerOrderMax) list.shift();
    list.push(replyTo);
    return true;
  }

  /** The order finished (its terminal event is durable): remember it, and answer whoever waits. */
  complete(orderId: string, order: Order): void {
    this.finished.delete(orderId);
    this.finished.set(orderId, order);
    if (this.finished.size > this.settings.recentlyFinishedMax) {
      const oldest = this.finished.keys().next();
      if (!oldest.done) this.finished.delete(oldest.value);
    }
    const list = this.waiting.get(orderId);
    if (list === undefined) return;
    this.waiting.delete(orderId);
    for (const replyTo of list) replyTo.tell({ type: 'OrderFinished', order });
  }

  /**
   * A finished order of this merchant, if this process saw it finish recently. The table is shared
   * by all merchants of the process: one merchant never gets another's order, even by its id.
   */
  recentlyFinished(merchantId: string, orderId: string): Order | undefined {
    const order = this.finished.get(orderId);
    return order?.merchantId === merchantId ? order : undefined;
  }

  /** Orders with someone waiting. */
  get size(): number {
    return this.waiting.size;
  }

  get recentlyFinishedCount(): number {
    return this.finished.size;
  }
}
