import type { Journal, MessageKey } from '../store/journal.js';

/**
 * Remembers which messages a receiver has processed (the seed's `receivedOrders`), durably.
 *
 * The durable record is the journal's processed-messages table, written in the same transaction
 * as the events the processing produced, so "processed" can never be true while its effects are
 * lost, nor the reverse. In memory it keeps only what makes the common cases cheap: ids whose
 * write is still in flight (a duplicate arriving then must not be processed a second time) and a
 * bounded set of recently processed ids (hot duplicates answered without a store lookup).
 */
export class IdempotentReceiver {
  private readonly inFlight = new Map<string, number>();
  /** Insertion-ordered, so the oldest entries come first for eviction and expiry. */
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly journal: Journal,
    readonly receiverId: string,
    private readonly recentIdsCapacity: number,
  ) {}

  /** Answers without I/O when it can; undefined means "ask the store". */
  knownDuplicate(messageId: string): boolean | undefined {
    if (this.inFlight.has(messageId) || this.recent.has(messageId)) return true;
    return undefined;
  }

  async isDuplicate(message: MessageKey): Promise<boolean> {
    return this.knownDuplicate(message.id) ?? (await this.journal.isProcessed(this.receiverId, message));
  }

  /** The message's processing has been handed to the journal with this id attached. */
  writing(messageId: string): void {
    this.inFlight.set(messageId, (this.inFlight.get(messageId) ?? 0) + 1);
  }

  /** The write carrying `messageId` finished; if it failed, the id is simply not processed. */
  written(messageId: string, durable: boolean, processedAt: number): void {
    const count = this.inFlight.get(messageId) ?? 0;
    if (count <= 1) this.inFlight.delete(messageId);
    else this.inFlight.set(messageId, count - 1);
    if (!durable) return;
    this.recent.delete(messageId);
    this.recent.set(messageId, processedAt);
    if (this.recent.size > this.recentIdsCapacity) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
  }

  /** Forgets records older than the retention window, in memory and in the store. */
  async expire(now: number, retentionMs: number): Promise<number> {
    const cutoff = now - retentionMs;
    for (const [messageId, processedAt] of this.recent) {
      if (processedAt >= cutoff) break;
      this.recent.delete(messageId);
    }
    return this.journal.purgeProcessed(this.receiverId, cutoff);
  }
}
