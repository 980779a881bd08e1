import type { OrderQueries, OrderView } from '../node/order-service.js';
import { viewOf } from '../node/order-service.js';
import { isOrderEvent, orderAfter } from '../payments/merchant-decider.js';
import { merchantEvents } from '../payments/merchant-events.js';
import type { Order } from '../payments/order.js';
import type { MemoryJournal } from '../store/memory/memory-journal.js';

/**
 * A stand-in for the read model in tests of the node without SQLite: every Merchant's orders folded
 * from the in-memory journal with the Merchant's own order transitions (the real read model is
 * tested in readmodel/).
 */
/** `lagging` makes it show nothing new, as a busy projection would. */
export class JournalQueries implements OrderQueries {
  lagging = false;
  private frozen = new Map<string, OrderView>();

  constructor(private readonly journal: MemoryJournal) {}

  async getOrder(merchant: string, orderId: string): Promise<OrderView | undefined> {
    const view = (this.lagging ? this.frozen : this.current()).get(orderId);
    return view?.merchantId === merchant ? view : undefined;
  }

  async listOrders(): Promise<{ data: OrderView[]; hasMore: boolean }> {
    return { data: [...this.current().values()], hasMore: false };
  }

  orderEvents(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  lag(): void {
    this.frozen = this.current();
    this.lagging = true;
  }

  private current(): Map<string, OrderView> {
    const orders = new Map<string, Order>();
    for (const persistenceId of this.journal.persistenceIds()) {
      if (!persistenceId.startsWith('merchant-')) continue;
      const merchantId = persistenceId.slice('merchant-'.length);
      for (const row of this.journal.eventsOf(persistenceId)) {
        const event = merchantEvents.deserialize(row);
        if (isOrderEvent(event))
          orders.set(event.orderId, orderAfter(orders.get(event.orderId), event, merchantId));
      }
    }
    return new Map([...orders].map(([id, order]) => [id, viewOf(order)]));
  }
}
