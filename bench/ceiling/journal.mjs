/**
 * The ceiling stub's SQLite journal: one table of events, WAL and `synchronous=FULL` (each commit
 * is durable: the WAL is fsynced), the least a gateway that persists before it answers must write.
 * Used by the writer thread (`journal-worker.mjs`, stage durable) and on the main thread (stage
 * durable-inline), so both stages write the same way.
 *
 * Plain JavaScript: the stub runs under plain `node`, without a TypeScript loader.
 */
import Database from 'better-sqlite3';

/**
 * Opens (creates) the journal and returns `commit(rows)`: `rows` is a flat array
 * `[persistenceId, payload, persistenceId, payload, …]`, inserted in one `BEGIN IMMEDIATE`
 * transaction; it returns once the transaction is durable, or throws (nothing of it written).
 */
export function openJournal(file) {
  const database = new Database(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = FULL');
  // The gateway's setting too: statement journals in memory, not a temp file per transaction.
  database.pragma('temp_store = MEMORY');
  database.exec(
    'CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, persistence_id TEXT NOT NULL, payload TEXT NOT NULL) STRICT',
  );
  const insert = database.prepare('INSERT INTO journal (persistence_id, payload) VALUES (?, ?)');
  const insertAll = database.transaction((rows) => {
    for (let index = 0; index + 1 < rows.length; index += 2) insert.run(rows[index], rows[index + 1]);
  });
  return {
    commit: (rows) => insertAll.immediate(rows),
    close: () => database.close(),
  };
}
