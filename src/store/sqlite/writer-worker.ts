/**
 * The writer thread's entry (started by `SqliteWriter` through startTsWorker). It owns the write
 * connections: the journal file's and, once asked, the vault's. Ops run one at a time in the order
 * they were posted, each synchronously (better-sqlite3), so the fsyncs block this thread and not
 * the gateway's event loop.
 *
 * A failed vault write ends the thread at once: the appends posted after it may name the tokens it
 * held, and must not become durable without them. The owner fails everything still pending.
 *
 * The thread also hosts guests (`runtime/thread-guest.ts`): the gateway runs the order projection
 * here rather than in a thread of its own. A guest's work runs between write wake-ups, never
 * during one.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import { type HostGuestMessage, runGuest } from '../../runtime/thread-guest.js';
import type { AppendRequest } from '../journal.js';
import { openWriterDatabase } from './open-database.js';
import {
  type BatchResult,
  JournalWrites,
  openVaultDatabase,
  type VaultRow,
  VaultWrites,
} from './store-writes.js';
import {
  unflattenBatch,
  type WriteOp,
  type WriterReply,
  type WriterRequest,
  type WriterSettings,
} from './writer-protocol.js';

const port = parentPort;
if (port === null) throw new Error('writer-worker must run in a worker thread');
const settings = (workerData as { settings: WriterSettings }).settings;

const journalDatabase: Database = openWriterDatabase(settings.journalPath, settings.busyTimeoutMs);
const journal = new JournalWrites(journalDatabase);
const vaults = new Map<string, VaultWrites>();
let guestsRunning = 0;

type Inbound = WriterRequest | HostGuestMessage | 'stop';

function host(message: HostGuestMessage): void {
  guestsRunning++;
  void runGuest(message, (report) => {
    guestsRunning--;
    port?.postMessage(report);
  });
}

function vaultAt(path: string): VaultWrites {
  let vault = vaults.get(path);
  if (vault === undefined) {
    vault = new VaultWrites(openVaultDatabase(path, settings.busyTimeoutMs));
    vaults.set(path, vault);
  }
  return vault;
}

/**
 * The appends from `requests[start]` up to the next op of another kind (vault writes, already
 * written, do not end the run), committed in one transaction (`JournalWrites.appendBatches`): the
 * batches the gateway handed over while this thread was busy share one fsync. Each is answered
 * with its own outcomes; a transaction that fails fails every batch in it. Returns the index after
 * the run.
 */
function appendRun(requests: readonly WriterRequest[], start: number, replies: WriterReply[]): number {
  const ids: number[] = [];
  const batches: AppendRequest[][] = [];
  let end = start;
  for (; end < requests.length; end++) {
    const request = requests[end] as WriterRequest;
    if (request.op.kind === 'vault') continue;
    if (request.op.kind !== 'append') break;
    try {
      batches.push(unflattenBatch(request.op.batch));
      ids.push(request.id);
    } catch (error) {
      replies.push(failure(request.id, error));
    }
  }
  if (batches.length === 0) return end;
  let results: BatchResult[];
  try {
    results = journal.appendBatches(batches);
  } catch (error) {
    for (const id of ids) replies.push(failure(id, error));
    return end;
  }
  results.forEach((result, index) => {
    replies.push({ id: ids[index] as number, ok: true, result });
  });
  return end;
}

/** One op other than an append or a vault write (those are grouped by `appendRun` and `writeVaults`). */
function run(op: Exclude<WriteOp, { kind: 'vault' | 'append' }>): unknown {
  switch (op.kind) {
    case 'saveSnapshot':
      journal.saveSnapshot(op.row);
      return undefined;
    case 'deleteSnapshots':
      journal.deleteSnapshotsBefore(op.persistenceId, op.beforeSeqNr);
      return undefined;
    case 'purgeProcessed':
      return journal.purgeProcessed(op.receiverId, op.beforeTimestamp);
  }
}

function failure(id: number, error: unknown): WriterReply {
  const cause = error instanceof Error ? error : new Error(String(error));
  return { id, ok: false, error: { name: cause.name, message: cause.message } };
}

function stop(): void {
  for (const vault of vaults.values()) vault.database.close();
  journalDatabase.close();
  port?.close();
  // A guest still running (its owner did not stop it first) would keep the thread alive.
  if (guestsRunning > 0) process.exit(0);
}

/**
 * Runs the message that woke the thread and every one queued behind it, and answers them all in
 * one message: one wake-up of the gateway's thread instead of one each. The sealed cards of all of
 * them go first, in one transaction per vault file (each transaction is an fsync, and several vault
 * posts can queue up while one runs): a card may always become durable earlier than asked, never
 * later than an append posted after it. The other ops run
 * in the order they were posted, each in its own transaction.
 */
port.on('message', (first: Inbound) => {
  const requests: WriterRequest[] = [];
  let stopping = false;
  for (
    let request: Inbound | undefined = first;
    request !== undefined;
    request = receiveMessageOnPort(port)?.message as Inbound | undefined
  ) {
    if (request === 'stop') {
      stopping = true;
      break;
    }
    if ('kind' in request) host(request);
    else requests.push(request);
  }
  const replies: WriterReply[] = [];
  writeVaults(requests, replies);
  for (let index = 0; index < requests.length; ) {
    const request = requests[index] as WriterRequest;
    if (request.op.kind === 'append') {
      index = appendRun(requests, index, replies);
      continue;
    }
    index++;
    if (request.op.kind === 'vault') continue;
    try {
      replies.push({ id: request.id, ok: true, result: run(request.op) });
    } catch (error) {
      replies.push(failure(request.id, error));
    }
  }
  if (replies.length > 0) port.postMessage(replies);
  if (stopping) stop();
});

/** Every vault op of `requests`, one transaction per file; a failure ends the thread. */
function writeVaults(requests: readonly WriterRequest[], replies: WriterReply[]): void {
  const byPath = new Map<string, { ids: number[]; rows: VaultRow[] }>();
  for (const request of requests) {
    if (request.op.kind !== 'vault') continue;
    let group = byPath.get(request.op.path);
    if (group === undefined) {
      group = { ids: [], rows: [] };
      byPath.set(request.op.path, group);
    }
    group.ids.push(request.id);
    for (const row of request.op.rows) group.rows.push(row);
  }
  for (const [path, group] of byPath) {
    try {
      vaultAt(path).put(group.rows);
      for (const id of group.ids) replies.push({ id, ok: true, result: undefined });
    } catch (error) {
      for (const id of group.ids) replies.push(failure(id, error));
      port?.postMessage(replies);
      process.exit(1);
    }
  }
}
