import Database from 'better-sqlite3';
import type { JournalSequence } from './checker.js';

/**
 * Reads every persistence id's sequence numbers from the gateway's SQLite journal, read-only and
 * after the gateway has stopped, so nothing is written meanwhile. Ordered by persistence id and
 * sequence number: the checker wants each id's numbers ascending.
 */
export function readJournalSequences(journalPath: string): JournalSequence[] {
  const database = new Database(journalPath, { readonly: true, fileMustExist: true });
  try {
    const sequences = new Map<string, number[]>();
    const rows = database
      .prepare(
        'SELECT persistence_id AS persistenceId, seq_nr AS seqNr FROM journal ORDER BY persistence_id, seq_nr',
      )
      .iterate() as IterableIterator<{ persistenceId: string; seqNr: number }>;
    for (const { persistenceId, seqNr } of rows) {
      const seqNrs = sequences.get(persistenceId) ?? [];
      seqNrs.push(seqNr);
      sequences.set(persistenceId, seqNrs);
    }
    return [...sequences].map(([persistenceId, seqNrs]) => ({ persistenceId, seqNrs }));
  } finally {
    database.close();
  }
}
