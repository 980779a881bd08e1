import BetterSqlite3 from 'better-sqlite3';

/** Every row of a read model's tables, straight from its file, for comparing two read models. */
export function dumpReadModel(path: string): { orders: unknown[]; events: unknown[]; offsets: unknown[] } {
  const database = new BetterSqlite3(path, { readonly: true });
  try {
    return {
      orders: database.prepare('SELECT * FROM orders ORDER BY order_id').all(),
      events: database.prepare('SELECT * FROM order_events ORDER BY order_id, global_offset').all(),
      offsets: database.prepare('SELECT * FROM projection_offsets ORDER BY name').all(),
    };
  } finally {
    database.close();
  }
}
