import BetterSqlite3 from 'better-sqlite3';

/** Every row of a read model's tables, straight from its file, for comparing two read models. */
export function dumpReadModel(path: string): { orders: unknown[]; refunds: unknown[]; offsets: unknown[] } {
  const database = new BetterSqlite3(path, { readonly: true });
  try {
    return {
      orders: database.prepare('SELECT * FROM orders ORDER BY order_id').all(),
      refunds: database.prepare('SELECT * FROM refunds ORDER BY id').all(),
      offsets: database.prepare('SELECT * FROM projection_offsets ORDER BY name').all(),
    };
  } finally {
    database.close();
  }
}

/** Every journal offset the dumped orders list as their events (audit trails), in row order. */
export function listedEventOffsets(dump: { orders: unknown[] }): number[] {
  return dump.orders.flatMap((row) => {
    const offsets = (row as { event_offsets?: unknown }).event_offsets;
    if (typeof offsets !== 'string')
      throw new Error(`an orders row has no event_offsets: ${JSON.stringify(row)}`);
    return offsets.split(',').map(Number);
  });
}
