import type { MessagePort, Worker } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import {
  type GuestEndedMessage,
  type GuestHost,
  type HostedGuest,
  type HostGuestMessage,
  runnableEntry,
} from '../../runtime/thread-guest.js';
import { startTsWorker } from '../../runtime/ts-worker.js';
import { type AppendRequest, JournalClosedError, JournalOverloadedError } from '../journal.js';
import {
  type BatchResult,
  JournalWrites,
  openVaultDatabase,
  type SnapshotRow,
  type VaultRow,
  VaultWrites,
} from './store-writes.js';
import {
  flattenBatch,
  type WriteOp,
  type WriteResults,
  type WriterReply,
  type WriterSettings,
} from './writer-protocol.js';

/**
 * Where a SQLite store's writes run. `inline`: on the caller's thread, synchronously (each commit
 * blocks the event loop for its fsync; simple, and what tests and tools use). `thread`: in one
 * writer thread (writer-worker.ts) that owns the write connections, so the event loop goes on
 * while a batch is being made durable, and the next batch gathers meanwhile. Reads stay on the
 * caller's own connection either way (WAL: they never wait for the writer).
 *
 * Writes are applied in the order they are asked for. Sealed cards for the vault are queued
 * (`putVault`) and always written before any write asked for after them, so an event naming a
 * token is never durable before the sealed card behind it.
 */
export interface StoreWriter {
  readonly mode: WriterMode;
  append(batch: readonly AppendRequest[]): Promise<BatchResult>;
  saveSnapshot(row: SnapshotRow): Promise<void>;
  deleteSnapshots(persistenceId: string, beforeSeqNr: number): Promise<void>;
  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number>;
  /** Queues a sealed card for the vault file at `path`; throws JournalOverloadedError when full. */
  putVault(path: string, row: VaultRow): void;
  stats(): WriterStats;
  /** Writes what is queued, then releases the writer's connections (the caller's stay open). */
  close(): Promise<void>;
}

export type WriterMode = 'inline' | 'thread';

export interface WriterStats {
  /** Times the writer thread ended unexpectedly (every write pending then failed). */
  readonly threadFailures: number;
  /** Sealed cards queued and not yet sent to be written. */
  readonly vaultRowsQueued: number;
}

/** The most sealed cards queued for the vault at once (each is one order being accepted). */
export const vaultRowsQueuedMax = 65_536;

/**
 * How long a sealed card may wait for the next write to the writer thread before it is sent on its
 * own. Cards ride with the next write (an order's card is sealed just before its Merchant appends),
 * so under load they reach the thread in the same wake-up as the append that names them; this only
 * bounds the wait of a card whose order wrote nothing (refused before the Merchant decided it).
 */
export const vaultFlushDelayMs = 20;

/** The writer thread's heap limit: it holds the batches in flight (bounded by group commit). */
export const writerHeapMbMax = 96;

/** A write the writer thread could not make, or every write pending when the thread ended. */
export class WriterFailedError extends Error {
  override readonly name = 'WriterFailedError';
}

/** Writes on the caller's thread. */
export class InlineWriter implements StoreWriter {
  readonly mode = 'inline';
  private readonly writes: JournalWrites;
  private readonly vaults = new Map<string, VaultWrites>();
  private closed = false;

  constructor(
    database: Database,
    private readonly busyTimeoutMs: number,
  ) {
    this.writes = new JournalWrites(database);
  }

  append(batch: readonly AppendRequest[]): Promise<BatchResult> {
    return this.attempt(() => this.writes.append(batch));
  }

  saveSnapshot(row: SnapshotRow): Promise<void> {
    return this.attempt(() => this.writes.saveSnapshot(row));
  }

  deleteSnapshots(persistenceId: string, beforeSeqNr: number): Promise<void> {
    return this.attempt(() => this.writes.deleteSnapshotsBefore(persistenceId, beforeSeqNr));
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    return this.attempt(() => this.writes.purgeProcessed(receiverId, beforeTimestamp));
  }

  putVault(path: string, row: VaultRow): void {
    if (this.closed) throw new JournalClosedError();
    let vault = this.vaults.get(path);
    if (vault === undefined) {
      vault = new VaultWrites(openVaultDatabase(path, this.busyTimeoutMs));
      this.vaults.set(path, vault);
    }
    vault.put([row]);
  }

  stats(): WriterStats {
    return { threadFailures: 0, vaultRowsQueued: 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const vault of this.vaults.values()) vault.database.close();
  }

  private attempt<T>(write: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new JournalClosedError());
    try {
      return Promise.resolve(write());
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

interface Pending {
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: Error) => void;
}

/** Why a guest ended when the writer closed under it. */
const stoppedReason = 'the writer thread stopped';

interface Guest {
  readonly worker: Worker;
  readonly ended: (error: string | undefined) => void;
}

/**
 * Writes in a writer thread, started at once and again (on the next write) if it ever ends. The
 * thread also hosts guests (`GuestHost`): a guest whose thread ends is told so through `ended`,
 * and is not started again by this class.
 */
export class ThreadWriter implements StoreWriter, GuestHost {
  readonly mode = 'thread';
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly vaultQueue = new Map<string, VaultRow[]>();
  private vaultRowsQueued = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private threadFailures = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private nextGuestId = 1;
  private readonly guests = new Map<number, Guest>();

  constructor(
    private readonly settings: WriterSettings,
    private readonly onFailure: (error: Error) => void = () => {},
  ) {
    this.worker = this.start();
  }

  append(batch: readonly AppendRequest[]): Promise<BatchResult> {
    return this.request({ kind: 'append', batch: flattenBatch(batch) });
  }

  saveSnapshot(row: SnapshotRow): Promise<void> {
    return this.request({ kind: 'saveSnapshot', row });
  }

  deleteSnapshots(persistenceId: string, beforeSeqNr: number): Promise<void> {
    return this.request({ kind: 'deleteSnapshots', persistenceId, beforeSeqNr });
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    return this.request({ kind: 'purgeProcessed', receiverId, beforeTimestamp });
  }

  putVault(path: string, row: VaultRow): void {
    if (this.closed) throw new JournalClosedError();
    if (this.vaultRowsQueued >= vaultRowsQueuedMax) throw new JournalOverloadedError(vaultRowsQueuedMax);
    let rows = this.vaultQueue.get(path);
    if (rows === undefined) {
      rows = [];
      this.vaultQueue.set(path, rows);
    }
    rows.push(row);
    this.vaultRowsQueued++;
    this.flushTimer ??= setTimeout(() => this.flushVault(), vaultFlushDelayMs);
  }

  stats(): WriterStats {
    return { threadFailures: this.threadFailures, vaultRowsQueued: this.vaultRowsQueued };
  }

  host(entry: URL, settings: unknown, port: MessagePort): HostedGuest {
    if (this.closed) {
      port.close();
      return { ended: Promise.resolve('the store writer is closed') };
    }
    const worker = this.worker ?? this.start();
    this.worker = worker;
    const guestId = this.nextGuestId++;
    const ended = new Promise<string | undefined>((resolve) =>
      this.guests.set(guestId, { worker, ended: resolve }),
    );
    const message: HostGuestMessage = {
      kind: 'hostGuest',
      guestId,
      entry: runnableEntry(entry).href,
      port,
      settings,
    };
    worker.postMessage(message, [port]);
    return { ended };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushVault();
    if (this.pending.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    // The thread closes its connections (checkpointing the WAL) and ends on its own.
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('stop');
    await exited;
    this.endGuests(worker, stoppedReason);
  }

  private request<K extends WriteOp['kind']>(op: Extract<WriteOp, { kind: K }>): Promise<WriteResults[K]> {
    if (this.closed) return Promise.reject(new JournalClosedError());
    // Cards sealed before this write are written before it.
    this.flushVault();
    return this.post(op) as Promise<WriteResults[K]>;
  }

  private post(op: WriteOp): Promise<unknown> {
    const worker = this.worker ?? this.start();
    this.worker = worker;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, op });
    });
  }

  private flushVault(): void {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.vaultRowsQueued === 0) return;
    for (const [path, rows] of this.vaultQueue) {
      this.post({ kind: 'vault', path, rows }).catch((error: unknown) => {
        this.onFailure(error instanceof Error ? error : new Error(String(error)));
      });
    }
    this.vaultQueue.clear();
    this.vaultRowsQueued = 0;
  }

  private start(): Worker {
    const worker = startTsWorker(
      new URL('./writer-worker.ts', import.meta.url),
      this.settings,
      'remit-writer',
      writerHeapMbMax,
    );
    worker.on('message', (message: readonly WriterReply[] | GuestEndedMessage) => {
      if (!Array.isArray(message)) {
        this.guestEnded(message as GuestEndedMessage);
        return;
      }
      for (const reply of message) this.settle(reply);
    });
    worker.on('error', (error) => this.failAll(worker, error));
    worker.on('exit', (code) =>
      this.failAll(worker, new WriterFailedError(`writer thread exited with ${code}`)),
    );
    return worker;
  }

  private settle(reply: WriterReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(new WriterFailedError(`${reply.error.name}: ${reply.error.message}`));
    this.idle();
  }

  private guestEnded(report: GuestEndedMessage): void {
    const guest = this.guests.get(report.guestId);
    if (guest === undefined) return;
    this.guests.delete(report.guestId);
    guest.ended(report.error);
  }

  private endGuests(worker: Worker, reason: string): void {
    for (const [guestId, guest] of this.guests) {
      if (guest.worker !== worker) continue;
      this.guests.delete(guestId);
      guest.ended(reason);
    }
  }

  /** The thread ended or broke: every write it had not answered failed. The next write restarts it. */
  private failAll(worker: Worker, error: Error): void {
    this.endGuests(worker, this.closed ? stoppedReason : error.message);
    if (this.worker !== worker) return;
    this.worker = undefined;
    if (this.closed && this.pending.size === 0) return;
    this.threadFailures++;
    const failure = error instanceof WriterFailedError ? error : new WriterFailedError(error.message);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const waiter of pending) waiter.reject(failure);
    this.idle();
    this.onFailure(failure);
    void worker.terminate();
  }

  private idle(): void {
    if (this.pending.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
