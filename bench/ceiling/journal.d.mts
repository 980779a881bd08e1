/** Types of `journal.mjs` (plain JavaScript so the stub server runs without a loader). */

export interface StubJournal {
  /** Inserts `[persistenceId, payload, …]` in one transaction; returns once it is durable. */
  commit(rows: readonly string[]): void;
  close(): void;
}

export function openJournal(file: string): StubJournal;
