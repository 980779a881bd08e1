import type {
  AppendRequest,
  Journal,
  JournalStats,
  MessageKey,
  OffsetEvent,
  PersistedEvent,
} from './journal.js';

/**
 * A journal that tells a listener after each durable append — how projections learn there is
 * something new to read without polling the store in a tight loop.
 */
export class ObservedJournal implements Journal {
  constructor(
    private readonly inner: Journal,
    private readonly onAppended: () => void,
  ) {}

  async append(request: AppendRequest): Promise<void> {
    await this.inner.append(request);
    this.onAppended();
  }

  read(persistenceId: string, fromSeqNr: number, toSeqNr?: number, max?: number): Promise<PersistedEvent[]> {
    return this.inner.read(persistenceId, fromSeqNr, toSeqNr, max);
  }

  highestSeqNr(persistenceId: string): Promise<number> {
    return this.inner.highestSeqNr(persistenceId);
  }

  readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    return this.inner.readAll(afterOffset, limit);
  }

  isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    return this.inner.isProcessed(receiverId, message);
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    return this.inner.purgeProcessed(receiverId, beforeTimestamp);
  }

  stats(): JournalStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
