import type {
  AppendRequest,
  Fence,
  FenceCheck,
  Journal,
  JournalStats,
  MessageKey,
  OffsetEvent,
  PersistedEvent,
  Snapshot,
  SnapshotStore,
} from '../store/journal.js';
import type { MemoryJournal } from '../store/memory/memory-journal.js';

/** One durable event as the simulator's checkers need it: who wrote it, what, for which order. */
export interface DurableFact {
  readonly persistenceId: string;
  readonly seqNr: number;
  readonly type: string;
  readonly orderId: string | undefined;
  /** OrderCreated: the request's fingerprint. */
  readonly requestHash: string | undefined;
  /** ExecutionSettled: the outcome's kind. */
  readonly outcomeKind: string | undefined;
}

/**
 * One committed append as the writer check needs it: which process wrote it, under which fence,
 * and whether that fence held in the cluster store at the moment of the commit.
 */
export interface DurableWrite {
  readonly persistenceId: string;
  readonly fromSeqNr: number;
  readonly events: number;
  /** The node incarnation (process) that appended it, e.g. `n4`. */
  readonly writer: string;
  readonly fence: Fence | undefined;
  /** The cluster store's answer at the commit; `undefined` for an unfenced write or a seed without a cluster. */
  readonly fenceHeld: boolean | undefined;
}

/**
 * The seed's journal: the real MemoryJournal (the durable state that survives node crashes) plus an
 * index of what has become durable, kept up to date synchronously as each append commits. The
 * index lets the online checkers ask, at the very moment something leaves the gateway (a message,
 * a reply, a bank call), whether the event that justifies it is already durable.
 *
 * The index is updated in the append's own continuation, before the appending entity hears that its
 * write is durable, so nothing the entity does in reaction can run ahead of it.
 */
export class DurableLog implements Journal {
  private readonly byOrder = new Map<string, DurableFact[]>();
  private readonly writers = new WeakMap<AppendRequest, string>();
  private readonly writes: DurableWrite[] = [];

  /**
   * `fences` is the cluster store of a seed with a cluster: asked, in the very step of each commit
   * (before anything else can run), whether the append's fence held — independently of whether
   * the journal asked it. `onWrite` hears of every commit in that same step.
   */
  constructor(
    readonly memory: MemoryJournal,
    private readonly fences?: FenceCheck,
    private readonly onWrite?: (write: DurableWrite) => void,
  ) {
    memory.onCommitted((request) => {
      const write: DurableWrite = {
        persistenceId: request.persistenceId,
        fromSeqNr: request.fromSeqNr,
        events: request.events.length,
        writer: this.writers.get(request) ?? 'unknown',
        fence: request.fence,
        fenceHeld:
          request.fence === undefined || this.fences === undefined
            ? undefined
            : this.fences.isCurrent(request.fence),
      };
      this.writes.push(write);
      this.onWrite?.(write);
    });
  }

  append(request: AppendRequest): Promise<void> {
    return this.memory.append(request).then(() => this.index(request));
  }

  /** An append by the node incarnation `writer`, recorded with the commit. */
  appendAs(writer: string, request: AppendRequest): Promise<void> {
    this.writers.set(request, writer);
    return this.append(request);
  }

  /** Every committed append, in commit order. */
  committedWrites(): readonly DurableWrite[] {
    return this.writes;
  }

  read(persistenceId: string, fromSeqNr: number, toSeqNr?: number, max?: number): Promise<PersistedEvent[]> {
    return this.memory.read(persistenceId, fromSeqNr, toSeqNr, max);
  }

  highestSeqNr(persistenceId: string): Promise<number> {
    return this.memory.highestSeqNr(persistenceId);
  }

  readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    return this.memory.readAll(afterOffset, limit);
  }

  isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    return this.memory.isProcessed(receiverId, message);
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    return this.memory.purgeProcessed(receiverId, beforeTimestamp);
  }

  stats(): JournalStats {
    return this.memory.stats();
  }

  close(): Promise<void> {
    return this.memory.close();
  }

  /** Durable facts about one order, in the order they became durable. */
  factsOf(orderId: string): readonly DurableFact[] {
    return this.byOrder.get(orderId) ?? [];
  }

  has(orderId: string, type: string, persistenceIdPrefix: string): boolean {
    return this.factsOf(orderId).some(
      (fact) => fact.type === type && fact.persistenceId.startsWith(persistenceIdPrefix),
    );
  }

  /** Every order id with at least one durable fact, in first-durable order. */
  orderIds(): string[] {
    return [...this.byOrder.keys()];
  }

  private index(request: AppendRequest): void {
    let seqNr = request.fromSeqNr;
    for (const event of request.events) {
      const payload = parseObject(event.payload);
      // A refund's events are indexed under its order and under the refund id (its bank reference).
      const keys = [stringField(payload, 'orderId'), stringField(payload, 'refundId')];
      for (const orderId of keys) {
        if (orderId === undefined) continue;
        const outcome = payload?.outcome;
        const fact: DurableFact = {
          persistenceId: request.persistenceId,
          seqNr,
          type: event.type,
          orderId,
          requestHash: stringField(payload, 'requestHash'),
          outcomeKind:
            typeof outcome === 'object' && outcome !== null ? stringField(outcome, 'kind') : undefined,
        };
        const facts = this.byOrder.get(orderId);
        if (facts === undefined) this.byOrder.set(orderId, [fact]);
        else facts.push(fact);
      }
      seqNr++;
    }
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  const value: unknown = JSON.parse(text);
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

function stringField(record: object | undefined, key: string): string | undefined {
  if (record === undefined) return undefined;
  const value: unknown = Reflect.get(record, key);
  return typeof value === 'string' ? value : undefined;
}

/** A crashed node's process is gone: it neither reads nor writes any more. */
export class NodeDownError extends Error {
  override readonly name = 'NodeDownError';
  constructor(readonly node: number) {
    super(`node ${node} is down`);
  }
}

/**
 * One node's handle on the shared journal. A dead node's entities (their promise chains outlive
 * `terminate`) must not write: a crashed process writes nothing after the crash. Appends it
 * submitted before the crash may still commit — as a commit whose acknowledgement was lost would.
 */
export class NodeJournal implements Journal {
  constructor(
    private readonly inner: DurableLog,
    readonly node: number,
    private readonly alive: () => boolean,
    /** Holds the answers a frozen (paused) process has not yet heard; none when it cannot pause. */
    private readonly gate: <T>(promise: Promise<T>) => Promise<T> = (promise) => promise,
  ) {}

  append(request: AppendRequest): Promise<void> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.appendAs(`n${this.node}`, request));
  }

  read(persistenceId: string, fromSeqNr: number, toSeqNr?: number, max?: number): Promise<PersistedEvent[]> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.read(persistenceId, fromSeqNr, toSeqNr, max));
  }

  highestSeqNr(persistenceId: string): Promise<number> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.highestSeqNr(persistenceId));
  }

  readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.readAll(afterOffset, limit));
  }

  isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.isProcessed(receiverId, message));
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.purgeProcessed(receiverId, beforeTimestamp));
  }

  stats(): JournalStats {
    return this.inner.stats();
  }

  /** A node never closes the shared journal: the seed owns it. */
  async close(): Promise<void> {}
}

/**
 * One node's handle on the seed's snapshot store, with the journal's rule: a dead node neither
 * reads nor saves. A save submitted before the crash may still land, as a commit whose
 * acknowledgement was lost would — harmless, since a snapshot only ever holds durable state.
 */
export class NodeSnapshots implements SnapshotStore {
  constructor(
    private readonly inner: SnapshotStore,
    readonly node: number,
    private readonly alive: () => boolean,
    private readonly gate: <T>(promise: Promise<T>) => Promise<T> = (promise) => promise,
  ) {}

  save(snapshot: Snapshot, fence?: Fence): Promise<void> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.save(snapshot, fence));
  }

  loadLatest(persistenceId: string): Promise<Snapshot | undefined> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.loadLatest(persistenceId));
  }

  deleteOlderThan(persistenceId: string, beforeSeqNr: number): Promise<void> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.gate(this.inner.deleteOlderThan(persistenceId, beforeSeqNr));
  }

  /** A node never closes the shared store: the seed owns it. */
  async close(): Promise<void> {}
}
