import assert from 'node:assert/strict';

/**
 * Calls gathered into batches, the way group commit gathers appends: every call made in one turn
 * of the event loop joins the same batch, and while `batchesInFlightMax` batches are out, calls
 * wait and join the next one. A batch holds at most `itemsMax` calls. Each call settles with its
 * own result, never with another call's; a batch that fails as a whole is the sender's to turn
 * into one failure per call.
 */

export interface CallBatchSettings {
  /** The most calls one batch carries. */
  readonly itemsMax: number;
  /** The most batches out at once; further calls wait for one to come back. */
  readonly batchesInFlightMax: number;
}

/** One call's result: what it returned, or the error it fails with. */
export type CallResult<O> =
  | { readonly ok: true; readonly value: O }
  | { readonly ok: false; readonly error: Error };

/**
 * Sends one batch and returns one result per item, in order. It must not throw: a failure of the
 * whole batch is a failure of each of its calls, which only the sender can name (each error says
 * which call it is about).
 */
export type SendBatch<I, O> = (items: readonly I[]) => Promise<ReadonlyArray<CallResult<O>>>;

interface Waiting<I, O> {
  readonly item: I;
  readonly resolve: (value: O) => void;
  readonly reject: (error: Error) => void;
}

export class CallBatches<I, O> {
  private readonly queue: Waiting<I, O>[] = [];
  private batchesInFlight = 0;
  private scheduled = false;

  constructor(
    private readonly send: SendBatch<I, O>,
    private readonly settings: CallBatchSettings,
  ) {
    assert.ok(
      Number.isSafeInteger(settings.itemsMax) && settings.itemsMax >= 1,
      `itemsMax must be a positive integer, not ${settings.itemsMax}`,
    );
    assert.ok(
      Number.isSafeInteger(settings.batchesInFlightMax) && settings.batchesInFlightMax >= 1,
      `batchesInFlightMax must be a positive integer, not ${settings.batchesInFlightMax}`,
    );
  }

  /** The caller bounds how many calls it makes at once (BankClient: `inFlightRequestsMax`). */
  call(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: every call made in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.batchesInFlight < this.settings.batchesInFlightMax) {
      this.dispatch(this.queue.splice(0, this.settings.itemsMax));
    }
  }

  private dispatch(batch: Waiting<I, O>[]): void {
    this.batchesInFlight++;
    const settle = (results: ReadonlyArray<CallResult<O>> | Error): void => {
      this.batchesInFlight--;
      batch.forEach((waiting, index) => {
        const result =
          results instanceof Error
            ? { ok: false as const, error: results }
            : (results[index] ?? {
                ok: false as const,
                error: new Error('the batch sender returned no result'),
              });
        if (result.ok) waiting.resolve(result.value);
        else waiting.reject(result.error);
      });
      if (this.queue.length > 0) this.schedule();
    };
    this.send(batch.map((waiting) => waiting.item)).then(settle, (error: unknown) =>
      // The sender broke its promise not to throw: still, no call may hang.
      settle(error instanceof Error ? error : new Error(String(error))),
    );
  }
}
