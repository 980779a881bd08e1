/**
 * The durable stage's writer thread: each message is one batch (`{ id, rows }`, rows a flat array
 * `[persistenceId, payload, …]`), committed in one transaction; the answer `{ id, ok }` is posted
 * back only after the commit is durable, so the main thread answers those requests only then.
 *
 * Batches are committed one after the other in arrival order: the main thread keeps at most a few
 * in flight, so while one is fsynced the next is already here. The stub ends the thread with
 * `terminate()` when it stops; a transaction cut short rolls back, and the file is thrown away.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openJournal } from './journal.mjs';

if (parentPort === null) throw new Error('journal-worker.mjs runs as a worker thread');
const port = parentPort;
const journal = openJournal(workerData.file);

port.on('message', (message) => {
  try {
    journal.commit(message.rows);
    port.postMessage({ id: message.id, ok: true });
  } catch (error) {
    port.postMessage({ id: message.id, ok: false, error: String(error) });
  }
});
