import assert from 'node:assert/strict';
import type { Database, Statement } from 'better-sqlite3';
import type { OffsetEvent } from '../journal.js';
import { verifiedEvent, withOffset } from '../row-integrity.js';

/**
 * The journal's global stream over one connection: events of all ids with `offset > afterOffset`,
 * in offset order, each row checked (`row-integrity.ts`). Shared by `SqliteJournal.readAll` and
 * the projection thread's own reader (`readmodel/journal-reader.ts`).
 */
export class GlobalStreamQuery {
  private readonly selectAfter: Statement<[number, number], unknown[]>;

  constructor(database: Database) {
    this.selectAfter = database
      .prepare<[number, number], unknown[]>(
        'SELECT global_offset, persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum ' +
          'FROM journal WHERE global_offset > ? ORDER BY global_offset LIMIT ?',
      )
      .raw(true);
  }

  read(afterOffset: number, limit: number): OffsetEvent[] {
    assert.ok(Number.isSafeInteger(afterOffset) && afterOffset >= 0, 'afterOffset must be an integer >= 0');
    assert.ok(Number.isSafeInteger(limit) && limit >= 0, 'limit must be an integer >= 0');
    const rows = this.selectAfter.all(afterOffset, limit);
    const events: OffsetEvent[] = new Array(rows.length);
    for (let index = 0; index < rows.length; index++) {
      const row = rows[index] ?? [];
      events[index] = withOffset(
        verifiedEvent(row[1], row[2], row[3], row[4], row[5], row[6], row[7]),
        row[0],
      );
    }
    return events;
  }
}
