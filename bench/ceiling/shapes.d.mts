/** Types of `shapes.mjs` (plain JavaScript so the stub server runs without a loader). */

export interface OrderRequest {
  readonly amount: number;
  readonly currency: string;
  readonly card: { readonly number: string; readonly expMonth: number; readonly expYear: number };
}

export interface StubCard {
  readonly token: string;
  readonly brand: string;
  readonly bin: string;
  readonly last4: string;
  readonly expMonth: number;
  readonly expYear: number;
}

export interface StubOrder {
  readonly id: string;
  readonly merchantId: string;
  readonly status: 'executed';
  readonly amount: number;
  readonly currency: string;
  readonly card: StubCard;
  readonly bank: string;
  readonly reference: string;
  readonly description: null;
  readonly reason: null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface StubOrderEvent {
  readonly type: 'OrderCreated';
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly amount: number;
  readonly currency: string;
  readonly card: StubCard;
  readonly bank: string;
  readonly createdAt: string;
}

export function orderRequestOf(value: unknown): OrderRequest | undefined;
export function orderOf(
  sequence: number,
  merchantId: string,
  request: OrderRequest,
  nowIso: string,
): StubOrder;
export function orderEventOf(order: StubOrder, idempotencyKey: string): StubOrderEvent;
