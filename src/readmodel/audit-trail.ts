import { executorEvents } from '../payments/executor-events.js';
import { merchantEvents } from '../payments/merchant-events.js';
import { paymentEvents } from '../payments/payment-events.js';
import type { Journal, OffsetEvent } from '../store/journal.js';
import { type DecodedEvent, decodeJournalRow } from './order-projection.js';
import type { ListOrdersQuery, OrderPage, OrderRow } from './order-read-model.js';

/**
 * An order's audit trail: its Merchant, Executor and Payment (refund) events, read from the journal at the offsets
 * the read model lists for the order. The read model keeps only those offsets (one short text
 * column per order): a copy of every event there cost the projection a row in a table keyed by
 * order id per event — a random page written per event — and made the read model larger than the
 * journal. The journal is the record anyway; this reads it, checksums and all, like any reader.
 */

/** One event of an order's audit trail. */
export interface AuditEntry {
  /** The event's global offset in the journal. */
  readonly offset: number;
  readonly persistenceId: string;
  readonly seqNr: number;
  readonly type: string;
  /** When the journal stored the event (the writer's clock), milliseconds since the epoch. */
  readonly at: number;
  /**
   * The event as JSON data in its current schema version. A card appears only as its summary
   * (token, brand, BIN, last four, expiry), never as its number.
   */
  readonly data: Readonly<Record<string, unknown>>;
}

/** The read model lists an offset the journal cannot give as an order's event: they disagree. */
export class AuditTrailError extends Error {
  override readonly name = 'AuditTrailError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (offset ${offset})`);
  }
}

/** The events at `offsets`, in that order. Throws `AuditTrailError`, `CorruptRowError`, `SerializationError`. */
export async function readAuditTrail(
  journal: Pick<Journal, 'readAll'>,
  offsets: readonly number[],
): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (const offset of offsets) {
    const [row] = await journal.readAll(offset - 1, 1);
    if (row === undefined || row.offset !== offset) {
      throw new AuditTrailError('the journal holds no event where the read model lists one', offset);
    }
    const decoded = decodeJournalRow(row);
    if (decoded === undefined) {
      throw new AuditTrailError(`the read model lists an event of ${row.persistenceId}`, offset);
    }
    entries.push({
      offset,
      persistenceId: row.persistenceId,
      seqNr: row.seqNr,
      type: row.type,
      at: row.timestamp,
      data: JSON.parse(auditData(row, decoded)) as Record<string, unknown>,
    });
  }
  return entries;
}

type OrderEventOffsets = number[] | undefined;

/** The merchant's order's audit trail, or undefined when the read model has no such order. */
export async function orderAuditTrail(
  readModel: {
    /** SQLite's read model answers at once, PostgreSQL's with a promise. */
    orderEventOffsets(merchantId: string, orderId: string): OrderEventOffsets | Promise<OrderEventOffsets>;
  },
  journal: Pick<Journal, 'readAll'>,
  merchantId: string,
  orderId: string,
): Promise<AuditEntry[] | undefined> {
  const offsets = await readModel.orderEventOffsets(merchantId, orderId);
  return offsets === undefined ? undefined : readAuditTrail(journal, offsets);
}

/** A read model as the API queries it: SQLite's answers at once, PostgreSQL's with promises. */
export interface QueriedReadModel {
  getOrder(merchantId: string, orderId: string): OrderRow | undefined | Promise<OrderRow | undefined>;
  listOrders(query: ListOrdersQuery): OrderPage | Promise<OrderPage>;
  orderEventOffsets(merchantId: string, orderId: string): OrderEventOffsets | Promise<OrderEventOffsets>;
}

/** The read model's queries, with audit trails read from `journal`: what the API asks. */
export function orderQueries(readModel: QueriedReadModel, journal: Pick<Journal, 'readAll'>) {
  return {
    getOrder: async (merchantId: string, orderId: string) => readModel.getOrder(merchantId, orderId),
    listOrders: async (query: ListOrdersQuery) => readModel.listOrders(query),
    orderEvents: (merchantId: string, orderId: string) =>
      orderAuditTrail(readModel, journal, merchantId, orderId),
  };
}

/**
 * The event as the audit trail shows it: in its current schema version, so the trail has one shape
 * per event type however old the stored row is. A row already in that version (nearly all) was
 * written by the same encoder, so its payload is used as it is instead of being encoded again.
 */
function auditData(row: OffsetEvent, decoded: DecodedEvent): string {
  if (decoded.source === 'executor') {
    return executorEvents.isCurrent(row.type, row.version)
      ? row.payload
      : executorEvents.serialize(decoded.event).payload;
  }
  if (decoded.source === 'payment') {
    return paymentEvents.isCurrent(row.type, row.version)
      ? row.payload
      : paymentEvents.serialize(decoded.event).payload;
  }
  return merchantEvents.isCurrent(row.type, row.version)
    ? row.payload
    : merchantEvents.serialize(decoded.event).payload;
}
